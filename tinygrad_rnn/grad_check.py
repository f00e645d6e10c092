"""Numeric gradient checks: central differences in float64 against the engine's backward.

Misuse (a bad eps or tolerance, an fn that returns no Tensor, no input to check, a module with no
trainable parameter) is an error naming the function and the argument, raised before anything
changes, whatever raise_exception says; raise_exception only governs a gradient mismatch.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.nn.module import Module
from tinygrad_rnn.tensor import Tensor, no_grad
from tinygrad_rnn.validate import check_bool


class GradcheckError(AssertionError, RuntimeError):
    """Analytic and numeric gradients disagree; the message says where and by how much.

    A RuntimeError too, as torch.autograd.gradcheck.GradcheckError."""


def _check_number(who: str, arg: str, value: Any, positive: bool) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {arg} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{who}: {arg} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")


def _check_settings(who: str, eps: Any, atol: Any = 0.0, rtol: Any = 0.0,
                    raise_exception: Any = True) -> None:
    """eps > 0, atol and rtol >= 0 (all finite), raise_exception a bool."""
    _check_number(who, "eps", eps, positive=True)
    _check_number(who, "atol", atol, positive=False)
    _check_number(who, "rtol", rtol, positive=False)
    check_bool(who, "raise_exception", raise_exception)


def _check_inputs(who: str, fn: Any, inputs: Any) -> list[Any]:
    """The inputs as a list (a lone Tensor is one input, as torch); at least one must be a
    Tensor with requires_grad, as torch's gradcheck demands."""
    if not callable(fn):
        raise TypeError(f"{who}: fn must be callable, got {type(fn).__name__}")
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{who}: inputs must be a Tensor or a list or tuple of inputs, got "
                        f"{type(inputs).__name__}")
    if not any(isinstance(t, Tensor) and t.requires_grad for t in inputs):
        got = ", ".join(type(t).__name__ for t in inputs) or "no inputs"
        raise ValueError(f"{who}: expects at least one input Tensor with requires_grad=True, "
                         f"but none of the inputs has it (got {got})")
    return list(inputs)


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


def _scalar_fn(fn: Callable[..., Tensor], who: str) -> Callable[..., Tensor]:
    """Wrap fn so a non-scalar output is reduced through a fixed random projection."""
    projections: dict[tuple[int, ...], np.ndarray] = {}

    def scalar(*args: Tensor) -> Tensor:
        out = fn(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"{who}: fn must return a Tensor, got {type(out).__name__}")
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
    at = np.unravel_index(int(np.argmax(excess)), analytic.shape) if analytic.size else ()
    worst = tuple(int(i) for i in at)
    return GradcheckRecord(
        index=index, shape=analytic.shape,
        max_abs_err=float(err.max()) if err.size else 0.0,
        max_rel_err=float(rel[err > atol].max()) if (err > atol).any() else 0.0,
        worst_index=worst,
        analytic=float(analytic[worst]) if analytic.size else 0.0,
        numeric=float(numeric[worst]) if numeric.size else 0.0,
        name=name, ok=bool((excess <= 1.0).all()))


def check_deterministic(who: str, value: Callable[[], float]) -> None:
    """Central differences need fn to give one value per input: two calls must agree."""
    if value() != value():
        raise ValueError(f"{who}: fn is not deterministic (two calls on the same inputs "
                         f"differ: dropout in training mode? a random draw?)")


def numeric_grad(f: Callable[[], float], x: np.ndarray, eps: float) -> np.ndarray:
    """Central differences (f(x+eps) - f(x-eps)) / 2eps of scalar f, perturbing `x` in place.

    Shape: x any float array; returns an array of x's shape and dtype."""
    _check_number("numeric_grad", "eps", eps, positive=True)
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or not x.flags.writeable:
        raise TypeError(f"numeric_grad: x must be a writable float ndarray, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
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


def _float64_inputs(inputs: Sequence[Any], who: str = "gradcheck") -> list[Any]:
    """Fresh leaf copies of the Tensors, floats as float64; anything else passed as it is."""
    out = []
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            out.append(t)  # an axis, a flag, an array constant: fn gets it unchanged (as torch)
            continue
        if t.dtype.kind == "f" and t.dtype != np.float64:
            if t.requires_grad:
                warnings.warn(f"{who}: input {i} is {t.dtype}; checked as a float64 copy",
                              stacklevel=3)
            t = Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad)
        else:
            t = Tensor(t.data.copy(), requires_grad=t.requires_grad)
        out.append(t)
    return out


