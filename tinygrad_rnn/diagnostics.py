"""BPTT gradient flow: ||dLoss/dh_t|| per time step, per layer and direction.

`record(model)` observes every unrolling module of `model` and keeps each step's state with
`retain_grad()`: after `loss.backward()` its `.grad` is the total derivative dLoss/dh_t (the
paths through all later steps included). No global state: the observers leave on exit.
The causes, the step Jacobians d s_t / d s_prev, their span norms and Lyapunov exponents,
live in dynamics.py and are re-exported here (`diagnostics.state_jacobians`, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinygrad_rnn.dynamics import (  # the causes: step Jacobians (re-exported here)
    jacobian_norms,
    lyapunov_exponents,
    plot_dynamics,
    state_jacobians,
)
from tinygrad_rnn.tensor import Tensor

__all__ = ["Recording", "jacobian_norms", "lyapunov_exponents", "param_grad_norms", "plot",
           "plot_dynamics", "record", "state_jacobians"]

Key = tuple[int, str]  # (layer, direction): direction "forward" or "backward"
PARTS = ("h", "c")  # names of a state tuple's elements; a third and later one is "s2", ...


def _norm(g: np.ndarray | None) -> float:
    """L2 norm over the whole (B, H) gradient in float64; 0.0 when no gradient reached it."""
    return 0.0 if g is None else float(np.linalg.norm(np.asarray(g, np.float64).ravel()))


def param_grad_norms(model: Any) -> dict[str, float]:
    """{parameter name: L2 norm of its .grad}; parameters without a grad are left out."""
    return {n: _norm(p.grad) for n, p in model.named_parameters() if p.grad is not None}


class Recording:
    """The step states seen inside `record(...)`: `states[(layer, direction)][t]` is a tuple
    of Tensors (h,) or (h, c); `sources[key]` names the module that ran that layer."""

    def __init__(self) -> None:
        self.states: dict[Key, dict[int, tuple[Tensor, ...]]] = {}
        self.sources: dict[Key, str] = {}
        self._offsets: dict[str, int] = {}  # module name -> shift of its layer numbers

    def _observe(self, name: str) -> Callable[[int, str, int, Any], None]:
        def obs(layer: int, direction: str, t: int, state: Any) -> None:
            if name not in self._offsets:  # a later module reusing a taken key: number on
                taken = {k for k, src in self.sources.items() if src != name}
                clash = (layer, direction) in taken
                self._offsets[name] = 1 + max(k[0] for k in taken) if clash else 0
            key = (layer + self._offsets[name], direction)
            states = state if isinstance(state, tuple) else (state,)
            self.states.setdefault(key, {})[t] = tuple(s.retain_grad() for s in states)
            self.sources[key] = name
        return obs

    def _steps(self) -> Iterator[tuple[int, str, str, int, np.ndarray | None]]:
        """(layer, direction, part, t, grad) for every recorded state Tensor, in key order."""
        for (layer, direction), seq in sorted(self.states.items()):
            for t, parts in sorted(seq.items()):
                for i, s in enumerate(parts):
                    yield layer, direction, PARTS[i] if i < 2 else f"s{i}", t, s.grad

    def grad_norms(self) -> dict[Key, dict[str, np.ndarray]]:
        """{(layer, direction): {"h": (T,), "c": (T,) (LSTM)}}: ||dLoss/dstate_t|| by input
        position t, the L2 norm over batch and hidden units; 0 where no gradient reached."""
        if all(g is None for *_, g in self._steps()):
            raise RuntimeError("grad_norms: no step state has a gradient; call loss.backward() "
                               "on a loss computed inside the record() block")
        out: dict[Key, dict[str, np.ndarray]] = {}
        for layer, direction, part, t, g in self._steps():  # a step never seen stays NaN
            empty = np.full(1 + max(self.states[layer, direction]), np.nan)
            out.setdefault((layer, direction), {}).setdefault(part, empty)[t] = _norm(g)
        return out

    def report(self, model: Any = None) -> str:
        """Text naming every parameter of `model` and every (layer, direction, state, step)
        whose gradient is not finite; "all gradients finite ..." when there is none."""
        norms = {} if model is None else param_grad_norms(model)  # NaN or inf if any entry is
        lines = [f"parameter {n}: gradient norm {v}" for n, v in norms.items() if not v < np.inf]
        bad: dict[tuple[int, str, str], list[int]] = {}
        for layer, direction, part, t, g in self._steps():
            if g is not None and not np.isfinite(g).all():
                bad.setdefault((layer, direction, part), []).append(t)
        for (layer, direction, part), ts in bad.items():
            first = ts[-1] if direction == "forward" else ts[0]  # where backward met it first
            lines.append(f"dLoss/d{part} of layer {layer} direction {direction}: not finite at "
                         f"{len(ts)} steps in t={ts[0]}..{ts[-1]}, first (in backward) at "
                         f"t={first}")
        if not lines:
            return f"all gradients finite ({len(self.states)} recorded layer directions)"
        return "non-finite gradients:\n  " + "\n  ".join(lines)

    def check_finite(self, model: Any = None) -> None:
        """Raise FloatingPointError with `report(model)` when any gradient is not finite."""
        if (text := self.report(model)).startswith("non-finite"):
            raise FloatingPointError(text)


@contextlib.contextmanager
def record(model: Any) -> Iterator[Recording]:
    """`with record(model) as rec:` run forward and backward, then read `rec.grad_norms()`.
    Observes every module of `model` (itself too) with `step_observers` and removes its
    observers on exit, even on error; ValueError if no module unrolls."""
    rec = Recording()
    added = [(mod, rec._observe(name or type(mod).__name__)) for name, mod in
             model.named_modules() if isinstance(getattr(mod, "step_observers", None), list)]
    if not added:
        raise ValueError(f"record: no module of {type(model).__name__} unrolls (none has "
                         f"step_observers)")
    try:
        for mod, obs in added:
            mod.step_observers.append(obs)
        yield rec
    finally:
        for mod, obs in added:
            if obs in mod.step_observers:
                mod.step_observers.remove(obs)


def plot(source: Any, path: str, title: str = "||dLoss/dh_t|| over time steps") -> str:
    """Save a semilog PNG of the norms vs t and return `path` (needs matplotlib). `source`: a
    Recording, its `grad_norms()` dict, or {label: either} to put several models on one axes;
    zero norms are left out of the log scale."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # optional extra `plot`
        raise ImportError("diagnostics.plot needs matplotlib: pip install matplotlib (or "
                          "tinygrad_rnn[plot])") from err
    if isinstance(source, Recording) or (source and isinstance(next(iter(source)), tuple)):
        source = {"": source}
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for label, norms in source.items():
        norms = norms.grad_norms() if isinstance(norms, Recording) else norms
        for (layer, direction), parts in norms.items():
            for part, arr in parts.items():
                ax.semilogy(np.where(arr > 0, arr, np.nan),
                            label=f"{label} layer {layer} {direction} {part}".strip())
    ax.set(xlabel="time step t", ylabel="||dLoss/dstate_t||", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    FigureCanvasAgg(fig).print_png(path)
    return path
