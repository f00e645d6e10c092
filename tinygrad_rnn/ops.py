"""Differentiable primitives: forward and backward side by side, in one enumerable registry.

Each op works on numpy arrays only. `forward` saves what `backward` needs (usually its own
output, never a recomputation); `backward(g)` returns one gradient per input, or None for an
input that needs none (`self.needs` says which do). Gradients may keep broadcast shapes: the
engine (engine.py) sums them back to each input's shape in one place. Two structured
gradients (gradients.py) let the engine sum cheaply: IndexGrad (a slice's gradient, added into a
buffer) and OuterGrad (a matmul's right operand, summed over its uses in blocked GEMMs).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_rnn.gradients import IndexGrad, OuterGrad

OPS: dict[str, type[Op]] = {}


def primitive(name: str, *, domain=(-2.0, 2.0), nondiff: tuple[int, ...] = (), arity: int = 1):
    """Register an Op under `name`; `domain`, `nondiff` and `arity` (-1: variadic) tell the
    gradcheck suite how to sample it."""
    def register(cls):
        cls.name, cls.domain, cls.nondiff, cls.arity = name, domain, nondiff, arity
        OPS[name] = cls
        return cls
    return register


class Op:
    """One primitive application; forward(*arrays, **kwargs) -> array, backward(g) -> grads.

    A recorded Op is also the graph node of its output (as torch's grad_fn): `_parents` holds
    the inputs' nodes (an input's Op, or the input itself when it is a leaf), so the graph
    keeps what backward saved and nothing else; an intermediate Tensor is freed as soon as
    the user drops it. The engine (tensor.apply) sets `_shape` and `_dtype` (the output's),
    `_scope` and `_seq`; a subclass keeps its own state in any other attribute.
    """

    __slots__ = ("__dict__", "_dtype", "_parents", "_scope", "_seq", "_shape", "needs")
    name = "op"
    multi_output = False  # True: forward returns a list of arrays and sets `n_out`
    requires_grad = True  # a node exists only for an output that needs grad
    _freed = False  # set once backward has dropped the saved arrays
    _retained: Any = None  # weakref to the output Tensor, when it called retain_grad()

    @property
    def _op(self) -> Op:
        return self  # graph walkers treat nodes and leaf Tensors alike: node._op is not None

    @property
    def grad(self) -> np.ndarray | None:
        """The output's retained gradient (see Tensor.retain_grad), else None."""
        out = self._retained() if self._retained is not None else None
        return None if out is None else out.grad

    def forward(self, *xs: np.ndarray, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        raise NotImplementedError


# ---- elementwise binary (broadcasting) ------------------------------------------------------

@primitive("add", arity=2)
class Add(Op):
    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


@primitive("sub", arity=2)
class Sub(Op):
    def forward(self, x, y):
        return x - y

    def backward(self, g):
        return g, (-g if self.needs[1] else None)


@primitive("mul", arity=2)
class Mul(Op):
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, g):
        return (g * self.y if self.needs[0] else None), (g * self.x if self.needs[1] else None)


@primitive("div", arity=2, domain=(0.5, 2.0))
class Div(Op):
    def forward(self, x, y):
        self.y = y
        self.out = x / y
        return self.out

    def backward(self, g):
        gx = g / self.y
        return gx, (-gx * self.out if self.needs[1] else None)  # d(x/y)/dy = -(x/y)/y


@primitive("pow", arity=2, domain=(0.5, 2.0))
class Pow(Op):
    def forward(self, x, y):
        self.x, self.y = x, y
        self.out = x ** y
        return self.out

    def backward(self, g):
        gx = g * self.y * self.x ** (self.y - 1) if self.needs[0] else None
        gy = g * self.out * np.log(self.x) if self.needs[1] else None  # only for x > 0
        return gx, gy


@primitive("matmul", arity=2)
class MatMul(Op):
    def forward(self, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError("both operands need at least one dimension")
        if x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
            raise ValueError(f"inner dims differ, {x.shape} @ {y.shape}")
        self.x, self.y = x, y
        if x.ndim > 2 and y.ndim == 2:  # (..., n, k) @ (k, m): one GEMM, not one per batch
            return (_rows(x) @ y).reshape(x.shape[:-1] + y.shape[-1:])
        return x @ y

    def backward(self, g):
        x, y = self.x, self.y
        if x.ndim == 2 and y.ndim == 2:  # the common case, without the batch bookkeeping below
            return (g @ y.T if self.needs[0] else None), (OuterGrad(x, g) if self.needs[1]
                                                          else None)
        x2 = x[None, :] if x.ndim == 1 else x  # 1-D operands act as a row / a column
        y2 = y[:, None] if y.ndim == 1 else y
        batch = np.broadcast_shapes(x2.shape[:-2], y2.shape[:-2])
        g = g.reshape(batch + (x2.shape[-2], y2.shape[-1]))
        gx = gy = None
        if self.needs[0]:
            if y2.ndim == 2 and g.ndim > 2:  # fold the batch into one GEMM
                gx = (_rows(g) @ y2.T).reshape(g.shape[:-1] + y2.shape[:1])
            else:
                gx = g @ np.swapaxes(y2, -1, -2)
            gx = gx[..., 0, :] if x.ndim == 1 else gx
        if self.needs[1]:
            if y2.ndim == 2 and x2.ndim > 2:  # (..., n, k) @ (k, m): fold the batch into one matmul
                gy = _rows(x2).T @ _rows(g)
            else:
                gy = np.swapaxes(x2, -1, -2) @ g
            gy = gy[..., 0] if y.ndim == 1 else gy
        return gx, gy


def _rows(a: np.ndarray) -> np.ndarray:
    """(..., k) -> (rows, k): the leading axes folded into one (also when k == 0)."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


@primitive("addmm", arity=3)
class AddMM(Op):
    """c + a @ b for 2-D a, b (torch.addmm): c is added into the product's buffer, so no
    separate a @ b array stays alive in the graph (an RNN step's gates, an input projection)."""

    def forward(self, c, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"a and b must be 2-D, got {a.shape} and {b.shape}")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"inner dims differ, {a.shape} @ {b.shape}")
        self.a, self.b = a, b
        return _add_into(a @ b, c)

    def backward(self, g):
        return (g if self.needs[0] else None, g @ self.b.T if self.needs[1] else None,
                OuterGrad(self.a, g) if self.needs[2] else None)


@primitive("addcmul", arity=3)
class AddCMul(Op):
    """c + a * b with broadcasting (torch.addcmul): c is added into the product's buffer, so no
    separate a * b array stays alive in the graph (an LSTM's f * c + i * g, a gate's affine)."""

    def forward(self, c, a, b):
        self.a, self.b = a, b
        return _add_into(a * b, c)

    def backward(self, g):
        return (g if self.needs[0] else None, g * self.b if self.needs[1] else None,
                g * self.a if self.needs[2] else None)


def _add_into(out: np.ndarray, c: np.ndarray) -> np.ndarray:
    """out + c, written into `out` when c has out's dtype and trailing shape (no new array)."""
    shape = out.shape
    if type(out) is np.ndarray and c.dtype == out.dtype and c.ndim <= out.ndim and (
            c.shape == shape[out.ndim - c.ndim:]):  # c is out's shape or a trailing part of it
        out += c
        return out
    return c + out


@primitive("where", arity=3, nondiff=(0,))
class Where(Op):
    def forward(self, cond, a, b):
        self.cond = cond.astype(bool)
        return np.where(self.cond, a, b)

    def backward(self, g):
        zero = np.zeros((), g.dtype)
        ga = np.where(self.cond, g, zero) if self.needs[1] else None
        gb = np.where(self.cond, zero, g) if self.needs[2] else None
        return None, ga, gb


# ---- elementwise unary ---------------------------------------------------------------------

@primitive("neg")
class Neg(Op):
    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


@primitive("exp")
class Exp(Op):
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, g):
        return (g * self.out,)


@primitive("log", domain=(0.5, 2.0))
class Log(Op):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return (g / self.x,)


@primitive("sqrt", domain=(0.5, 2.0))
class Sqrt(Op):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g):
        return (g * 0.5 / self.out,)


