"""Optimizers with gradient hooks: SGD, Adam, RMSprop, Adagrad, and gradient clipping.

`step()` runs every hook, in order, on the parameters that have a gradient, then updates
each trainable parameter in place with torch's update rule (same defaults and names). A hook
is any callable `hook(params)`; the three clips below record what they saw in `last_norm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import numpy as np

from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn import versions
from tinygrad_rnn.nn.module import Module, Parameter
from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.validate import as_real, check_bool, check_real

Hook = Callable[[list[Parameter]], Any]
_FLAGS = ("nesterov", "amsgrad", "centered")  # the boolean hyper-parameters


def _collect(params: Any, who: str, what: str = "params"
             ) -> list[tuple[str | None, Parameter]]:
    """(name or None, Parameter) pairs from a Tensor, a Module, an iterable of Parameters or of
    (name, Parameter) pairs, or a {name: Parameter} mapping; read once (a generator is fine).
    A plain leaf Tensor passes too (typed as the Parameter it stands for)."""
    if isinstance(params, Tensor):
        params = [params]
    elif isinstance(params, Module):
        params = params.named_parameters()
    elif isinstance(params, Mapping):
        if "params" in params:
            raise TypeError(f"{who}: parameter groups (dicts with 'params') are not supported; "
                            f"pass the parameters, or one optimizer per group")
        params = params.items()
    elif isinstance(params, (set, frozenset)):  # torch: a set has no order, so neither has state
        raise TypeError(f"{who}: {what} must be an ordered collection (a list), got a set")
    try:
        items = list(params)
    except TypeError:
        raise TypeError(f"{who}: {what} must be Parameters, a Module or (name, Parameter) pairs, "
                        f"got {type(params).__name__}") from None
    pairs: list[tuple[str | None, Parameter]] = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            pairs.append(item)
        elif isinstance(item, dict):
            raise TypeError(f"{who}: parameter groups (dicts) are not supported; pass the "
                            f"parameters")
        else:
            pairs.append((None, item))
    for name, p in pairs:
        if not isinstance(p, Tensor):
            label = f" ({name!r})" if name else ""
            raise TypeError(f"{who}: expected Parameters in {what}, got {type(p).__name__}"
                            f"{label}")
    return pairs


def _norm(x: Any, norm_type: float) -> float:
    """Vector norm of the flattened array, in float64 so float32 squares cannot overflow.

    Orders below 1 follow torch: 0 counts the non-zero entries, a negative order sends a zero
    entry's |x|^p to inf and so the norm to 0 (without numpy's divide warning).
    """
    x = np.asarray(x, np.float64).ravel()
    if not x.size:
        return 0.0
    with np.errstate(divide="ignore"):
        return float(np.linalg.norm(x, norm_type))


def clip_grad_value_(params: Tensor | Iterable[Any], clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value] in place (as torch).

    Shape: each grad keeps its parameter's shape; parameters without a grad are skipped.
    """
    params = [p for _, p in _collect(params, "clip_grad_value_")]
    hook = ClipValue(clip_value, _who="clip_grad_value_")
    if _tensor._TRACE is not None:  # inside a recorded step: each replay clips again
        _tensor._TRACE.host(lambda: hook(params))
    hook(params)


