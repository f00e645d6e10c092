"""The unroll driver shared by Recurrent and the stacks: one cell run along the time axis.

Every op of step t is created inside nested graph scopes, `f"layer={k}"` (stacks only), then
`"dir=forward"` or `"dir=backward"`, then `f"t={t}"` with t the input position; viz and
diagnostics parse these labels. A module that unrolls calls each of its `step_observers` as
`obs(layer, direction, t, state)` as soon as the state of step t exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np

from tinygrad_rnn.engine import collector_paused
from tinygrad_rnn.nn.cells import Cell, State
from tinygrad_rnn.nn.sequence_ops import LengthsMask
from tinygrad_rnn.tensor import Tensor, _wrap, apply, graph_scope, where

StepObserver = Callable[[int, str, int, State], Any]


def _lengths_array(lengths: Any, batch: int, who: str) -> np.ndarray:
    """`lengths` as (B,) integers: the caller's very array when it is one (or a Tensor's)."""
    try:
        arr = np.asarray(lengths._data if isinstance(lengths, Tensor) else lengths)
    except ValueError:  # ragged nesting
        raise ValueError(f"{who}: lengths must be {batch} integers (one per sequence), got "
                         f"a ragged {type(lengths).__name__}") from None
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{who}: lengths must be {batch} integers (one per sequence), got "
                        f"{type(lengths).__name__} of dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{who}: lengths must be {batch} integers (one per sequence), got "
                         f"shape {arr.shape}")
    return arr


def lengths_mask(lengths: Any, batch: int, steps: int, who: str) -> np.ndarray | None:
    """(B,) true lengths -> (B, T) bool mask, True at real steps; None if nothing is padded.
    (numpy, for callers outside a step; the layers build theirs with `step_mask`.)"""
    if lengths is None:
        return None
    arr = _lengths_array(lengths, batch, who)
    mask = LengthsMask().forward(arr, steps=steps, who=who)  # the primitive's own checks
    return None if mask.all() else mask


def step_mask(who: str, batch: int, steps: int, lengths: Any = None, mask: Any = None,
              unbatched: bool = False) -> Tensor | None:
    """The (B, T) bool mask of the steps to run, from `lengths` or a Keras `mask` (not both),
    as a Tensor made by primitives from the caller's very array (so a replayed step reads the
    new one); None when neither is given. An unbatched input takes a (T,) mask.

    Only dtypes and shapes are checked here; the lengths' values are checked by the
    lengths_mask primitive, at every call and every replay."""
    if mask is None:
        if lengths is None:
            return None
        arr = _lengths_array(lengths, batch, who)
        return apply(LengthsMask, _wrap(arr), steps=steps, who=who)
    if lengths is not None:
        raise ValueError(f"{who}: pass lengths or mask, not both (lengths marks a padded "
                         f"batch's real steps, mask any pattern of them)")
    expected = (steps,) if unbatched else (batch, steps)
    layout = "(T,)" if unbatched else "(B, T)"
    given: np.ndarray | None
    try:
        given = np.asarray(mask._data if isinstance(mask, Tensor) else mask)
    except ValueError:  # ragged nesting
        given = None
    if given is None or given.dtype != np.bool_:
        got = "a ragged list" if given is None else f"dtype {given.dtype}"
        raise TypeError(f"{who}: mask must be a boolean {layout} = {expected} array, got {got} "
                        f"(use ids != 0, or Embedding(mask_zero=True).compute_mask)")
    if given.shape != expected:
        raise ValueError(f"{who}: mask must have shape {layout} = {expected} (batch first, "
                         f"also for time-first input), got {given.shape}")
    # the caller's array itself, not a copy: each step's where() saves its own copy of the
    # condition, so the caller's later writes never reach backward
    held = _wrap(given)
    return held.reshape(batch, steps) if unbatched else held


def _check_observers(who: str, observers: Any) -> None:
    for i, obs in enumerate(observers):
        if not callable(obs):
            raise TypeError(f"{who}: step_observers[{i}] is a {type(obs).__name__}, expected a "
                            f"callable obs(layer, direction, t, state)")


@overload
def _keep(valid: Tensor, new: Tensor, old: Any) -> Tensor: ...
@overload
def _keep(valid: Tensor, new: tuple[Tensor, ...], old: Any) -> tuple[Tensor, ...]: ...
def _keep(valid: Tensor, new: State, old: Any) -> State:
    """`new` where the sequence is still running (valid, (B, 1) bool), else `old` unchanged
    (a state of new's layout)."""
    if isinstance(new, tuple):
        return tuple(_keep(valid, n, o) for n, o in zip(new, old))
    if new.ndim != 2:
        valid = valid.reshape((-1,) + (1,) * (new.ndim - 1))
    return where(valid, new, old)


def unroll(cell: Cell, x: Tensor, state: State, *, reverse: bool = False, time_axis: int = 1,
           mask: Tensor | None = None, observers: Sequence[StepObserver] = (),
           layer: int = 0) -> tuple[list[Tensor], State]:
    """Run `cell` along the time axis of x from `state`; outputs keep input positions.

    Args:
        x: (B, T, I) when time_axis=1, (T, B, I) when time_axis=0.
        mask: (B, T) bool Tensor or None; at False steps the state is kept and the output is
            zero. Given, it is applied at every step whatever its values (an all-True column
            selects `new` itself), so the ops of a call depend on shapes only.
        reverse: consume positions T-1 .. 0 (only the valid part counts, thanks to the mask).
    Returns:
        (outputs, final_state): a list of T step outputs (B, H) indexed by input position.
    """
    cell.begin_sequence(x, time_axis)  # e.g. draws a cell's dropout masks for this sequence
    direction = "backward" if reverse else "forward"
    steps = x.shape[time_axis]
    fast = cell.uses_fast_path()
    outputs: list[Tensor] = [None] * steps  # type: ignore[list-item]  # each slot filled below
    with graph_scope(f"dir={direction}"), collector_paused():
        xp, weights = (cell.project_inputs(x), cell.hidden_weights()) if fast else (x, None)
        xs = xp.unbind(time_axis)  # one node; backward stacks the steps' gradients
        if mask is not None:  # the steps' (B, 1) columns: one reshape and one unbind per call
            valids, zero = mask.reshape(mask.shape[0], steps, 1).unbind(1), None
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            with graph_scope(f"t={t}"):
                x_t = xs[t]
                new = cell.step(x_t, state, weights) if fast else cell.forward(x_t, state)
                out = cell.step_output(new)
                if mask is not None:
                    valid = valids[t]
                    new = _keep(valid, new, state)
                    # out reads the kept state, so an observer's retained dLoss/dh_t
                    # includes this step's output too
                    if zero is None:
                        zero = Tensor(np.zeros((), out.dtype))
                    out = where(valid, cell.step_output(new), zero)
            state = new
            for obs in observers:
                obs(layer, direction, t, state)
            outputs[t] = out
    return outputs, state