@primitive("abs")
class Abs(Op):
    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, g):
        return (g * np.sign(self.x),)  # sign(0) = 0, as torch


@primitive("tanh")
class Tanh(Op):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, g):
        gx = 1.0 - self.out * self.out  # d tanh = 1 - tanh^2: no recomputation
        gx *= g
        return (gx,)


@primitive("sigmoid")
class Sigmoid(Op):
    def forward(self, x):
        out = np.tanh(x * 0.5)  # sigmoid(x) = (1 + tanh(x/2)) / 2: no overflow for any x
        out += 1.0
        out *= 0.5
        self.out = out
        return out

    def backward(self, g):
        gx = 1.0 - self.out  # d sigmoid = s (1 - s), in one temporary
        gx *= self.out
        gx *= g
        return (gx,)


@primitive("relu")
class Relu(Op):
    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, g):
        return (g * (self.out > 0),)


@primitive("clip")
class Clip(Op):
    def forward(self, x, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("at least one of lo and hi must be given")
        self.x, self.lo, self.hi = x, lo, hi
        return np.clip(x, lo, hi)

    def backward(self, g):
        inside = np.ones(self.x.shape, bool)  # gradient passes where lo <= x <= hi, as torch
        if self.lo is not None:
            inside &= self.x >= self.lo
        if self.hi is not None:
            inside &= self.x <= self.hi
        return (g * inside,)


# ---- reductions ----------------------------------------------------------------------------

def _kept_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis) % max(len(shape), 1)
    reduced = {int(a) for a in axes}
    return tuple(1 if i in reduced else n for i, n in enumerate(shape))