def clip_grad_norm_(params: Tensor | Iterable[Any], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so their joint norm is at most `max_norm` (as torch).

    Args:
        norm_type: p of the p-norm over all gradient entries; `float('inf')` for the max.
        error_if_nonfinite: raise RuntimeError naming the first parameter whose grad is not finite.
    Returns:
        The total norm (a float) of all gradients, each of any shape, before clipping.
    """
    pairs = _collect(params, "clip_grad_norm_")
    hook = ClipGlobalNorm(max_norm, norm_type, error_if_nonfinite, [q for q in pairs if q[0]],
                          _who="clip_grad_norm_")
    params = [p for _, p in pairs]
    if _tensor._TRACE is not None:  # inside a recorded step: each replay clips again
        _tensor._TRACE.host(lambda: hook(params))
    hook(params)
    return hook.last_norm


class _ClipHook:
    """Shared parts of the clip hooks: `last_norm`, the finiteness check, parameter names.

    `names` (a Module, a {name: Parameter} mapping or (name, Parameter) pairs) labels errors;
    an optimizer built from `named_parameters()` fills it in when it is empty.
    """

    def __init__(self, error_if_nonfinite: bool, names: Any, who: str) -> None:
        self.who = who
        self.error_if_nonfinite = check_bool(who, "error_if_nonfinite", error_if_nonfinite)
        self.last_norm: Any = None  # a float (ClipNorm: a list of floats) once called
        pairs = _collect(() if names is None else names, who, "names")
        self.names = {id(p): n for n, p in pairs if n is not None}  # id(parameter) -> name

    def _grads(self, params: list[Parameter]) -> list[np.ndarray]:
        if isinstance(params, Tensor) or not isinstance(params, (list, tuple)):
            raise TypeError(f"{self.who}: a hook is called with the list of parameters, got "
                            f"{type(params).__name__}")
        return [p.grad for p in params if p.grad is not None]

    def _check_finite(self, params: list[Parameter], norms: list[float], what: str) -> None:
        """With error_if_nonfinite, name the first parameter whose norm is inf or NaN."""
        if not self.error_if_nonfinite:
            return
        with_grad = [(i, p) for i, p in enumerate(params) if p.grad is not None]
        for (i, p), norm in zip(with_grad, norms):
            if not math.isfinite(norm):
                name = f"'{self.names[id(p)]}' " if id(p) in self.names else ""
                g = cast(np.ndarray, p.grad)  # with_grad holds the parameters with a grad
                bad = f"{int(np.isnan(g).sum())} NaN, {int(np.isinf(g).sum())} inf"
                raise RuntimeError(f"{self.who}: the gradient of parameter {name}(index {i}, "
                                   f"shape {p.shape}) is not finite ({bad}), so its {what} is "
                                   f"{norm}")


class ClipValue(_ClipHook):
    """Clamp each gradient entry to [-clip_value, clip_value] (Keras clipvalue).

    `last_norm` is the largest absolute gradient entry seen, before clipping (a float).
    """

    def __init__(self, clip_value: float, error_if_nonfinite: bool = False, names: Any = None, *,
                 _who: str = "ClipValue"):
        clip_value = check_real(_who, "clip_value", clip_value, finite=False)
        super().__init__(error_if_nonfinite, names, _who)
        self.clip_value = clip_value

    def __call__(self, params: list[Parameter]) -> None:
        grads = self._grads(params)
        norms = [_norm(g, math.inf) for g in grads]
        self._check_finite(params, norms, "largest absolute entry")
        self.last_norm = max(norms, default=0.0)
        for g in grads:
            np.clip(g, -self.clip_value, self.clip_value, out=g)


class ClipNorm(_ClipHook):
    """Scale each gradient on its own by min(1, max_norm / its L2 norm) (Keras clipnorm).

    `last_norm` is the list of per-tensor L2 norms before clipping, in parameter order.
    """

    def __init__(self, max_norm: float, error_if_nonfinite: bool = False, names: Any = None):
        max_norm = check_real("ClipNorm", "max_norm", max_norm, finite=False)
        super().__init__(error_if_nonfinite, names, "ClipNorm")
        self.max_norm = max_norm

    def __call__(self, params: list[Parameter]) -> None:
        grads = self._grads(params)
        norms = [_norm(g, 2.0) for g in grads]
        self._check_finite(params, norms, "L2 norm")
        self.last_norm = norms
        for g, norm in zip(grads, self.last_norm):
            if norm > self.max_norm:
                g *= self.max_norm / norm


class ClipGlobalNorm(_ClipHook):
    """Scale all gradients together by min(1, max_norm / (total_norm + 1e-6)) (torch
    clip_grad_norm_, Keras global_clipnorm). `last_norm` is the total norm before clipping.

    The total norm is the `norm_type`-norm of the per-tensor norms, as torch (inf: the largest
    |entry|; 0 and negative orders as torch too). error_if_nonfinite raises only when that
    total is not finite (an inf entry leaves a norm of order <= 0 finite, as in torch).
    """

    def __init__(self, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                 names: Any = None, *, _who: str = "ClipGlobalNorm"):
        max_norm = check_real(_who, "max_norm", max_norm, finite=False)
        norm_type = as_real(_who, "norm_type", norm_type)
        super().__init__(error_if_nonfinite, names, _who)
        self.max_norm, self.norm_type = max_norm, norm_type

    def __call__(self, params: list[Parameter]) -> None:
        grads = self._grads(params)
        norms = [_norm(g, self.norm_type) for g in grads]
        total = _norm(norms, self.norm_type)
        if self.error_if_nonfinite and not math.isfinite(total):
            self._check_finite(params, norms, f"norm of order {self.norm_type}")
            raise RuntimeError(f"{self.who}: the total norm of order {self.norm_type} is not "
                               f"finite ({total})")
        self.last_norm = total
        coef = self.max_norm / (total + 1e-6)  # torch's 1e-6: a zero norm cannot divide by 0
        if not coef >= 1.0:  # a NaN coefficient reaches the grads, as in torch
            with np.errstate(invalid="ignore"):  # inf * 0 -> NaN, as torch, without a warning
                for g in grads:
                    g *= coef


class Optimizer:
    """Base class: the parameter list, per-parameter `state`, the hooks, L2 weight decay.

    Args:
        params: Parameters, a Module, or (name, Parameter) pairs (`named_parameters()`),
            whose names then label the clip hooks' errors.
        defaults: hyper-parameters, set as attributes (change `opt.lr` between steps); the
            numeric ones must be finite reals >= 0 (ValueError; TypeError for a non-number).
        hooks: callables `hook(params)` run in order by `step()` before the update.
    """

    weight_decay: float  # the hyper-parameters are attributes, set from `defaults`

    def __init__(self, params: Any, defaults: Mapping[str, Any], hooks: Iterable[Hook] = ()):
        who = type(self).__name__
        pairs = _collect(params, who)
        if not pairs:
            raise ValueError(f"{who}: got an empty parameter list")
        if len({id(p) for _, p in pairs}) < len(pairs):
            raise ValueError(f"{who}: the parameter list holds a parameter twice")
        for i, (name, p) in enumerate(pairs):
            if not p.is_leaf:  # torch's rule: its update would not reach what made it
                raise ValueError(f"{who}: can't optimize a non-leaf Tensor (parameter "
                                 f"{name or i}, made by {p.op_name})")
        self.defaults = {k: self._checked(who, k, v) for k, v in defaults.items()}
        self._check_defaults(who)
        hooks = self._checked_hooks(who, hooks)  # all of them before any is added
        self.params = [p for _, p in pairs]
        self.names = [n for n, _ in pairs]
        self.__dict__.update(self.defaults)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]  # state[i] is params[i]'s
        self.hooks: list[Hook] = []
        for hook in hooks:
            self.add_hook(hook)

    @staticmethod
    def _checked(who: str, key: str, value: Any) -> Any:
        """A hyper-parameter as torch checks it, for any real type (numpy scalars, 0-d arrays
        and Tensors too): flags are bools, betas a pair in [0, 1), the rest finite and >= 0."""
        if key in _FLAGS:
            return check_bool(who, key, value)
        if key == "betas":
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{who}: betas must be a pair (beta1, beta2), got "
                                f"{type(value).__name__}")
            if len(value) != 2:
                raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {len(value)} "
                                 f"values")
            return tuple(check_real(who, f"betas[{i}]", b, 0.0, 1.0, high_open=True)
                         for i, b in enumerate(value))
        return check_real(who, key, value)

    def _check_defaults(self, who: str) -> None:
        """Checks that tie hyper-parameters together (SGD's Nesterov needs momentum)."""

    @staticmethod
    def _checked_hooks(who: str, hooks: Any) -> list[Hook]:
        if callable(hooks) and not isinstance(hooks, (list, tuple)):
            raise TypeError(f"{who}: hooks must be a list of callables, got one "
                            f"{type(hooks).__name__} (wrap it in a list)")
        try:
            hooks = list(hooks)
        except TypeError:
            raise TypeError(f"{who}: hooks must be a list of callables, got "
                            f"{type(hooks).__name__}") from None
        for i, hook in enumerate(hooks):
            if not callable(hook):
                raise TypeError(f"{who}: hooks[{i}] is a {type(hook).__name__}, expected a "
                                f"callable hook(params)")
        return hooks

    def add_hook(self, hook: Hook) -> Hook:
        """Append a gradient hook; a clip hook without names gets this optimizer's names."""
        if not callable(hook):
            raise TypeError(f"add_hook: expected a callable, got {type(hook).__name__}")
        if isinstance(hook, _ClipHook) and not hook.names:
            hook.names = {id(p): n for n, p in zip(self.names, self.params) if n is not None}
        self.hooks.append(hook)
        return hook

    def zero_grad(self) -> None:
        if _tensor._TRACE is not None:  # inside a recorded step: each replay does it again
            _tensor._TRACE.host(self.zero_grad)
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Run the hooks on the parameters with a grad, then update the trainable ones in place.

        Each update keeps the parameter's array (same object, shape and dtype).
        """
        if _tensor._TRACE is not None:  # inside a recorded step: a replay would skip it
            _tensor._TRACE.unreplayable(_tensor._REPLACED)
        with_grad = [p for p in self.params if p.grad is not None]
        for hook in self.hooks:
            hook(with_grad)
        todo = []  # every gradient is checked before the first parameter changes
        for i, p in enumerate(self.params):
            if not p.requires_grad or p.grad is None:
                continue  # frozen, or no gradient this step (a hook may also have dropped it)
            g, name = p.grad, f"'{self.names[i]}' " if self.names[i] else ""
            where = (f"{type(self).__name__}: the grad of parameter {name}(index {i}, shape "
                     f"{p.shape})")
            if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
                what = f"of dtype {g.dtype}" if isinstance(g, np.ndarray) else type(g).__name__
                raise TypeError(f"{where} is {what}, expected a float array")
            if g.shape != p.shape:
                raise ValueError(f"{where} has shape {g.shape}")
            todo.append((i, p, np.asarray(g, p.dtype)))
        for i, p, g in todo:
            if getattr(self, "weight_decay", 0):  # L2 added to the grad, as torch (not AdamW)
                g = g + self.weight_decay * p._data
            state = self.state[i]
            state["step"] = state.get("step", 0) + 1
            self._update(p._data, g, state)
            versions.written(p)  # a backward through ops recorded before this step now raises

    def _update(self, p: np.ndarray, g: np.ndarray, s: dict[str, Any]) -> None:
        """Update array `p` in place from grad `g` (never modified) and its state `s`."""
        raise NotImplementedError


def _buffer(s: dict[str, Any], key: str, p: np.ndarray, fill: float = 0.0) -> np.ndarray:
    if key not in s:
        s[key] = np.full_like(p, fill)
    return s[key]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov, weight decay.

    Positional order is DESIGN.md's (params, lr, momentum, weight_decay, hooks); torch's
    `dampening` and `nesterov` are keyword-only here, so pass them by name.
    """

    lr: float
    momentum: float
    dampening: float
    nesterov: bool

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 hooks: Iterable[Hook] = (), *, dampening: float = 0.0, nesterov: bool = False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov}, hooks)

    def _check_defaults(self, who: str) -> None:
        d = self.defaults
        if d["nesterov"] and (d["momentum"] <= 0 or d["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p: np.ndarray, g: np.ndarray, s: dict[str, Any]) -> None:
        if self.momentum:
            if "momentum_buffer" not in s:
                buf = s["momentum_buffer"] = g.copy()  # first step: no dampening, as torch
            else:
                buf = s["momentum_buffer"]
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam with bias-corrected moments; L2 weight decay added to the grad; optional AMSGrad."""

    lr: float
    betas: tuple[float, float]
    eps: float
    amsgrad: bool

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 hooks: Iterable[Hook] = ()):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad}, hooks)

    def _update(self, p: np.ndarray, g: np.ndarray, s: dict[str, Any]) -> None:
        b1, b2 = self.betas
        t = s["step"]
        m, v = _buffer(s, "exp_avg", p), _buffer(s, "exp_avg_sq", p)
        m += (1 - b1) * (g - m)  # m <- b1 m + (1 - b1) g, written as torch's lerp
        v *= b2
        v += (1 - b2) * (g * g)
        if self.amsgrad:
            v_max = _buffer(s, "max_exp_avg_sq", p)
            v = np.maximum(v_max, v, out=v_max)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
        p -= (self.lr / (1 - b1**t)) * (m / denom)


class RMSprop(Optimizer):
    """RMSprop: divide by a running RMS of the grad (centered: by its running std)."""

    lr: float
    alpha: float
    eps: float
    momentum: float
    centered: bool

    def __init__(self, params: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 hooks: Iterable[Hook] = ()):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay":
                                  weight_decay, "momentum": momentum, "centered": centered}, hooks)

    def _update(self, p: np.ndarray, g: np.ndarray, s: dict[str, Any]) -> None:
        sq = _buffer(s, "square_avg", p)
        sq *= self.alpha
        sq += (1 - self.alpha) * (g * g)
        if self.centered:
            mean = _buffer(s, "grad_avg", p)
            mean += (1 - self.alpha) * (g - mean)
            avg = np.sqrt(sq - mean * mean) + self.eps  # running std: E[g^2] - E[g]^2
        else:
            avg = np.sqrt(sq) + self.eps
        if self.momentum > 0:
            buf = _buffer(s, "momentum_buffer", p)
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p -= self.lr * (g / avg)


class Adagrad(Optimizer):
    """Adagrad: divide by the root of the summed squared grads; lr decays as lr/(1+(t-1)decay)."""

    lr: float
    lr_decay: float
    initial_accumulator_value: float
    eps: float

    def __init__(self, params: Any, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, hooks: Iterable[Hook] = ()):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps}, hooks)

    def _update(self, p: np.ndarray, g: np.ndarray, s: dict[str, Any]) -> None:
        total = _buffer(s, "sum", p, self.initial_accumulator_value)
        total += g * g
        clr = self.lr / (1 + (s["step"] - 1) * self.lr_decay)
        p -= clr * (g / (np.sqrt(total) + self.eps))


__all__ = ["SGD", "Adagrad", "Adam", "ClipGlobalNorm", "ClipNorm", "ClipValue", "Optimizer",
           "RMSprop", "clip_grad_norm_", "clip_grad_value_"]
