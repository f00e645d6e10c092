"""Where numpy and Tensor spell a function differently, one helper serves both.

A primitive's backward is written once (ops.py, shape_ops.py): on plain arrays it is the fast
numpy gradient; on Tensors wired to the graph (`create_graph=True`, see grad_sweep.py) the same
lines record a differentiable one. Operators, `.reshape`, `.transpose`, `.sum`, `.T` and
indexing are spelled alike in both worlds; the few functions below are not, so each picks its
world by the type of its argument (an ndarray: numpy, else the recorded primitive).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def _tensor_module() -> Any:
    from tinygrad_rnn import tensor  # imported late: tensor.py imports the ops, which use this
    return tensor


_NUMPY = (np.ndarray, np.generic, int, float)


def data(x: Any) -> np.ndarray:
    """The array of a Tensor, or `x` itself: for masks and constants, which get no gradient."""
    return x if type(x) is np.ndarray else np.asarray(getattr(x, "_data", x))


def is_array(x: Any) -> bool:
    """True in the numpy world (an array or a numpy scalar), False for a Tensor."""
    return isinstance(x, _NUMPY)


def _all_numpy(xs: list[Any]) -> bool:
    """No Tensor among xs (a loop: no generator frame)."""
    for x in xs:
        if type(x) is not np.ndarray and not isinstance(x, _NUMPY):
            return False
    return True


def where(cond: np.ndarray, a: Any, b: Any) -> Any:
    """np.where with a constant boolean `cond`; a or b may be a scalar."""
    if isinstance(a, _NUMPY) and isinstance(b, _NUMPY):
        return np.where(cond, a, b)
    t = _tensor_module()
    ref = a if isinstance(a, t.Tensor) else b
    return t.where(cond, ref._lift(a), ref._lift(b))


def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    """x broadcast to `shape` (a read-only view in numpy)."""
    if is_array(x):
        return np.broadcast_to(x, shape)
    t = _tensor_module()
    return t.apply(t.ops.BroadcastTo, x, shape=tuple(shape))


def astype(x: Any, dtype: np.dtype) -> Any:
    """x in `dtype` (no copy when it has it)."""
    if is_array(x):
        return x.astype(dtype, copy=False)
    if x.dtype == dtype:
        return x
    t = _tensor_module()
    return t.apply(t.ops.AsType, x, dtype=dtype)


def concatenate(xs: list[Any], axis: int) -> Any:
    for x in xs:  # _all_numpy inlined: split's backward calls this once per time step
        if type(x) is not np.ndarray and not isinstance(x, _NUMPY):
            break
    else:
        return np.concatenate(xs, axis=axis)
    t = _tensor_module()
    return t.cat([x if isinstance(x, t.Tensor) else t._wrap(x) for x in xs], axis)


def stack(xs: list[Any], axis: int) -> Any:
    if _all_numpy(xs):
        return np.stack(xs, axis=axis)
    t = _tensor_module()
    return t.stack([x if isinstance(x, t.Tensor) else t._wrap(x) for x in xs], axis)


def split_at(x: Any, ends: list[int], axis: int) -> tuple[Any, ...]:
    """Pieces of x along `axis`, cut before each index in `ends` (np.split)."""
    if is_array(x):
        return tuple(np.split(x, ends, axis=axis))
    bounds = [0, *ends, x.shape[axis]]
    return tuple(x.split([int(b - a) for a, b in itertools.pairwise(bounds)], axis))


def unstack(x: Any, axis: int) -> tuple[Any, ...]:
    """The slices of x along `axis`, that axis removed (the inverse of stack)."""
    if is_array(x):
        return tuple(np.moveaxis(x, axis, 0))
    return tuple(x.unbind(axis))


def swapaxes(x: Any, a: int, b: int) -> Any:
    if is_array(x):
        return np.swapaxes(x, a, b)
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return x.transpose(tuple(axes))


def log(x: Any) -> Any:
    """Natural log; log(0) = -inf quietly (callers mask it out)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x) if is_array(x) else x.log()


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum `g` over the axes that broadcasting added or stretched, so it has `shape`."""
    extra = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(extra))) if extra > 0 else g
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    g = g.sum(axis=stretched, keepdims=True) if stretched else g
    if type(g) is np.ndarray or not isinstance(g, np.generic):
        return g  # an array, or a Tensor
    return np.asarray(g)  # a numpy scalar from a full sum