@primitive("sum")
class Sum(Op):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.kept = x.shape, _kept_shape(x.shape, axis)
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        return (np.broadcast_to(g.reshape(self.kept), self.shape),)


@primitive("max")
class Max(Op):
    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError("max of an empty tensor")
        self.x, self.kept = x, _kept_shape(x.shape, axis)
        self.out = np.asarray(x.max(axis=axis, keepdims=True))
        return self.out if keepdims else self.out.squeeze(axis)

    def backward(self, g):
        hit = self.x == self.out
        share = hit / hit.sum(axis=tuple(i for i, n in enumerate(self.kept) if n == 1),
                              keepdims=True)  # ties share the gradient equally
        return (g.reshape(self.kept) * share.astype(g.dtype),)


# ---- shape and indexing --------------------------------------------------------------------

@primitive("reshape")
class Reshape(Op):
    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


@primitive("transpose")
class Transpose(Op):
    def forward(self, x, axes=None):
        self.axes = tuple(range(x.ndim))[::-1] if axes is None else axes
        return x.transpose(self.axes)

    def backward(self, g):
        return (g.transpose(np.argsort(self.axes)),)


def normalize_index(index: Any, shape: tuple[int, ...]) -> Any:
    """Make index arrays intp (or bool) and reject float ones, naming the indexed shape."""
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if type(part) not in _BASIC_PARTS:
            break
    else:
        return index  # slices and ints, as in x[:, t]: nothing to normalise
    out = []
    for part in parts:
        if isinstance(part, (list, np.ndarray)):
            part = np.asarray(part)
            if part.dtype.kind not in "biu" and part.size:
                raise IndexError(f"getitem: indices must be integer or boolean, got a "
                                 f"{part.dtype} array indexing shape {shape}")
            part = part.astype(np.intp) if part.dtype.kind != "b" else part
        elif isinstance(part, float):
            raise IndexError(f"getitem: index {part} is a float, indexing shape {shape}")
        out.append(part)
    return tuple(out) if isinstance(index, tuple) else out[0]


_BASIC_PARTS = (slice, int, type(None), type(Ellipsis))


def _is_basic(index: Any) -> bool:
    """No index arrays (so no repeated elements): a plain loop, as x[:, t] runs T times a step."""
    for part in index if type(index) is tuple else (index,):
        if type(part) is np.ndarray:
            return False
    return True


