"""Tensor, and `apply`, which runs a primitive and records it as a graph node (the backward
engine that walks those nodes is engine.py).

Two ambient settings live here, both as contextvars behind context managers: grad mode
(`no_grad`) and graph scope (`graph_scope`, time-step labels read by viz and diagnostics).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn import ops
from tinygrad_rnn.engine import run_backward
from tinygrad_rnn.gradients import Port
from tinygrad_rnn.ops import Op

_GRAD_ENABLED = contextvars.ContextVar("grad_enabled", default=True)
_SCOPE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("scope", default=())
_default_dtype = np.dtype(np.float32)
_SEQUENCE = itertools.count(1)  # stamps recorded op outputs in creation order (see toposort)


def set_default_dtype(dtype: Any) -> None:
    """Set the float dtype that Python numbers and lists become (numpy dtype or its name)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dt}")
    _default_dtype = dt


def get_default_dtype() -> np.dtype:
    """The float dtype that Python numbers and lists become (float32 unless set)."""
    return _default_dtype


def is_grad_enabled() -> bool:
    return _GRAD_ENABLED.get()


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Nothing computed inside is recorded for backward."""
    token = _GRAD_ENABLED.set(False)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)


class graph_scope(contextlib.ContextDecorator):  # lower case: used like a function, as no_grad
    """Stamp every op created inside with `label` (nested scopes stack: layer, direction, step).

    A class rather than a generator: an unroll enters one per time step.
    """

    def __init__(self, label: str):
        self.label = label

    def __enter__(self) -> None:
        self._token = _SCOPE.set(_SCOPE.get() + (self.label,))

    def __exit__(self, *exc: object) -> None:
        _SCOPE.reset(self._token)


def current_scope() -> tuple[str, ...]:
    return _SCOPE.get()


def _as_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        return arr if dtype is None else arr.astype(dtype, copy=False)
    arr = np.asarray(data)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} data")
    return arr.astype(_default_dtype if dtype is None else dtype, copy=False)


class Tensor:
    """An n-dimensional numpy array that records the ops applied to it for reverse-mode autodiff.

    Args:
        data: array-like. Float numpy arrays keep their dtype, Python numbers and lists become
            the default dtype, integer arrays stay integer (indices).
        requires_grad: accumulate d(output)/d(self) into `.grad` on backward.
        dtype: optional dtype to cast to.
    """

    __slots__ = ("__weakref__", "_op", "data", "grad", "requires_grad")
    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operator
    # a Tensor in the graph is a leaf: no parents, no scope, first in creation order
    _parents: tuple = ()
    _scope: tuple = ()
    _seq = 0
    _freed = False
    _shape = property(lambda self: self.data.shape)  # as a node's, for the engine
    _dtype = property(lambda self: self.data.dtype)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad needs a floating dtype, got {self.data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._op: Op | None = None  # the node that made this tensor; None for a leaf

    # ---- plain attributes -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._op is None)
    op_name = property(lambda self: self._op.name if self._op is not None else None)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4)}, dtype={self.dtype}{extra})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts, got shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (no grad)."""
        return Tensor(self.data)

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this non-leaf tensor after backward (e.g. dLoss/dh_t)."""
        if self._op is not None:
            self._op._retained = weakref.ref(self)
        return self

    # ---- backward -----------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf with requires_grad.

        Args:
            grad: d(loss)/d(self), same shape as self; defaults to 1 for a scalar.
            retain_graph: keep the graph so backward can run through it again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input has "
                               "requires_grad=True, or it was made under no_grad)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad must be given for a non-scalar output of "
                                   f"shape {self.shape}")
            seed = np.ones(self.shape, self.dtype)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, self.dtype)
            if seed.shape != self.shape:
                raise ValueError(f"backward: grad of shape {seed.shape} for a tensor of shape "
                                 f"{self.shape}")
        run_backward(self, seed, retain_graph)

    # ---- operators ----------------------------------------------------------------------
    def _lift(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float)) and self.dtype.kind == "f":
            return Tensor(np.asarray(other, self.dtype))
        return Tensor(other)

    def __add__(self, o): return apply(ops.Add, self, self._lift(o))
    def __radd__(self, o): return apply(ops.Add, self._lift(o), self)
    def __sub__(self, o): return apply(ops.Sub, self, self._lift(o))
    def __rsub__(self, o): return apply(ops.Sub, self._lift(o), self)
    def __mul__(self, o): return apply(ops.Mul, self, self._lift(o))
    def __rmul__(self, o): return apply(ops.Mul, self._lift(o), self)
    def __truediv__(self, o): return apply(ops.Div, self, self._lift(o))
    def __rtruediv__(self, o): return apply(ops.Div, self._lift(o), self)
    def __pow__(self, o): return apply(ops.Pow, self, self._lift(o))
    def __rpow__(self, o): return apply(ops.Pow, self._lift(o), self)
    def __matmul__(self, o): return apply(ops.MatMul, self, self._lift(o))
    def __rmatmul__(self, o): return apply(ops.MatMul, self._lift(o), self)
    def __neg__(self): return apply(ops.Neg, self)

    # ---- methods ------------------------------------------------------------------------
    def exp(self) -> Tensor: return apply(ops.Exp, self)
    def log(self) -> Tensor: return apply(ops.Log, self)
    def sqrt(self) -> Tensor: return apply(ops.Sqrt, self)
    def abs(self) -> Tensor: return apply(ops.Abs, self)
    def tanh(self) -> Tensor: return apply(ops.Tanh, self)
    def sigmoid(self) -> Tensor: return apply(ops.Sigmoid, self)
    def relu(self) -> Tensor: return apply(ops.Relu, self)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        """Clamp to [lo, hi] (either may be None); gradient passes where lo <= x <= hi."""
        return apply(ops.Clip, self, lo=lo, hi=hi)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return apply(ops.Sum, self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        total = self.sum(axis, keepdims)
        return total * (total.data.size / self.data.size)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; ties share the gradient equally."""
        return apply(ops.Max, self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return apply(ops.Reshape, self, shape=tuple(shape))

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute axes as numpy does; no axes reverses them."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return apply(ops.Transpose, self, axes=tuple(axes) or None)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, tuple):
            index = tuple([i.data if isinstance(i, Tensor) else i for i in index])
        elif isinstance(index, Tensor):
            index = index.data
        return apply(ops.GetItem, self, index=ops.normalize_index(index, self.shape))

    def chunk(self, chunks: int, axis: int = 0) -> list[Tensor]:
        """Split into `chunks` pieces along `axis` as torch.chunk (the last may be smaller)."""
        if chunks < 1:
            raise ValueError(f"chunk: chunks must be >= 1, got {chunks}")
        if not -self.ndim <= axis < self.ndim:
            raise IndexError(f"chunk: axis {axis} is out of range for {self.ndim} dimension(s)")
        n = self.shape[axis]
        step = -(-n // chunks)
        return self.split([min(step, n - s) for s in range(0, n, step)], axis)

    def split(self, sizes: Sequence[int], axis: int = 0) -> list[Tensor]:
        """Consecutive pieces of the given sizes along `axis` (torch.split with a list)."""
        return apply_multi(ops.Split, self, sizes=list(sizes), axis=axis)

    def unbind(self, axis: int = 0) -> list[Tensor]:
        """The slices along `axis`, that axis removed (torch.unbind): one node for them all."""
        return apply_multi(ops.Unbind, self, axis=axis)

    def softmax(self, axis: int = -1) -> Tensor:
        from tinygrad_rnn.functional import softmax
        return softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        from tinygrad_rnn.functional import log_softmax
        return log_softmax(self, axis)


def apply(op_cls: type[Op], *inputs: Tensor, **kwargs: Any) -> Tensor:
    """Run primitive `op_cls` forward on the inputs' arrays and record it if any needs grad."""
    if op_cls.multi_output:
        return apply_multi(op_cls, *inputs, **kwargs)  # several outputs: a list of tensors
    op = op_cls()
    needs, arrays, nodes = [], [], []  # one loop, no comprehension frames: a hot path
    for t in inputs:
        needs.append(t.requires_grad)
        arrays.append(t.data)
        nodes.append(t._op or t)  # the graph holds nodes, not tensors: see ops.Op
    op.needs = needs = tuple(needs)
    try:
        data = op.forward(*arrays, **kwargs)
    except (ValueError, IndexError, TypeError) as err:
        shapes = ", ".join(str(t.shape) for t in inputs)
        raise type(err)(f"{op_cls.name}: {err} (input shapes {shapes})") from None
    out = Tensor.__new__(Tensor)
    out.data, out.grad = data, None
    if True in needs and _GRAD_ENABLED.get():
        out.requires_grad, out._op = True, op
        op._parents, op._scope, op._seq = tuple(nodes), _SCOPE.get(), next(_SEQUENCE)
        op._shape, op._dtype = data.shape, data.dtype
    else:
        out.requires_grad, out._op = False, None
    return out


def apply_multi(op_cls: type[Op], x: Tensor, **kwargs: Any) -> list[Tensor]:
    """Run a multi-output primitive (split, unbind) on x; each output's node is a Port of the
    one recorded op."""
    op = op_cls()
    op.needs = (x.requires_grad,)
    try:
        pieces = op.forward(x.data, **kwargs)
    except (ValueError, IndexError, TypeError) as err:
        raise type(err)(f"{op_cls.name}: {err} (input shape {x.shape})") from None
    record = x.requires_grad and _GRAD_ENABLED.get()
    if record:
        op._parents, op._scope, op._seq = (x._op or x,), _SCOPE.get(), next(_SEQUENCE)
        op._shape, op._dtype = x.data.shape, x.data.dtype
    outs = []
    for i, piece in enumerate(pieces):
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out.requires_grad = piece, None, record
        out._op = Port(op, i, piece.shape, piece.dtype) if record else None
        outs.append(out)
    return outs


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Concatenate along an existing axis."""
    return apply(ops.Cat, *[_tensor(t) for t in tensors], axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack along a new axis."""
    return apply(ops.Stack, *[_tensor(t) for t in tensors], axis=axis)


def addmm(c: Any, a: Any, b: Any) -> Tensor:
    """c + a @ b in one buffer, as torch.addmm. Shape: a (n, k), b (k, m), c broadcastable
    to (n, m) -> (n, m)."""
    return apply(ops.AddMM, _tensor(c), _tensor(a), _tensor(b))


def addcmul(c: Any, a: Any, b: Any) -> Tensor:
    """c + a * b in one buffer, as torch.addcmul, with broadcasting."""
    return apply(ops.AddCMul, _tensor(c), _tensor(a), _tensor(b))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise `a` where cond else `b`, with broadcasting; cond gets no gradient."""
    a, b = _tensor(a), _tensor(b)
    ref = a if a.dtype.kind == "f" else b
    return apply(ops.Where, _tensor(cond), ref._lift(a), ref._lift(b))


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)
