"""Composites built from ops: softmax, log_softmax, losses, dropout, embedding.

Nothing here has a backward of its own; gradients come from the primitives.
Class dimension last: logits (..., C), targets (...).

Traceable (jit.py): every array that a result depends on is an argument's own array (wrapped,
not copied) or the output of a primitive, and no Python branch looks at values, so a recorded
step replays these composites on new data. Checks that only raise run here for eager calls;
those whose skipping at replay would give a wrong answer (class targets, embedding indices)
are also made inside a primitive's forward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_rnn import ops
from tinygrad_rnn.shape_ops import ClassIndexError, check_class_targets  # noqa: F401 (public)
from tinygrad_rnn.tensor import Tensor, _wrap, apply, where
from tinygrad_rnn.validate import as_array, check_bool, check_int, own_copy


def _shift(x: Any, axis: Any, name: str) -> tuple[Tensor, Tensor]:
    """x as a floating Tensor and its max along `axis` (0 for an empty x), a constant:
    the max primitive on x's array without a gradient, so a replay recomputes it."""
    x = _input(x, name)
    axis = _axis(axis, x.ndim, name)
    if x.size == 0:  # nothing to take a max of (the max primitive refuses an empty tensor)
        return x, Tensor(np.zeros((), x.dtype))
    return x, apply(ops.Max, _wrap(x._data), axis=axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) by log-sum-exp: the max is subtracted first, so large logits stay finite.

    Shape: any; the result has x's shape. An axis out of range is an IndexError, as torch.
    """
    x, top = _shift(x, axis, "log_softmax")
    shifted = x - top  # a constant shift: no gradient needed
    if x.shape[axis] == 0:  # nothing to normalise (and log(0) of the empty sum would warn)
        return shifted
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed from the max-shifted logits. Shape: as x."""
    x, top = _shift(x, axis, "softmax")
    e = (x - top).exp()
    return e / e.sum(axis=axis, keepdims=True)