@primitive("getitem")
class GetItem(Op):
    def forward(self, x, index):
        self.index, self.basic = index, _is_basic(index)
        return x[index]

    def backward(self, g):
        return (IndexGrad(self.index, g, self.basic),)


def _axis(axis: int, ndim: int) -> int:
    """`axis` counted from 0, or an IndexError naming it (as torch's "dimension out of range")."""
    if not -ndim <= axis < ndim:
        raise IndexError(f"axis {axis} is out of range for {ndim} dimension(s)")
    return axis % ndim


@primitive("split")
class Split(Op):
    """Consecutive pieces of `sizes` along `axis` (torch.split): one node with several outputs,
    so its backward is one concatenate of the pieces' gradients (zeros for an unused piece)
    rather than a zero buffer plus one strided addition per piece. Its outputs reach their
    consumers' graphs as Ports (tensor.apply_multi records it)."""

    multi_output = True

    def forward(self, x, sizes, axis=0):
        axis = _axis(axis, x.ndim)
        if sum(sizes) != x.shape[axis] or min(sizes, default=1) < 1:
            raise ValueError(f"sizes {list(sizes)} do not split axis {axis} of length "
                             f"{x.shape[axis]}")
        self.axis, self.dtype = axis, x.dtype
        lead, start, pieces = (slice(None),) * axis, 0, []
        for size in sizes:  # basic slices (views), not np.split: this runs once per step
            pieces.append(x[lead + (slice(start, start + size),)])
            start += size
        self.shapes = [p.shape for p in pieces]
        self.n_out = len(pieces)
        return pieces

    def backward(self, gs):
        return (np.concatenate([np.zeros(s, self.dtype) if g is None else g
                                for g, s in zip(gs, self.shapes)], axis=self.axis),)


@primitive("unbind")
class Unbind(Op):
    """Every slice along `axis`, that axis removed (torch.unbind): an unroll's T input steps as
    one node, whose backward stacks the steps' gradients (zeros for a step without one)."""

    multi_output = True

    def forward(self, x, axis=0):
        self.axis, self.dtype = _axis(axis, x.ndim), x.dtype
        lead = (slice(None),) * self.axis
        pieces = [x[lead + (i,)] for i in range(x.shape[self.axis])]  # views
        self.shape = x.shape[:self.axis] + x.shape[self.axis + 1:]
        self.n_out = len(pieces)
        return pieces

    def backward(self, gs):
        return (np.stack([np.zeros(self.shape, self.dtype) if g is None else g for g in gs],
                         axis=self.axis),)


@primitive("embedding", arity=1)
class Embedding(Op):
    """Rows of a (num_embeddings, dim) table; the padding row gets no gradient."""

    def forward(self, weight, indices, padding_idx=None):
        n = weight.shape[0]
        if indices.dtype.kind not in "iu":
            raise IndexError(f"indices must be integers, got {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            bad = indices.max() if indices.max() >= n else indices.min()
            raise IndexError(f"index {bad} is out of range for a table of {n} rows")
        if padding_idx is not None and padding_idx < 0:
            padding_idx += n  # torch's convention for a negative padding_idx
        self.indices, self.padding_idx = indices, padding_idx
        return weight[indices]

    def backward(self, g):
        if self.padding_idx is not None:
            g = np.where((self.indices == self.padding_idx)[..., None], 0, g).astype(g.dtype)
        return (IndexGrad(self.indices, g, basic=False),)


@primitive("cat", arity=-1)
class Cat(Op):
    def forward(self, *xs, axis=0):
        if not xs:
            raise ValueError("needs at least one tensor")
        self.ends = np.cumsum([x.shape[axis] for x in xs])[:-1]
        self.axis = axis
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.ends, axis=self.axis))


@primitive("stack", arity=-1)
class Stack(Op):
    def forward(self, *xs, axis=0):
        if not xs:
            raise ValueError("needs at least one tensor")
        self.axis = axis
        return np.stack(xs, axis=axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))
