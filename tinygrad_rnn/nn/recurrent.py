"""Keras-style unrolling: Recurrent (Keras `RNN(cell)`) over any cell, and Bidirectional.

torch's RNN / LSTM / GRU stacks live in stacks.py and are importable from here too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, overload

import numpy as np

from tinygrad_rnn.nn.cells import Cell, State
from tinygrad_rnn.nn.module import Module
from tinygrad_rnn.nn.stacks import GRU, LSTM, RNN, RNNBase
from tinygrad_rnn.nn.unroll import StepObserver, _check_observers, lengths_mask, step_mask, unroll
from tinygrad_rnn.nn.utils.rnn import PackedSequence
from tinygrad_rnn.tensor import Tensor, cat, stack
from tinygrad_rnn.validate import check_bool, float_input

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "RNNBase", "Recurrent", "lengths_mask",
           "step_mask", "unroll"]
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


@overload
def _kept(state: Tensor) -> Tensor: ...
@overload
def _kept(state: tuple[Tensor, ...]) -> tuple[Tensor, ...]: ...
def _kept(state: State) -> State:
    """A copy of `state` cut from the graph: what a stateful layer carries to its next call."""
    if isinstance(state, tuple):
        return tuple(_kept(s) for s in state)
    return Tensor(state._data)


@contextmanager
def _mode(module: Module, training: bool | None) -> Iterator[None]:
    """Keras' per-call `training`: module and its sub-modules in that mode for one call, then
    back to the modes they had; None leaves them as they are."""
    if training is None:
        yield
        return
    saved = [(m, m.training) for _, m in module.named_modules()]
    module.train(training)
    try:
        yield
    finally:
        for m, mode in saved:
            object.__setattr__(m, "training", mode)


def _kept_batch(states: Any) -> int | None:
    """The batch size of a kept state (its first part's first axis), None when unreadable."""
    first = states[0] if isinstance(states, (tuple, list)) and states else states
    shape: tuple[int, ...] = tuple(getattr(first, "shape", ()))
    return shape[0] if shape else None


def _own_stream(rng: Any) -> Any:
    """A generator of `rng`'s kind whose draws are independent of rng's (the backward copy's
    dropout masks), derived from it reproducibly and without drawing from it."""
    if isinstance(rng, np.random.Generator):
        try:
            return rng.spawn(1)[0]
        except (TypeError, ValueError):  # made without a SeedSequence
            return np.random.default_rng(copy.deepcopy(rng).integers(1 << 63))
    if isinstance(rng, np.random.RandomState):
        return np.random.RandomState(copy.deepcopy(rng).randint(1 << 31))
    return rng


class Recurrent(Module):
    """Unroll any cell over a sequence (Keras `RNN(cell)`), outputs aligned to input positions.

    Args:
        cell: a Cell. return_sequences: all outputs instead of the last one.
        return_state: also return the final state. reverse: run from the last position.
        batch_first: input (B, T, I) if True, (T, B, I) if False.
        stateful: a call starts from the previous call's final state (Keras; detached, so
            gradients stop there) unless initial_state is given; reset_states() forgets it.
    Shape:
        x (B, T, I) -> output (B, H) or (B, T, H) (time first when batch_first=False);
        with return_state, (output, final_state).
    """

    def __init__(self, cell: Cell, return_sequences: bool = False, return_state: bool = False,
                 reverse: bool = False, batch_first: bool = True, stateful: bool = False):
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"Recurrent: cell must be a Cell, got {type(cell).__name__}")
        flags = {"return_sequences": return_sequences, "return_state": return_state,
                 "reverse": reverse, "batch_first": batch_first, "stateful": stateful}
        flags = {k: check_bool("Recurrent", k, v) for k, v in flags.items()}
        self.cell = cell
        self.return_sequences, self.return_state = flags["return_sequences"], flags["return_state"]
        self.reverse, self.batch_first = flags["reverse"], flags["batch_first"]
        self.stateful = flags["stateful"]
        self.step_observers: list[StepObserver] = []
        self.states: State | None = None  # what a stateful layer carries to its next call

    def reset_states(self) -> None:
        """Forget the kept state (Keras): the next call starts afresh, with any batch size."""
        self.states = None

    reset_state = reset_states  # Keras 3's name

    def forward(self, x: Any, initial_state: Any = None, lengths: Any = None,
                mask: Any = None, training: bool | None = None) -> Any:
        """Run the cell over x. `lengths` (B,) marks the real steps of a padded batch; `mask`
        (B, T) bool (Keras, batch first in either layout) any pattern of steps to run: at a
        False step the state is carried unchanged and the output is zero. `training`
        (Keras) sets the cell's mode for this call only; None keeps the module's mode.

        A batch of 0 sequences gives empty outputs (as torch); 0 time steps is an error.
        """
        if training is not None:
            training = check_bool("Recurrent", "training", training)
        if isinstance(x, PackedSequence):
            raise TypeError("Recurrent: input is a PackedSequence, which only the RNN/LSTM/GRU "
                            "stacks take; pass the padded batch with lengths= or mask=")
        x = float_input("Recurrent", "input", x)
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        t_axis = 1 if self.batch_first else 0
        if x.ndim != 3 or x.shape[t_axis] == 0:
            raise ValueError(f"Recurrent: expected a non-empty 3-D input {layout}, got shape "
                             f"{x.shape}")
        width = getattr(self.cell, "input_size", None)
        if isinstance(width, int) and x.shape[-1] != width:
            raise ValueError(f"Recurrent: the cell expects input width (input_size) {width}, "
                             f"got {x.shape[-1]} (input shape {x.shape} {layout})")
        who = f"Recurrent({type(self.cell).__name__})"
        self.cell.check_parameters(who)
        _check_observers("Recurrent", self.step_observers)
        batch, steps = x.shape[1 - t_axis], x.shape[t_axis]
        mask = step_mask("Recurrent", batch, steps, lengths, mask)
        if initial_state is not None:
            state = self.cell.check_state(initial_state, batch, who, "initial_state")
        elif self.stateful and self.states is not None:
            kept = _kept_batch(self.states)
            if kept is not None and kept != batch:
                raise ValueError(f"Recurrent: this stateful layer keeps the state of a batch of "
                                 f"{kept} sequences, got a batch of {batch}; call "
                                 f"reset_states() to start afresh with another batch size")
            state = self.cell.check_state(self.states, batch, who, "states")  # if reassigned
        else:
            state = self.cell.initial_state(batch)
        with _mode(self.cell, training):
            outs, state = unroll(self.cell, x, state, reverse=self.reverse, time_axis=t_axis,
                                 mask=mask, observers=self.step_observers)
        if self.stateful:
            self.states = _kept(state)
        # 'last' is the final state's output: the true last step, or position 0 when reversed
        output = stack(outs, axis=t_axis) if self.return_sequences else self.cell.step_output(
            state)
        return (output, state) if self.return_state else output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask for what this layer returns (Keras): `mask` for a sequence output, None
        for the last output; with return_state, (output mask, None for the state).

        So a masked stack reads `y = l2(l1(x, mask=m), mask=l1.compute_mask(x, m))`.
        """
        out = mask if self.return_sequences else None
        return (out, None) if self.return_state else out

    def extra_repr(self) -> str:
        flags = ("return_sequences", "return_state", "reverse", "stateful")
        on = [f"{f}=True" for f in flags if getattr(self, f)]
        return ", ".join(on + ([] if self.batch_first else ["batch_first=False"]))


class Bidirectional(Module):
    """Run a Recurrent layer and an independently initialised copy of it reversed; merge.

    Args:
        layer: a Recurrent (its flags decide return_sequences / return_state).
        merge_mode: 'concat' (last axis), 'sum', 'mul', 'ave', or None for [forward, backward].
    Shape:
        x (B, T, I) -> (B, [T,] 2H) for 'concat', (B, [T,] H) otherwise; with return_state,
        (output, (forward_state, backward_state)). `initial_state` is such a pair too.
    """

    def __init__(self, layer: Recurrent, merge_mode: str | None = "concat"):
        super().__init__()
        if not isinstance(layer, Recurrent):
            raise TypeError(f"Bidirectional: layer must be a Recurrent, got "
                            f"{type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got "
                             f"{merge_mode!r}")
        backward = copy.deepcopy(layer)
        backward.reverse, backward.step_observers = not layer.reverse, []
        backward.reset_states()  # a stateful copy starts afresh
        # trainable parameters are drawn afresh; frozen ones keep the values the user set
        frozen = [(p, p._data.copy()) for p in backward.parameters() if not p.requires_grad]
        backward.cell.reset_parameters()
        for p, data in frozen:
            p._assign(data)
        backward.zero_grad()
        rng = backward.cell.__dict__.get("_rng")  # a built-in cell's dropout generator
        if isinstance(rng, (np.random.Generator, np.random.RandomState)):
            object.__setattr__(backward.cell, "_rng", _own_stream(rng))  # masks of its own
        self.forward_layer, self.backward_layer, self.merge_mode = layer, backward, merge_mode

    @property
    def stateful(self) -> bool:
        """Whether the directions carry their state between calls (the layer's flag)."""
        return self.forward_layer.stateful

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def states(self) -> tuple[State, State] | None:
        """(forward kept state, backward kept state) of a stateful layer, None before its
        first call or after reset_states() (Keras' Bidirectional.states)."""
        fwd, bwd = self.forward_layer.states, self.backward_layer.states
        return None if fwd is None or bwd is None else (fwd, bwd)

    def reset_states(self) -> None:
        """Forget the kept states of both directions (see Recurrent's `stateful`)."""
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states  # Keras 3's name

    def forward(self, x: Any, initial_state: Any = None, lengths: Any = None,
                mask: Any = None, training: bool | None = None) -> Any:
        """Both directions over x (the same `lengths`, `mask` and `training`), merged position
        by position. A failed call leaves both directions' kept states as they were."""
        if training is not None:
            training = check_bool("Bidirectional", "training", training)
        if initial_state is None:
            f_init = b_init = None
        elif not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            got = (f"{len(initial_state)} items" if isinstance(initial_state, (tuple, list))
                   else type(initial_state).__name__)
            error = ValueError if isinstance(initial_state, (tuple, list)) else TypeError
            raise error(f"Bidirectional: initial_state must be a pair (forward_state, "
                        f"backward_state), got {got}")
        else:
            f_init, b_init = initial_state
        kept = self.forward_layer.states, self.backward_layer.states
        try:
            fwd = self.forward_layer(x, f_init, lengths, mask, training)
            bwd = self.backward_layer(x, b_init, lengths, mask, training)
        except Exception:
            self.forward_layer.states, self.backward_layer.states = kept
            raise
        if self.forward_layer.return_state:
            (fwd, f_state), (bwd, b_state) = fwd, bwd
        mode = self.merge_mode
        if mode is None:
            out: Any = [fwd, bwd]
        elif mode == "concat":
            out = cat([fwd, bwd], axis=-1)
        elif mode == "sum":
            out = fwd + bwd
        elif mode == "mul":
            out = fwd * bwd
        else:
            out = (fwd + bwd) * 0.5
        return (out, (f_state, b_state)) if self.forward_layer.return_state else out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Keras: the mask of the merged output (a pair for merge_mode=None) when it is a
        sequence, else None; with return_state, (output mask, (None, None))."""
        out = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        return (out, (None, None)) if self.return_state else out

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}"
