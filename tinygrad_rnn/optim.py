"""Optimizers with gradient hooks: SGD, Adam, RMSprop, Adagrad, and gradient clipping.

`step()` runs every hook, in order, on the parameters that have a gradient, then updates
each trainable parameter in place with torch's update rule (same defaults and names). A hook
is any callable `hook(params)`; the three clips below record what they saw in `last_norm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from tinygrad_rnn.nn.module import Module, Parameter
from tinygrad_rnn.tensor import Tensor

Hook = Callable[[list[Parameter]], Any]


def _nonneg(who: str, **values: float) -> None:
    """Every hyper-parameter given must be a number >= 0 (NaN fails too)."""
    for key, value in values.items():
        if not value >= 0:
            raise ValueError(f"{who}: invalid {key} {value} (must be >= 0)")


def _collect(params: Any, who: str) -> list[tuple[str | None, Tensor]]:
    """(name or None, Parameter) pairs from a Tensor, a Module, Parameters, or named pairs."""
    if isinstance(params, Tensor):
        params = [params]
    elif isinstance(params, Module):
        params = params.named_parameters()
    pairs = [item if isinstance(item, tuple) else (None, item) for item in params]
    for _, p in pairs:
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: expected Parameters, got {type(p).__name__}")
    return pairs


def _norm(x: Any, norm_type: float) -> float:
    """Vector norm of the flattened array, in float64 so float32 squares cannot overflow."""
    x = np.asarray(x, np.float64).ravel()
    return float(np.linalg.norm(x, norm_type)) if x.size else 0.0


def clip_grad_value_(params: Tensor | Iterable[Any], clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value] in place (as torch).

    Shape: each grad keeps its parameter's shape; parameters without a grad are skipped.
    """
    ClipValue(clip_value)([p for _, p in _collect(params, "clip_grad_value_")])


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
    hook = ClipGlobalNorm(max_norm, norm_type, error_if_nonfinite, [q for q in pairs if q[0]])
    hook([p for _, p in pairs])
    return hook.last_norm


class _ClipHook:
    """Shared parts of the clip hooks: `last_norm`, the finiteness check, parameter names.

    `names` (a Module, a {name: Parameter} mapping or (name, Parameter) pairs) labels errors;
    an optimizer built from `named_parameters()` fills it in when it is empty.
    """

    def __init__(self, error_if_nonfinite: bool, names: Any) -> None:
        self.error_if_nonfinite, self.last_norm = bool(error_if_nonfinite), None
        names = names.items() if isinstance(names, Mapping) else _collect(names or (), "names")
        self.names = {id(p): n for n, p in names if n is not None}  # id(parameter) -> name

    def _grads(self, params: list[Parameter]) -> list[np.ndarray]:
        for i, p in enumerate(params):
            if self.error_if_nonfinite and p.grad is not None and not np.isfinite(p.grad).all():
                name = f"'{self.names[id(p)]}' " if id(p) in self.names else ""
                bad = f"{int(np.isnan(p.grad).sum())} NaN, {int(np.isinf(p.grad).sum())} inf"
                raise RuntimeError(f"{type(self).__name__}: the gradient of parameter {name}"
                                   f"(index {i}, shape {p.shape}) is not finite ({bad})")
        return [p.grad for p in params if p.grad is not None]


class ClipValue(_ClipHook):
    """Clamp each gradient entry to [-clip_value, clip_value] (Keras clipvalue).

    `last_norm` is the largest absolute gradient entry seen, before clipping (a float).
    """

    def __init__(self, clip_value: float, error_if_nonfinite: bool = False, names: Any = None):
        _nonneg("ClipValue", clip_value=clip_value)
        super().__init__(error_if_nonfinite, names)
        self.clip_value = float(clip_value)

    def __call__(self, params: list[Parameter]) -> None:
        grads = self._grads(params)
        self.last_norm = max((_norm(g, math.inf) for g in grads), default=0.0)
        for g in grads:
            np.clip(g, -self.clip_value, self.clip_value, out=g)


class ClipNorm(_ClipHook):
    """Scale each gradient on its own by min(1, max_norm / its L2 norm) (Keras clipnorm).

    `last_norm` is the list of per-tensor L2 norms before clipping, in parameter order.
    """

    def __init__(self, max_norm: float, error_if_nonfinite: bool = False, names: Any = None):
        _nonneg("ClipNorm", max_norm=max_norm)
        super().__init__(error_if_nonfinite, names)
        self.max_norm = float(max_norm)

    def __call__(self, params: list[Parameter]) -> None:
        grads = self._grads(params)
        self.last_norm = [_norm(g, 2.0) for g in grads]
        for g, norm in zip(grads, self.last_norm):
            if norm > self.max_norm:
                g *= self.max_norm / norm