def _records(who: str, fn: Callable[..., Tensor], inputs: Sequence[Any], eps: float,
             atol: float, rtol: float) -> tuple[list[GradcheckRecord], bool]:
    """One record per input with requires_grad, and whether fn's output required grad (when
    it does not, its analytic gradient is 0 everywhere, and that is what is checked, as torch)."""
    previous = _tensor.get_default_dtype()
    _tensor.set_default_dtype(np.float64)
    try:
        xs = _float64_inputs(inputs)
        scalar = _scalar_fn(fn, who)
        out = scalar(*xs)

        def value() -> float:
            with no_grad():
                return float(scalar(*xs).data)
        if not np.isfinite(out.data):
            raise ValueError(f"{who}: fn's output is not finite at these inputs "
                             f"({float(out.data)}), so its gradient cannot be checked there")
        check_deterministic(who, value)
        if out.requires_grad:
            out.backward()
        checked = [(i, x) for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
        return [_compare(i, np.zeros_like(x.data) if x.grad is None else x.grad,
                         numeric_grad(value, x.data, eps), atol, rtol)
                for i, x in checked], bool(out.requires_grad)
    finally:
        _tensor.set_default_dtype(previous)


def gradcheck_report(fn: Callable[..., Tensor], inputs: Sequence[Any],
                     eps: float = 1e-6) -> list[GradcheckRecord]:
    """One record per input with requires_grad: max abs/rel errors and the worst element.

    Args:
        fn: maps the inputs (Tensors) to a Tensor; a non-scalar output is projected randomly.
        inputs: a Tensor or a list/tuple; float Tensors are checked as float64 copies, anything
            else is passed to fn unchanged.
    """
    _check_settings("gradcheck_report", eps)
    inputs = _check_inputs("gradcheck_report", fn, inputs)
    return _records("gradcheck_report", fn, inputs, eps, atol=1e-5, rtol=1e-3)[0]


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare backward with central differences in float64 for every input with requires_grad.

    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    Returns True, or False / raises GradcheckError naming the input, its shape, the worst
    element, its analytic and numeric values and the error.
    """
    _check_settings("gradcheck", eps, atol, rtol, raise_exception)
    inputs = _check_inputs("gradcheck", fn, inputs)
    name = getattr(fn, "__name__", "fn")
    records, needs_grad = _records("gradcheck", fn, inputs, eps, atol, rtol)
    for rec in records:
        if not rec.ok:
            if raise_exception:
                why = "" if needs_grad else (" (fn's output does not require grad, so its "
                                             "analytic gradient is 0: made under no_grad or "
                                             "detached?)")
                raise GradcheckError(f"{name}: {rec.describe()}{why}")
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


def _snapshot(module: Any) -> tuple[list, list]:
    """What gradcheck_module and loss_fn may change: every parameter's array, grad and
    requires_grad, and every sub-module's attributes (training flag, registries, kept state)."""
    mods = [(m, dict(vars(m)), dict(m._parameters), dict(m._modules))
            for _, m in module.named_modules()]
    return mods, [(p, p._data, p.grad, p.requires_grad) for _, p in module.named_parameters()]


def _restore(snapshot: tuple[list, list]) -> None:
    mods, params = snapshot
    for m, attrs, own_params, own_modules in mods:
        vars(m).clear()
        vars(m).update(attrs)
        m._parameters.clear()
        m._parameters.update(own_params)
        m._modules.clear()
        m._modules.update(own_modules)
    for p, data, grad, requires_grad in params:
        p._assign(data)  # the library's own swap: nothing handed out, nothing to watch
        p.grad, p.requires_grad = grad, requires_grad


def gradcheck_module(module: Any, loss_fn: Callable[[], Tensor], eps: float = 1e-6,
                     atol: float = 1e-5, rtol: float = 1e-3,
                     raise_exception: bool = True) -> bool:
    """Check d(loss)/d(parameter) for every trainable parameter of `module` in one call.

    `loss_fn()` takes no argument and returns a scalar Tensor computed with `module` (e.g. a
    whole unrolled recurrent net). The module runs in float64 during the check and comes back
    exactly as it was (arrays, dtypes, grads, training flags), also after an error. Returns True
    or raises GradcheckError with a line per failing parameter: name, shape, worst element,
    analytic vs numeric, and for a recurrent layer's parameter the steps t it was used in (seen
    by `step_observers`). A module with no trainable parameter is a ValueError naming it.
    """
    who = "gradcheck_module"
    params, named = _module_params(who, module, loss_fn, (eps, atol, rtol, raise_exception))
    kind = type(module).__name__
    with float64_run(who, module, loss_fn, params) as (first, seen, value):
        first.backward()
        if all(p.grad is None for _, p in named):
            raise ValueError(f"{who}: loss_fn's loss does not depend on any trainable parameter "
                             f"of {kind}; compute it with the module")
        records = [_compare(0, np.zeros_like(p._data) if p.grad is None else p.grad.copy(),
                            numeric_grad(value, p._data, eps), atol, rtol, name)
                   for name, p in named]
        failures = [r for r in records if not r.ok]
        if failures:
            if raise_exception:
                raise GradcheckError(f"{who}: " + "\n  ".join(
                    r.describe() + _steps_used(r.name, seen) for r in failures))
            return False
        return True


@contextlib.contextmanager
def float64_run(who: str, module: Any, loss_fn: Callable[[], Tensor], params: list
                ) -> Iterator[tuple[Tensor, dict, Callable[[], float]]]:
    """The module in float64 for a check, put back exactly as it was afterwards (arrays,
    dtypes, `.grad`): yields its first loss (recorded), the steps each parameter was used at,
    and `value()`, the loss as a float without a graph (checked to be deterministic)."""
    snapshot = _snapshot(module)
    previous = _tensor.get_default_dtype()
    try:
        _tensor.set_default_dtype(np.float64)
        for _, p in params:
            p._assign(p._data.astype(np.float64))
            p.grad = None
        first, seen = _first_loss(module, loss_fn, who)

        def value() -> float:
            with no_grad():
                return float(loss_fn()._data.reshape(()))
        if value() != value():
            raise ValueError(f"{who}: loss_fn is not deterministic (dropout in training mode?); "
                             f"call module.eval() or seed it")
        yield first, seen, value
    finally:
        _tensor.set_default_dtype(previous)
        _restore(snapshot)


def _module_params(who: str, module: Any, loss_fn: Any, settings: tuple) -> tuple[list, list]:
    """All of module's (name, parameter) pairs and the trainable ones, of which there must be
    at least one; module a Module, loss_fn callable, settings (eps, atol, rtol,
    raise_exception) as _check_settings wants them."""
    if not isinstance(module, Module):
        raise TypeError(f"{who}: module must be a Module, got {type(module).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"{who}: loss_fn must be a callable taking no argument, got "
                        f"{type(loss_fn).__name__}")
    _check_settings(who, *settings)
    params = list(module.named_parameters())
    named = [(n, p) for n, p in params if p.requires_grad]
    if not named:
        what = (f"all {len(params)} of its parameters have requires_grad=False" if params else
                "it has no parameters")
        raise ValueError(f"{who}: module {type(module).__name__} has no trainable parameter to "
                         f"check ({what})")
    return params, named


def _first_loss(module: Any, loss_fn: Callable[[], Tensor], who: str) -> tuple[Tensor, dict]:
    """loss_fn(), checked to be a finite scalar Tensor that requires grad, and the steps each
    unrolling sub-module ran: {(module name, layer, direction): {t, ...}}."""
    seen: dict[tuple[str, int, str], set[int]] = {}  # (module, layer, direction) -> t's
    added = [(m, lambda k, d, t, _, n=n: seen.setdefault((n, k, d), set()).add(t))
             for n, m in module.named_modules() if hasattr(m, "step_observers")]
    try:
        for m, obs in added:
            m.step_observers.append(obs)
        loss = loss_fn()
    finally:
        for m, obs in added:
            m.step_observers.remove(obs)
    if not isinstance(loss, Tensor):
        raise TypeError(f"{who}: loss_fn must return a scalar Tensor, got {type(loss).__name__}")
    if loss.data.size != 1:
        raise ValueError(f"{who}: loss_fn must return a scalar, got shape {loss.shape}")
    if not np.isfinite(loss.data).all():
        raise ValueError(f"{who}: loss_fn's loss is not finite ({float(loss.data.reshape(()))})")
    if not loss.requires_grad:
        raise ValueError(f"{who}: loss_fn's loss does not require grad, so it does not depend on "
                         f"any trainable parameter of {type(module).__name__} (made under "
                         f"no_grad, detached, or without the module?)")
    return loss, seen