def dropout(x: Tensor, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout as torch: zero each element with probability p, scale the rest by 1/(1-p).

    Args:
        x: Tensor of any shape; the result has x's shape.
        p: drop probability in [0, 1]; p=1 gives zeros. Outside [0, 1] is a ValueError.
        training: False (or p=0) returns x itself.
        rng: numpy Generator for the mask; None: numpy's global one (np.random.seed).
    """
    p = _real(p, "dropout", "p", 0.0, 1.0)
    check_bool("dropout", "training", training)
    if rng is not None and not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise TypeError(f"dropout: rng must be a numpy Generator or None, got "
                        f"{type(rng).__name__}")
    x = _input(x, "dropout")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * np.zeros(x.shape, x.dtype)
    # numpy's global generator when rng is None (np.random.seed), as layer init; the mask is
    # a primitive's output without a gradient, drawn afresh when a recorded step replays
    return x * apply(ops.DropoutMask, shape=x.shape, p=p, dtype=x.dtype, rng=rng)


# ---- helpers --------------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")


class RangeError(ValueError, RuntimeError):
    """A value outside its allowed range (binary_cross_entropy's probabilities): a ValueError,
    and a RuntimeError as torch raises there."""


def _input(x: Any, name: str) -> Tensor:
    """x as a floating Tensor: a Tensor as given, an ndarray copied by a primitive (so a
    recorded step binds the caller's array), anything else through Tensor()."""
    arr = as_array(name, "input", x)
    if not isinstance(x, Tensor):
        x = own_copy(arr) if arr is x and arr.dtype.kind == "f" else Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be a floating tensor, got {arr.dtype} of shape "
                        f"{arr.shape}")
    return x


def _real(value: Any, name: str, what: str, low: float, high: float) -> float:
    """A real number in [low, high] (not a bool, not NaN), as a float."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name}: {what} must be a real number, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}: {what} must be in [{low:g}, {high:g}], got {value}")
    return float(value)


def _axis(axis: Any, ndim: int, name: str) -> int:
    """A valid axis of an ndim-array, made non-negative; out of range is an IndexError."""
    axis = check_int(name, "axis", axis)
    if not -max(ndim, 1) <= axis < max(ndim, 1) or ndim == 0:
        raise IndexError(f"{name}: axis {axis} is out of range for a tensor of {ndim} "
                         f"dimension(s)")
    return axis % ndim


def check_padding_idx(name: str, padding_idx: Any, num_embeddings: int) -> int | None:
    """None, or an int in [-num_embeddings, num_embeddings) made non-negative (as torch)."""
    if padding_idx is None:
        return None
    padding_idx = check_int(name, "padding_idx", padding_idx)
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{name}: padding_idx {padding_idx} is out of range for a table of "
                         f"{num_embeddings} rows (expected -{num_embeddings} <= padding_idx < "
                         f"{num_embeddings})")
    return padding_idx % num_embeddings


def _check_reduction(reduction: str, name: str) -> None:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        if loss.size == 0:  # torch: the mean of nothing is NaN (its gradient is empty)
            return loss.sum() + np.asarray(np.nan, loss.dtype)
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _float_target(target: Any, x: Tensor, name: str) -> Tensor:
    """A float target of x's shape; arrays are cast to x's dtype, float Tensors kept (grad)."""
    arr = as_array(name, "target", target)
    if not (isinstance(target, Tensor) and target.dtype.kind == "f"):
        target = _cast(arr, x.dtype)
    if target.shape != x.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape "
                         f"{x.shape}")
    return target


def _const(w: Any, x: Tensor, name: str, what: str, shape: tuple[int, ...]) -> Tensor:
    """A weight that must broadcast to `shape`; arrays become constants in x's dtype."""
    arr = as_array(name, what, w)
    w = w if isinstance(w, Tensor) else _cast(arr, x.dtype)
    try:
        ok = np.broadcast_shapes(w.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: {what} of shape {w.shape} does not broadcast to {shape} "
                         f"(input shape {x.shape})")
    return w


def _cast(arr: np.ndarray, dtype: np.dtype) -> Tensor:
    """A copy of `arr` (a caller's array, or a Tensor's) in floating `dtype`, made by the astype
    primitive on the array itself, so a recorded step binds it rather than its first values."""
    return apply(ops.AsType, _wrap(arr), dtype=dtype)


def _nograd(t: Tensor) -> Tensor:
    """t's array as a leaf without a gradient (a constant computed by primitives from it)."""
    return _wrap(t._data)


def _softplus(z: Tensor) -> Tensor:
    """log(1 + exp(z)) without overflow, and with the exact gradient sigmoid(z) also at z = 0.

    Each branch of the `where` only sees arguments where it is the chosen one, so the
    discarded branch never holds inf (whose zero gradient would become NaN).
    """
    zero = np.zeros((), z.dtype)
    pos = apply(ops.Compare, _nograd(z), Tensor(zero), op="greater_equal")
    zp, zn = where(pos, z, zero), where(pos, zero, z)
    return where(pos, zp + ((-zp).exp() + 1.0).log(), (zn.exp() + 1.0).log())


def _clamped_log(p: Tensor) -> Tensor:
    """log(p) clamped at -100 with torch's BCE gradient: below p = 1e-12 the slope is 1e12.

    torch's backward divides by max(p (1 - p), 1e-12); here p < 1e-12 takes a linear piece
    with that slope whose value is the clamped log, so log(0) and 1/0 never happen. Both
    pieces are always computed (no branch on values): where p >= 1e-12 the result is log(p).
    """
    q = _nograd(p)  # the offset is a constant: computed by primitives, without a gradient
    small = apply(ops.Compare, q, Tensor(np.asarray(1e-12, p.dtype)), op="less")
    clamped = apply(ops.AsType, q, dtype=np.float64).clip(np.exp(-100.0), None).log()
    offset = apply(ops.AsType, clamped - q * 1e12, dtype=p.dtype)
    return where(small, p * 1e12 + offset, where(small, np.ones((), p.dtype), p).log())


# ---- losses ---------------------------------------------------------------------------------

def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error (input - target)^2, reduced as torch.

    Shape: input (*), target (*) the same shape (no broadcasting: a ValueError instead).
    Returns a scalar, or a (*) tensor when reduction='none'.
    """
    _check_reduction(reduction, "mse_loss")
    x = _input(input, "mse_loss")
    diff = x - _float_target(target, x, "mse_loss")
    return _reduce(diff * diff, reduction)


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None,
                         reduction: str = "mean") -> Tensor:
    """-w * (t log p + (1 - t) log(1 - p)) on probabilities p, each log clamped at -100 as torch.

    Shape: input (*) in [0, 1], target (*) the same shape, weight broadcastable to (*).
    Errors: RangeError (a ValueError and, as torch, a RuntimeError) for an input or target
    outside [0, 1] or NaN; ValueError for a shape mismatch or a bad reduction.
    """
    name = "binary_cross_entropy"
    _check_reduction(reduction, name)
    x = _input(input, name)
    t = _float_target(target, x, name)
    for what, arr in (("input", x._data), ("target", t._data)):
        outside = ~((arr >= 0) & (arr <= 1))  # NaN fails both comparisons
        if outside.any():
            raise RangeError(f"{name}: {what} must be probabilities in [0, 1] (all elements of "
                             f"{what} should be between 0 and 1), got {arr[outside].flat[0]} "
                             f"(shape {arr.shape})")
    loss = -(t * _clamped_log(x) + (1.0 - t) * _clamped_log(1.0 - x))
    if weight is not None:
        loss = loss * _const(weight, x, name, "weight", x.shape)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula (torch's):
    (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), times weight.

    Shape: input (*) logits, target (*) the same shape, weight broadcastable to (*),
    pos_weight broadcastable to (*) (typically (C,) for the last axis).
    """
    name = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, name)
    x = _input(input, name)
    t = _float_target(target, x, name)
    scale: float | Tensor = 1.0
    if pos_weight is not None:
        scale = (_const(pos_weight, x, name, "pos_weight", x.shape) - 1.0) * t + 1.0
    loss = (1.0 - t) * x + scale * _softplus(-x)
    if weight is not None:
        loss = loss * _const(weight, x, name, "weight", x.shape)
    return _reduce(loss, reduction)


def _class_targets(target: Any, x: Tensor, ignore_index: int, name: str) -> np.ndarray:
    t = as_array(name, "target", target)
    if t.shape != x.shape[:-1]:
        raise ValueError(f"{name}: target shape {t.shape} does not match input shape {x.shape} "
                         f"(class indices of shape {x.shape[:-1]} expected)")
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name}: class-index targets must be integers, got {t.dtype} of shape "
                         f"{t.shape} (input shape {x.shape})")
    check_class_targets(t, x.shape[-1], ignore_index, name, x.shape)  # class_pick: again
    return t


