"""Numeric gradient checks: central differences in float64 against the engine's backward."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message says where and by how much."""


@dataclass
class GradcheckRecord:
    """How one input's analytic gradient compares with central differences."""

    index: int
    shape: tuple[int, ...]
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    name: str = ""
    ok: bool = True

    def describe(self) -> str:
        who = self.name or f"input {self.index}"
        return (f"{who} {self.shape} worst at {self.worst_index}: analytic {self.analytic:.6g} "
                f"vs numeric {self.numeric:.6g} (abs err {self.max_abs_err:.2e}, "
                f"rel err {self.max_rel_err:.2e})")


def _scalar_fn(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Wrap fn so a non-scalar output is reduced through a fixed random projection."""
    projections: dict[tuple[int, ...], np.ndarray] = {}

    def scalar(*args: Tensor) -> Tensor:
        out = fn(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        if out.data.size == 1:
            return out.reshape(())
        if out.shape not in projections:
            projections[out.shape] = np.random.default_rng(0).standard_normal(out.shape)
        return (out * projections[out.shape]).sum()
    return scalar


def _compare(index: int, analytic: np.ndarray, numeric: np.ndarray, atol: float,
             rtol: float, name: str = "") -> GradcheckRecord:
    err = np.abs(analytic - numeric)
    rel = err / np.maximum(np.abs(numeric), 1e-12)
    excess = err / (atol + rtol * np.abs(numeric))  # > 1 where the tolerance is broken
    worst = np.unravel_index(int(np.argmax(excess)), analytic.shape) if analytic.size else ()
    worst = tuple(int(i) for i in worst)
    return GradcheckRecord(
        index=index, shape=analytic.shape,
        max_abs_err=float(err.max()) if err.size else 0.0,
        max_rel_err=float(rel[err > atol].max()) if (err > atol).any() else 0.0,
        worst_index=worst,
        analytic=float(analytic[worst]) if analytic.size else 0.0,
        numeric=float(numeric[worst]) if numeric.size else 0.0,
        name=name, ok=bool((excess <= 1.0).all()))


def numeric_grad(f: Callable[[], float], x: np.ndarray, eps: float) -> np.ndarray:
    """Central differences (f(x+eps) - f(x-eps)) / 2eps of scalar f, perturbing `x` in place."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = f()
        flat[i] = orig - eps
        minus = f()
        flat[i] = orig
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _float64_inputs(inputs: Sequence[Any]) -> list[Tensor]:
    out = []
    for i, t in enumerate(inputs):
        t = t if isinstance(t, Tensor) else Tensor(t)
        if t.dtype.kind == "f" and t.dtype != np.float64:
            if t.requires_grad:
                warnings.warn(f"gradcheck: input {i} is {t.dtype}; checked as a float64 copy",
                              stacklevel=3)
            t = Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad)
        else:
            t = Tensor(t.data.copy(), requires_grad=t.requires_grad)
        out.append(t)
    return out


def _records(fn, inputs, eps, atol, rtol) -> list[GradcheckRecord]:
    previous = _tensor.get_default_dtype()
    _tensor.set_default_dtype(np.float64)
    try:
        xs = _float64_inputs(inputs)
        scalar = _scalar_fn(fn)
        out = scalar(*xs)
        if not out.requires_grad:
            raise ValueError("gradcheck: the output does not depend on any input with "
                             "requires_grad=True")
        out.backward()
        records = []
        for i, x in enumerate(xs):
            if not x.requires_grad:
                continue
            analytic = np.zeros_like(x.data) if x.grad is None else x.grad

            def value() -> float:
                with no_grad():
                    return float(scalar(*xs).data)
            records.append(_compare(i, analytic, numeric_grad(value, x.data, eps), atol, rtol))
        return records
    finally:
        _tensor.set_default_dtype(previous)


