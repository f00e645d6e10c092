"""Dynamics of the recurrence: exact step Jacobians, norms over spans, Lyapunov exponents.

For a module that unrolls (Recurrent over any cell, Bidirectional, the RNN/LSTM/GRU stacks),
along the trajectory of one input batch x. The state s_t of a step is its state flattened:
h, or a tuple state's parts concatenated in order ((h, c) for LSTM: S = 2H). Keys are
(layer, direction), as in `diagnostics.record`; results are float64 arrays.

How: a float64 copy of the module (eval mode: dropout off) runs forward once, keeping the
arguments of every step call (the layer's input at t and the state the step started from).
Step t's Jacobian then comes from ONE batched backward through that step alone: the starting
state is replicated S times (batch B*S) as a leaf, the identity is seeded on the new state, and
row j of J[t, b] is the leaf's gradient in row b*S + j. The engine's own vector-Jacobian
products, no finite differences; the caller's module is never touched.
"""

from __future__ import annotations

import contextvars
import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_rnn.nn.recurrent import Bidirectional, Recurrent, RNNBase, lengths_mask
from tinygrad_rnn.tensor import Tensor, cat, no_grad

Key = tuple[int, str]  # (layer, direction): direction "forward" or "backward"
_UNROLLS = "a Recurrent, a Bidirectional, or an RNN/LSTM/GRU stack"


class NotUnrollingError(TypeError, ValueError):
    """The module does not unroll: a wrong kind of module (TypeError), and a ValueError as
    `record` raises for a model with nothing that unrolls."""


@dataclass
class _Step:
    """One recorded step call: `fn(inp, state, *rest)` returned the step's new state."""

    fn: Callable[..., Any]
    inp: Any
    state: Any
    rest: tuple


@dataclass
class _Trajectory:
    who: str  # the public function computing it, for its errors
    steps: dict[Key, dict[int, _Step]]  # per key: input position t -> step, in processing order
    valid: np.ndarray  # (B, T) bool: False at a padded step (lengths)
    counts: np.ndarray  # (B,) processed (unpadded) steps per sequence


def _direction(reverse: bool) -> str:
    return "backward" if reverse else "forward"


def _keys(module: Any) -> list[Key]:
    """The (layer, direction) keys a module reports, in sorted order."""
    if isinstance(module, RNNBase):
        dirs = ["forward", "backward"][:module.num_directions]
        return [(k, d) for k in range(module.num_layers) for d in sorted(dirs)]
    if isinstance(module, Bidirectional):
        return sorted({(0, _direction(m.reverse))
                       for m in (module.forward_layer, module.backward_layer)})
    return [(0, _direction(module.reverse))]


def _cells(module: Any) -> list[Any]:
    if isinstance(module, RNNBase):
        return list(module._cells)  # the stack's cells, one per layer and direction
    if isinstance(module, Bidirectional):
        return [module.forward_layer.cell, module.backward_layer.cell]
    return [module.cell]