def _nll(logp: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str,
         smoothing: float, name: str) -> Tensor:
    """Shared body of nll_loss and cross_entropy on log-probabilities logp (..., C).

    Branch-free in the targets' values: the picked scores come from class_pick (which checks
    the targets at every call), the masks from compare, and a zero denominator (every target
    ignored or weighted 0) gives NaN with a zero gradient through where, not an `if`."""
    _check_reduction(reduction, name)
    ignore_index = check_int(name, "ignore_index", ignore_index)
    if logp.ndim == 0:
        raise ValueError(f"{name}: input needs a class dimension, got shape {logp.shape}")
    n_cls = logp.shape[-1]
    w = None if weight is None else _const(weight, logp, name, "weight", (n_cls,))
    if w is not None and w.shape != (n_cls,):
        raise ValueError(f"{name}: weight must have shape ({n_cls},), got {w.shape}")
    t_arr = as_array(name, "target", target)
    if t_arr.shape == logp.shape and t_arr.dtype.kind == "f":  # class probabilities
        probs = _float_target(target, logp, name)
        if smoothing:
            probs = probs * (1.0 - smoothing) + smoothing / n_cls
        per = logp * probs if w is None else logp * probs * w
        loss = -per.sum(axis=-1)
        if reduction == "mean" and loss.size:  # torch: divide by the batch size, not weights
            return loss.sum() / loss.size
        return _reduce(loss, reduction)
    t = _class_targets(target, logp, ignore_index, name)
    flat = logp.reshape(-1, n_cls)
    t_flat = _wrap(t).reshape(-1)  # the caller's array itself (a view of it): bound by a trace
    picked = apply(ops.ClassPick, flat, target=t_flat._data, ignore_index=ignore_index,
                   who=name, shape=logp.shape)
    valid = apply(ops.Compare, t_flat, Tensor(np.asarray(ignore_index)), op="not_equal")
    mask = apply(ops.AsType, valid, dtype=logp.dtype)
    if w is None:
        w_sel = mask
    else:  # the ignored targets pick class 0's weight, masked out
        w_sel = w[where(valid, t_flat, np.zeros((), t.dtype))] * mask
    loss = -(picked * w_sel)
    if smoothing:  # torch: (1 - eps) * nll + eps / C * sum_c w_c * (-logp_c)
        every = flat if w is None else flat * w
        loss = loss * (1.0 - smoothing) - every.sum(axis=-1) * mask * (smoothing / n_cls)
    loss = loss.reshape(t.shape)
    if reduction != "mean":
        return _reduce(loss, reduction)
    denom = w_sel.sum()
    # every target ignored (or weighted 0): NaN as torch, and a zero gradient (never 0/0)
    empty = apply(ops.Compare, _nograd(denom), Tensor(np.zeros((), denom.dtype)), op="equal")
    mean = loss.sum() / where(empty, np.ones((), denom.dtype), denom)
    return where(empty, np.asarray(np.nan, mean.dtype), mean)