def gradcheck_report(fn: Callable[..., Tensor], inputs: Sequence[Any],
                     eps: float = 1e-6) -> list[GradcheckRecord]:
    """One record per input with requires_grad: max abs/rel errors and the worst element.

    Args:
        fn: maps the inputs (Tensors) to a Tensor; a non-scalar output is projected randomly.
        inputs: Tensors (any float dtype; checked as float64 copies).
    """
    return _records(fn, inputs, eps, atol=1e-5, rtol=1e-3)


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare backward with central differences in float64 for every input with requires_grad.

    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    Returns True, or False / raises GradcheckError naming the input, its shape, the worst
    element, its analytic and numeric values and the error.
    """
    name = getattr(fn, "__name__", "fn")
    for rec in _records(fn, inputs, eps, atol, rtol):
        if not rec.ok:
            if raise_exception:
                raise GradcheckError(f"{name}: {rec.describe()}")
            return False
    return True


_STACK_PARAM = re.compile(r"_l(\d+)(_reverse)?$")  # torch stack names: weight_hh_l1_reverse


def _steps_used(name: str, seen: dict[tuple[str, int, str], set[int]]) -> str:
    """The steps that used parameter `name`: those the unrolling module holding it ran (for a
    stack's weight_hh_l{k}[_reverse], layer k and that direction only); "" outside unrolls."""
    owner = max((m for m, _, _ in seen if not m or name.startswith(m + ".")), key=len,
                default=None)
    rel = name[len(owner or ""):].lstrip(".")  # a stack's own parameter, not a cell's
    stack = None if "." in rel else _STACK_PARAM.search(rel)
    used = [f"t={min(ts)}..{max(ts)} of layer {k} direction {d}" for (m, k, d), ts in
            sorted(seen.items()) if m == owner and (stack is None or (k, d) == (
                int(stack[1]), "backward" if stack[2] else "forward"))]
    where = f" of '{owner}'" if owner else ""
    return f", used in steps {' and '.join(used)}{where}" if used else ""


def gradcheck_module(module: Any, loss_fn: Callable[[], Tensor], eps: float = 1e-6,
                     atol: float = 1e-5, rtol: float = 1e-3,
                     raise_exception: bool = True) -> bool:
    """Check d(loss)/d(parameter) for every trainable parameter of `module` in one call.

    `loss_fn()` takes no argument and returns a scalar Tensor computed with `module` (e.g. a
    whole unrolled recurrent net). The module runs in float64 during the check and gets its
    original arrays and dtypes back afterwards. Returns True or raises GradcheckError with a
    line per failing parameter: name, shape, worst element, analytic vs numeric, and for a
    recurrent layer's parameter the steps t it was used in (seen by `step_observers`).
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    originals = [(p, p.data, p.grad) for _, p in module.named_parameters()]
    previous = _tensor.get_default_dtype()
    try:
        _tensor.set_default_dtype(np.float64)
        for p, data, _ in originals:
            p.data, p.grad = data.astype(np.float64), None

        def value() -> float:
            with no_grad():
                return float(loss_fn().data)
        seen: dict[tuple[str, int, str], set[int]] = {}  # (module, layer, direction) -> t's
        added = [(m, lambda k, d, t, _, n=n: seen.setdefault((n, k, d), set()).add(t))
                 for n, m in module.named_modules() if hasattr(m, "step_observers")]
        try:
            for m, obs in added:
                m.step_observers.append(obs)
            first = loss_fn()
        finally:
            for m, obs in added:
                m.step_observers.remove(obs)
        if first.data.size != 1:
            raise ValueError(f"gradcheck_module: loss_fn must return a scalar, got shape "
                             f"{first.shape}")
        if not np.isfinite(first.data).all():
            raise ValueError(f"gradcheck_module: the loss is not finite ({first.item()})")
        if value() != value():
            raise ValueError("gradcheck_module: loss_fn is not deterministic (dropout in "
                             "training mode?); call module.eval() or seed it")
        first.backward()
        records = [_compare(0, np.zeros_like(p.data) if p.grad is None else p.grad.copy(),
                            numeric_grad(value, p.data, eps), atol, rtol, name)
                   for name, p in named]
        failures = [r for r in records if not r.ok]
        if failures:
            if raise_exception:
                raise GradcheckError("gradcheck_module: " + "\n  ".join(
                    r.describe() + _steps_used(r.name, seen) for r in failures))
            return False
        return True
    finally:
        _tensor.set_default_dtype(previous)
        for p, data, grad in originals:
            p.data, p.grad = data, grad