class ClipGlobalNorm(_ClipHook):
    """Scale all gradients together by min(1, max_norm / (total_norm + 1e-6)) (torch
    clip_grad_norm_, Keras global_clipnorm). `last_norm` is the total norm before clipping.

    The total norm is the `norm_type`-norm of all entries (inf: the largest |entry|).
    """

    def __init__(self, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                 names: Any = None):
        _nonneg("ClipGlobalNorm", max_norm=max_norm)
        super().__init__(error_if_nonfinite, names)
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)

    def __call__(self, params: list[Parameter]) -> None:
        grads = self._grads(params)
        total = _norm([_norm(g, self.norm_type) for g in grads], self.norm_type)
        if self.error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f"ClipGlobalNorm: the total norm of order {self.norm_type} is "
                               f"not finite")
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
            numeric ones must be >= 0 (ValueError otherwise).
        hooks: callables `hook(params)` run in order by `step()` before the update.
    """

    def __init__(self, params: Any, defaults: Mapping[str, Any], hooks: Iterable[Hook] = ()):
        who = type(self).__name__
        pairs = _collect(params, who)
        self.params = [p for _, p in pairs]
        self.names = [n for n, _ in pairs]
        if not self.params or len({id(p) for p in self.params}) < len(self.params):
            raise ValueError(f"{who}: the parameter list is empty or holds a parameter twice")
        self.defaults = dict(defaults)
        _nonneg(who, **{k: v for k, v in self.defaults.items() if isinstance(v, (int, float))})
        self.__dict__.update(self.defaults)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]  # state[i] is params[i]'s
        self.hooks: list[Hook] = []
        for hook in hooks:
            self.add_hook(hook)

    def add_hook(self, hook: Hook) -> Hook:
        """Append a gradient hook; a clip hook without names gets this optimizer's names."""
        if not callable(hook):
            raise TypeError(f"add_hook: expected a callable, got {type(hook).__name__}")
        if isinstance(hook, _ClipHook) and not hook.names:
            hook.names = {id(p): n for n, p in zip(self.names, self.params) if n is not None}
        self.hooks.append(hook)
        return hook

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Run the hooks on the parameters with a grad, then update the trainable ones in place.

        Each update keeps the parameter's array (same object, shape and dtype).
        """
        with_grad = [p for p in self.params if p.grad is not None]
        for hook in self.hooks:
            hook(with_grad)
        for i, p in enumerate(self.params):
            if not p.requires_grad or p.grad is None:
                continue  # frozen, or no gradient this step (a hook may also have dropped it)
            g = np.asarray(p.grad, p.dtype)
            if g.shape != p.shape:
                raise ValueError(f"{type(self).__name__}: grad of shape {g.shape} for parameter "
                                 f"{i} of shape {p.shape}")
            if getattr(self, "weight_decay", 0):  # L2 added to the grad, as torch (not AdamW)
                g = g + self.weight_decay * p.data
            state = self.state[i]
            state["step"] = state.get("step", 0) + 1
            self._update(p.data, g, state)

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

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 hooks: Iterable[Hook] = (), *, dampening: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov}, hooks)

    def _update(self, p, g, s):
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

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 hooks: Iterable[Hook] = ()):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam: invalid betas {betas} (each must be in [0, 1))")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad}, hooks)

    def _update(self, p, g, s):
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

    def __init__(self, params: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 hooks: Iterable[Hook] = ()):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay":
                                  weight_decay, "momentum": momentum, "centered": centered}, hooks)

    def _update(self, p, g, s):
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

    def __init__(self, params: Any, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, hooks: Iterable[Hook] = ()):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps}, hooks)

    def _update(self, p, g, s):
        total = _buffer(s, "sum", p, self.initial_accumulator_value)
        total += g * g
        clr = self.lr / (1 + (s["step"] - 1) * self.lr_decay)
        p -= clr * (g / (np.sqrt(total) + self.eps))


__all__ = ["SGD", "Adagrad", "Adam", "ClipGlobalNorm", "ClipNorm", "ClipValue", "Optimizer",
           "RMSprop", "clip_grad_norm_", "clip_grad_value_"]