def _checked(who: str, module: Any, x: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check module, x and lengths before any work. Returns x in float64 and the (B, T) mask
    of real steps."""
    if not isinstance(module, (Recurrent, Bidirectional, RNNBase)):
        raise NotUnrollingError(f"{who}: module must unroll ({_UNROLLS}), got "
                                f"{type(module).__name__}")
    first = module.forward_layer if isinstance(module, Bidirectional) else module
    layout = "(B, T, input_size)" if first.batch_first else "(T, B, input_size)"
    try:
        arr = np.asarray(x._data if isinstance(x, Tensor) else x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: x must be a numeric array or Tensor {layout}, got "
                        f"{type(x).__name__}") from err
    if arr.ndim != 3 or 0 in arr.shape[:2]:
        raise ValueError(f"{who}: x must be a non-empty 3-D batch {layout} as the "
                         f"{type(module).__name__} expects, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{who}: x has non-finite entries (NaN or inf)")
    t_axis = 1 if first.batch_first else 0
    batch, steps = arr.shape[1 - t_axis], arr.shape[t_axis]
    mask = lengths_mask(lengths, batch, steps, who)
    return arr, np.ones((batch, steps), bool) if mask is None else mask


def _float64(state: Any) -> Any:
    """An initial state (a Tensor, array, or nested tuple/list of them) cast to float64."""
    if isinstance(state, (tuple, list)):
        return type(state)(_float64(s) for s in state)
    if isinstance(state, Tensor) or (isinstance(state, np.ndarray) and state.dtype.kind == "f"):
        return Tensor(np.asarray(state._data if isinstance(state, Tensor) else state, np.float64))
    return state


def _tap(cell: Any, pending: list[_Step]) -> None:
    """Make the (copied) cell note the arguments of every step call the unroll makes."""
    name = "step" if cell.uses_fast_path() else "forward"  # what the unroll calls
    fn = getattr(cell, name)

    def tapped(inp: Any, state: Any, *rest: Any) -> Any:
        pending.append(_Step(fn, inp, state, rest))
        return fn(inp, state, *rest)

    object.__setattr__(cell, name, tapped)  # an instance attribute, on the copy only


def _trajectory(who: str, module: Any, x: Any, initial_state: Any, lengths: Any) -> _Trajectory:
    """Run a float64, eval-mode copy of `module` over x once and keep every step's arguments."""
    x64, valid = _checked(who, module, x, lengths)
    model = copy.deepcopy(module)
    model.to(np.float64).eval()
    for p in model.parameters():  # constants here: backward computes no weight gradients
        p.requires_grad, p.grad = False, None
    pending: list[_Step] = []
    steps: dict[Key, dict[int, _Step]] = {}
    for cell in {id(c): c for c in _cells(model)}.values():
        _tap(cell, pending)

    def observe(layer: int, direction: str, t: int, state: Any) -> None:
        if not pending:
            raise RuntimeError(f"{who}: step t={t} of layer {layer} {direction} ran without "
                               f"calling its cell's step")
        steps.setdefault((layer, direction), {})[t] = pending.pop()

    for _, mod in model.named_modules():
        if isinstance(getattr(mod, "step_observers", None), list):
            object.__setattr__(mod, "step_observers", [observe])
    try:
        with no_grad():
            model(x64, _float64(initial_state), lengths)
    except (TypeError, ValueError, IndexError) as err:  # the module's own check: name us too
        kind = next(k for k in (TypeError, IndexError, ValueError) if isinstance(err, k))
        raise kind(f"{who}: {err}") from err
    return _Trajectory(who, dict(sorted(steps.items())), valid, valid.sum(axis=1))


def _parts(state: Any) -> tuple[Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _repeat(obj: Any, n: int) -> Any:
    """Each batch row of a Tensor (or a tuple of them) repeated n times in place: (B*n, ...)."""
    if isinstance(obj, tuple):
        return tuple(_repeat(o, n) for o in obj)
    return Tensor(np.repeat(obj._data, n, axis=0)) if isinstance(obj, Tensor) else obj


def _step_jacobian(who: str, step: _Step, valid: np.ndarray, out: np.ndarray) -> tuple:
    """Write J (B, S, S) of one step into `out`: J[b][i, j] = d s_new[b, i] / d s_prev[b, j],
    from one backward of the step on a batch of B*S copies; the identity where `valid` (B,)
    is False (a padded step)."""
    parts = _parts(step.state)
    batch, size = out.shape[:2]
    leaves = tuple(Tensor(np.repeat(p._data, size, axis=0), requires_grad=True) for p in parts)
    state = leaves if isinstance(step.state, tuple) else leaves[0]
    new = step.fn(_repeat(step.inp, size), state, *step.rest)
    flat = [p.reshape(batch * size, -1) for p in _parts(new)]
    new_state = flat[0] if len(flat) == 1 else cat(flat, axis=1)
    if new_state.shape[1] != size:
        raise ValueError(f"{who}: a step turned a state of {size} entries per sequence into "
                         f"one of {new_state.shape[1]}; a recurrent state keeps its size")
    rows = out.reshape(batch * size, size)  # a view: row b*S + j is row j of J[b]
    if new_state.requires_grad:  # row b*S + j seeds e_j, so the leaf's row b*S + j is J[b][j]
        new_state.backward(np.tile(np.eye(size, dtype=new_state.dtype), (batch, 1)))
        np.concatenate([np.zeros((batch * size, int(np.prod(p.shape[1:])))) if leaf.grad is None
                        else leaf.grad.reshape(batch * size, -1)
                        for p, leaf in zip(parts, leaves)], axis=1, out=rows)
    else:  # the new state does not depend on the old one
        rows[...] = 0.0
    if not valid.all():
        out[~valid] = np.eye(size)
    return leaves, new_state  # for the caller to hold (see _jacobian_steps)


def _state_size(traj: _Trajectory, key: Key) -> int:
    first = next(iter(traj.steps[key].values()))
    return sum(int(np.prod(p.shape[1:])) for p in _parts(first.state))


def _jacobian_steps(traj: _Trajectory, key: Key,
                    out: np.ndarray | None = None) -> Iterator[np.ndarray | None]:
    """J_t (B, S, S) in processing order, written into out[t] if `out` (T, B, S, S) is given
    (else into one reused buffer); None for a step padded in every sequence."""
    size = _state_size(traj, key)
    buffer = np.empty((traj.valid.shape[0], size, size))
    for t, step in traj.steps[key].items():
        valid, dest = traj.valid[:, t], buffer if out is None else out[t]
        if not valid.any():
            dest[...] = np.eye(size)
            yield None
        else:  # a fresh context: grad mode on (no graph scope) even under the caller's no_grad;
            # the previous step's arrays stay alive until this one has allocated its own, so
            # the allocator reuses memory instead of returning it to the OS and faulting it
            # back in (about a fifth of the time of an LSTM with S=256)
            _held = contextvars.Context().run(_step_jacobian, traj.who, step, valid, dest)
            yield dest


def _all_jacobians(traj: _Trajectory) -> dict[Key, np.ndarray]:
    out = {}
    for key in traj.steps:
        size, (batch, steps) = _state_size(traj, key), traj.valid.shape
        out[key] = np.empty((steps, batch, size, size))
        for _ in _jacobian_steps(traj, key, out[key]):
            pass
    return out


def state_jacobians(module: Any, x: Any, initial_state: Any = None,
                    lengths: Any = None) -> dict[Key, np.ndarray]:
    """Every step's state Jacobian along the trajectory of x, exactly, in float64.

    Args:
        module: a Recurrent (any cell), Bidirectional, or RNN/LSTM/GRU stack; left unchanged.
        x: one 3-D batch laid out as the module expects. initial_state, lengths: as its forward.
    Returns:
        {(layer, direction): (T, B, S, S)}: J[t, b][i, j] = d s_t[i] / d s_prev[j] for sequence
        b, s_prev the state step t started from (s_{t+1} for a backward direction); the
        identity at a padded step.
    """
    return _all_jacobians(_trajectory("state_jacobians", module, x, initial_state, lengths))


def _given(who: str, module: Any, x: Any, lengths: Any,
           jacobians: Any) -> tuple[dict[Key, np.ndarray], np.ndarray]:
    """A state_jacobians result handed back in, checked against module and x."""
    valid = _checked(who, module, x, lengths)[1]
    if not isinstance(jacobians, dict):
        raise TypeError(f"{who}: jacobians must be the dict state_jacobians returns, got "
                        f"{type(jacobians).__name__}")
    if set(jacobians) != set(_keys(module)):
        raise ValueError(f"{who}: jacobians has keys {list(jacobians)}, the "
                         f"{type(module).__name__} reports {_keys(module)}")
    out = {}
    for key in _keys(module):
        try:
            jac = np.asarray(jacobians[key], np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{who}: jacobians[{key}] must be a float array, got "
                            f"{type(jacobians[key]).__name__}") from err
        if jac.ndim != 4 or jac.shape[:2] != valid.shape[::-1] or jac.shape[2] != jac.shape[3]:
            raise ValueError(f"{who}: jacobians[{key}] must have shape (T, B, S, S) with "
                             f"(T, B) = {valid.shape[::-1]}, got {jac.shape}")
        out[key] = jac
    return out, valid


def _order(key: Key, steps: int) -> range:
    """Input positions in the order the unroll processed them."""
    return range(steps - 1, -1, -1) if key[1] == "backward" else range(steps)


def _span_norms(jac: np.ndarray, order: range) -> np.ndarray:
    """(T, B): ||J_last ... J_{t+1}||_2 per sequence; the product is kept at norm 1 with its
    scale in logs, so no intermediate over- or underflows."""
    steps, batch, size, _ = jac.shape
    prod = np.broadcast_to(np.eye(size), (batch, size, size)).copy()
    log_scale, norms = np.zeros(batch), np.empty((steps, batch))
    for t in reversed(order):  # from the last processed step back to the first
        sigma = np.linalg.norm(prod, 2, axis=(1, 2))
        norms[t] = sigma * np.exp(log_scale)
        scale = np.where(sigma > 0, sigma, 1.0)
        log_scale += np.log(scale)
        prod = (prod / scale[:, None, None]) @ jac[t]
    return norms


def jacobian_norms(module: Any, x: Any, initial_state: Any = None, lengths: Any = None, *,
                   jacobians: dict[Key, np.ndarray] | None = None) -> dict[Key, np.ndarray]:
    """Spectral norm of d s_last / d s_t: how much BPTT can scale a gradient from the last
    state back to step t (1 at the last processed step).

    Args: as state_jacobians; `jacobians`, its result for these arguments, is reused if given.
    Returns: {(layer, direction): (T, B)}, indexed by input position t.
    """
    who = "jacobian_norms"
    if jacobians is None:
        jacs = _all_jacobians(_trajectory(who, module, x, initial_state, lengths))
    else:
        jacs = _given(who, module, x, lengths, jacobians)[0]
    return {key: _span_norms(jac, _order(key, jac.shape[0])) for key, jac in jacs.items()}


def _check_k(who: str, k: Any, sizes: dict[Key, int]) -> None:
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{who}: k must be an int or None, got {type(k).__name__}")
    for key, size in sizes.items():
        if not 1 <= k <= size:
            raise ValueError(f"{who}: k must be in [1, S] with the state size "
                             f"S={size} of layer {key[0]} {key[1]}, got k={k}")


def _qr_exponents(steps: Iterator[np.ndarray | None], batch: int, size: int, k: int,
                  counts: np.ndarray) -> np.ndarray:
    """QR method from the identity frame: Q, R = qr(J_t Q) step by step; the mean of
    log|diag R| over each sequence's processed steps, sorted descending. (B, k)."""
    frame = np.broadcast_to(np.eye(size)[:, :k], (batch, size, k)).copy()
    total = np.zeros((batch, k))
    with np.errstate(divide="ignore"):  # a singular step: a direction lost, exponent -inf
        for jac in steps:
            if jac is not None:  # None: padded everywhere, J = I adds log 1 = 0
                frame, r = np.linalg.qr(jac @ frame)
                total += np.log(np.abs(np.diagonal(r, axis1=1, axis2=2)))
    return -np.sort(-(total / counts[:, None]), axis=1)


def lyapunov_exponents(module: Any, x: Any, k: int | None = None, initial_state: Any = None,
                       lengths: Any = None, *,
                       jacobians: dict[Key, np.ndarray] | None = None) -> dict[Key, np.ndarray]:
    """The k largest Lyapunov exponents of the state dynamics along x's trajectory.

    QR method from the identity frame, in nats per step: the mean over each sequence's
    processed steps (its length with `lengths`) of log|diag R|, sorted descending.
    Args: k (default S, at most S); the rest as state_jacobians, `jacobians` reused if given.
    Returns: {(layer, direction): (B, k)}.
    """
    who = "lyapunov_exponents"
    if jacobians is not None:
        jacs, valid = _given(who, module, x, lengths, jacobians)
        sizes = {key: jac.shape[2] for key, jac in jacs.items()}
        _check_k(who, k, sizes)
        return {key: _qr_exponents((jac[t] for t in _order(key, jac.shape[0])), jac.shape[1],
                                   sizes[key], sizes[key] if k is None else k,
                                   valid.sum(axis=1))
                for key, jac in jacs.items()}
    traj = _trajectory(who, module, x, initial_state, lengths)
    sizes = {key: _state_size(traj, key) for key in traj.steps}
    _check_k(who, k, sizes)
    return {key: _qr_exponents(_jacobian_steps(traj, key), traj.valid.shape[0],
                               sizes[key], sizes[key] if k is None else k, traj.counts)
            for key in traj.steps}


def plot_dynamics(module: Any, x: Any, path: str | os.PathLike, k: int | None = None,
                  initial_state: Any = None, lengths: Any = None) -> str:
    """Save a PNG of the dynamics along x and return `path` (needs matplotlib): the extreme
    singular values of each step Jacobian over t, `jacobian_norms` over t (both the mean over
    the batch, in log scale) and the Lyapunov spectrum (mean over the batch), per key."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # optional extra `plot`
        raise ImportError("plot_dynamics needs matplotlib: pip install matplotlib (or "
                          "tinygrad_rnn[plot])") from err
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"plot_dynamics: path must be a str or os.PathLike, got "
                        f"{type(path).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"plot_dynamics: path's directory {folder} does not exist")
    traj = _trajectory("plot_dynamics", module, x, initial_state, lengths)
    _check_k("plot_dynamics", k, {key: _state_size(traj, key) for key in traj.steps})
    jacs = _all_jacobians(traj)
    norms = jacobian_norms(module, x, lengths=lengths, jacobians=jacs)
    exps = lyapunov_exponents(module, x, k, lengths=lengths, jacobians=jacs)
    fig = Figure(figsize=(13, 4.2))
    ax_sv, ax_norm, ax_exp = fig.subplots(1, 3)
    for key, jac in jacs.items():
        label = f"layer {key[0]} {key[1]}"
        sv = np.linalg.svd(jac, compute_uv=False)  # (T, B, S), descending
        line, = ax_sv.semilogy(sv[..., 0].mean(axis=1), label=f"{label} max")
        ax_sv.semilogy(sv[..., -1].mean(axis=1), "--", color=line.get_color(),
                       label=f"{label} min")
        mean = norms[key].mean(axis=1)
        ax_norm.semilogy(np.where(mean > 0, mean, np.nan), label=label)
        ax_exp.plot(np.arange(1, exps[key].shape[1] + 1), exps[key].mean(axis=0), ".-",
                    label=label)
    ax_sv.set(xlabel="time step t", ylabel="singular value of d s_t / d s_prev",
              title="step Jacobians (batch mean)")
    ax_norm.set(xlabel="time step t", ylabel="||d s_last / d s_t||_2",
                title="span norms (batch mean)")
    ax_exp.set(xlabel="index i", ylabel="exponent (nats per step)",
               title="Lyapunov spectrum (batch mean)")
    ax_exp.axhline(0.0, color="gray", lw=0.8)
    for ax in (ax_sv, ax_norm, ax_exp):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(os.fspath(path))
    return os.fspath(path)