def nll_loss(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices given log-probabilities, as torch.

    Shape: input (..., C) log-probabilities, target (...) integers in [0, C) or ignore_index,
    weight (C,). 'mean' divides by the summed weights of the non-ignored targets.
    Errors: ValueError for a shape mismatch, float or out-of-range targets, a bad reduction.
    """
    x = _input(input, "nll_loss")
    return _nll(x, target, weight, ignore_index, reduction, 0.0, "nll_loss")


def cross_entropy(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over the last axis then nll_loss, as torch (stable for any logit size).

    Shape: input (..., C) logits; target (...) integer class indices (or ignore_index), or
    (..., C) float class probabilities; weight (C,). Returns a scalar, or (...) for 'none'.
    Errors: ValueError for a shape mismatch, float index targets, out-of-range targets.
    """
    name = "cross_entropy"
    label_smoothing = _real(label_smoothing, name, "label_smoothing", 0.0, 1.0)
    x = _input(input, name)
    _check_reduction(reduction, name)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name}: input needs a class dimension of at least one class, got "
                         f"shape {x.shape}")
    return _nll(log_softmax(x, -1), target, weight, ignore_index, reduction,
                label_smoothing, name)


# ---- embedding ------------------------------------------------------------------------------

def embedding(indices: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` picked by integer `indices`; repeated indices accumulate gradient.

    Shape: indices (*) integers in [0, num_embeddings), weight (num_embeddings, dim)
    -> (*, dim). The padding_idx row (negative counts from the end) gets no gradient.
    Errors: IndexError for float indices or an index out of range, naming the table size;
    ValueError for a weight that is not 2-D or a padding_idx outside the table.
    """
    idx = as_array("embedding", "indices", indices)
    if not isinstance(weight, Tensor):
        weight = Tensor(as_array("embedding", "weight", weight))
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {weight.shape}")
    n = weight.shape[0]
    padding_idx = check_padding_idx("embedding", padding_idx, n)
    # the op checks the indices (integers, in range) at every call, a replayed one too, and
    # takes the caller's array itself (a trace binds it): "embedding: index 7 is out of ..."
    return apply(ops.Embedding, weight, indices=idx, padding_idx=padding_idx)
