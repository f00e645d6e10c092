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
    `_scope` and `_seq`; a subclass keeps its own state in any other attribute. `saves` lists
    the inputs whose arrays backward reads (None: all of them), for the in-place check.
    """

    __slots__ = ("__dict__", "_dtype", "_parents", "_scope", "_seq", "_shape", "needs")
    name = "op"
    multi_output = False  # True: forward returns a list of arrays and sets `n_out`
    requires_grad = True  # a node exists only for an output that needs grad
    _freed = False  # set once backward has dropped the saved arrays
    _retained: Any = None  # weakref to the output Tensor, when it called retain_grad()
    _guard: Any = None  # versions.Guard once the output's array was written or handed out
    saves: tuple[int, ...] | None = None

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
    saves = ()

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


@primitive("sub", arity=2)
class Sub(Op):
    saves = ()

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
    saves = (1,)

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
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 = inf, as torch
            self.out = x ** y
        return self.out

    def backward(self, g):
        x, y = self.x, self.y
        with np.errstate(divide="ignore", invalid="ignore"):
            # d/dx = y x^(y-1), 0 where y == 0 (also at x == 0, as torch); d/dy = x^y log x,
            # 0 where x == 0 and y >= 0 (the limit), as torch
            gx = g * np.where(y == 0, 0, y * x ** (y - 1)) if self.needs[0] else None
            gy = (g * np.where((x == 0) & (y >= 0), 0, self.out * np.log(x))
                  if self.needs[1] else None)
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

    saves = (1, 2)

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

    saves = (1, 2)

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
    saves = ()  # cond is saved as a boolean copy

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
    saves = ()

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


@primitive("exp")
class Exp(Op):
    saves = ()

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
    saves = ()

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
    saves = ()

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, g):
        gx = 1.0 - self.out * self.out  # d tanh = 1 - tanh^2: no recomputation
        gx *= g
        return (gx,)


@primitive("sigmoid")
class Sigmoid(Op):
    saves = ()

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
    saves = ()

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
        for name, bound in (("lo", lo), ("hi", hi)):
            if bound is not None and (not isinstance(bound, (int, float, np.number))
                                      or isinstance(bound, (bool, np.bool_))):
                raise TypeError(f"{name} must be a real number or None, got {bound!r}")
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

def is_int(v: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return type(v) is int or isinstance(v, np.integer)  # bool is a subclass, not `int` itself


def axis_index(fn: str, axis: Any, ndim: int) -> int:
    """_axis for a caller outside an op's forward: its errors name `fn`."""
    try:
        return _axis(axis, ndim)
    except (TypeError, IndexError) as err:
        raise type(err)(f"{fn}: {err}") from None


def _axes(axis: Any, ndim: int, keepdims: Any = False) -> tuple[int, ...] | None:
    """A reduction's `axis` (None, an int or a tuple of ints) as distinct axes from 0."""
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"keepdims must be a bool, got {keepdims!r}")
    if axis is None:
        return None
    parts = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(is_int(a) for a in parts):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    out = tuple(int(a) % max(ndim, 1) for a in parts if -max(ndim, 1) <= a < max(ndim, 1))
    if len(out) < len(parts):
        raise IndexError(f"axis {axis} is out of range for {ndim} dimension(s)")
    if len(set(out)) < len(out):
        raise ValueError(f"axis {axis} repeats an axis")
    return out if ndim else ()


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    reduced = range(len(shape)) if axes is None else axes
    return tuple(1 if i in reduced else n for i, n in enumerate(shape))


@primitive("sum")
class Sum(Op):
    saves = ()

    def forward(self, x, axis=None, keepdims=False):
        axis = _axes(axis, x.ndim, keepdims)
        self.shape, self.kept = x.shape, _kept_shape(x.shape, axis)
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        return (np.broadcast_to(g.reshape(self.kept), self.shape),)


@primitive("mean")
class Mean(Op):
    """Mean over `axis`: NaN for an empty reduction (as torch), and float16 summed in float32
    (numpy's mean) so a large array does not overflow."""

    saves = ()

    def forward(self, x, axis=None, keepdims=False):
        axis = _axes(axis, x.ndim, keepdims)
        self.shape, self.kept = x.shape, _kept_shape(x.shape, axis)
        count = x.size // max(math.prod(self.kept), 1) if x.size else 0
        self.scale = 1.0 / count if count else 0.0
        if count == 0:  # numpy warns and divides 0 by 0; torch gives NaN quietly
            return np.full(np.sum(x, axis=axis, keepdims=keepdims).shape, np.nan, x.dtype)
        return np.asarray(np.mean(x, axis=axis, keepdims=keepdims), x.dtype)

    def backward(self, g):
        return (np.broadcast_to(g.reshape(self.kept) * self.scale, self.shape),)


@primitive("max")
class Max(Op):
    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError("max of an empty tensor")
        axis = _axes(axis, x.ndim, keepdims)
        self.x, self.kept = x, _kept_shape(x.shape, axis)
        self.out = np.asarray(x.max(axis=axis, keepdims=True))
        return self.out if keepdims else self.out.squeeze(axis)

    def backward(self, g):
        hit = self.x == self.out
        if self.x.dtype.kind == "f" and np.isnan(self.out).any():  # a NaN is the max: it
            hit |= np.isnan(self.x) & np.isnan(self.out)  # takes the gradient, as torch
        share = hit / hit.sum(axis=tuple(i for i, n in enumerate(self.kept) if n == 1),
                              keepdims=True)  # ties share the gradient equally
        return (g.reshape(self.kept) * share.astype(g.dtype),)


# ---- shape and indexing --------------------------------------------------------------------

@primitive("reshape")
class Reshape(Op):
    saves = None  # its output is a view of x, which a consumer may have saved

    def forward(self, x, shape):
        if not all(is_int(n) for n in shape):
            raise TypeError(f"shape {tuple(shape)} must be ints")
        if min(shape, default=0) < -1 or list(shape).count(-1) > 1:
            raise ValueError(f"shape {tuple(shape)} must be ints >= 0, with at most one -1")
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


@primitive("transpose")
class Transpose(Op):
    saves = None  # its output is a view of x, which a consumer may have saved

    def forward(self, x, axes=None):
        if axes is None:
            axes = tuple(range(x.ndim))[::-1]
        elif not all(is_int(a) for a in axes):
            raise TypeError(f"axes must be ints, got {axes!r}")
        elif sorted(int(a) % max(x.ndim, 1) if -x.ndim <= a < x.ndim else -1
                    for a in axes) != list(range(x.ndim)):
            raise ValueError(f"axes {tuple(axes)} are not a permutation of {x.ndim} axes")
        self.axes = tuple(int(a) % x.ndim for a in axes)  # negative axes counted from 0
        return x.transpose(self.axes)

    def backward(self, g):
        return (g.transpose(np.argsort(self.axes)),)


def normalize_index(index: Any, shape: tuple[int, ...]) -> Any:
    """Any index numpy accepts, with every advanced part (a list, a tuple or range inside a
    tuple, a boolean scalar, an array) made an intp or bool array, so the backward knows which
    parts may repeat elements; a float or another object is an IndexError naming it."""
    parts = index if type(index) is tuple else (index,)
    for part in parts:
        if type(part) not in _BASIC_PARTS:
            break
    else:
        return index  # slices and ints, as in x[:, t]: nothing to normalise
    out = []
    for part in parts:
        if isinstance(part, (bool, np.bool_)):  # x[True]: a new axis of length 1 (advanced)
            part = np.asarray(part)
        elif is_int(part):
            part = int(part)
        elif isinstance(part, (list, tuple, range, np.ndarray)):
            try:
                part = np.asarray(part)
            except ValueError:
                raise IndexError(f"ragged index {part!r} indexing shape {shape}"
                                 ) from None
            if part.dtype.kind not in "biu":
                if part.size:
                    raise IndexError(f"indices must be integer or boolean, got a "
                                     f"{part.dtype} array indexing shape {shape}")
                part = part.astype(np.intp)  # an empty list selects nothing
            elif part.dtype.kind != "b":
                part = part.astype(np.intp)
        elif not isinstance(part, _BASIC_PARTS):
            if hasattr(part, "__index__"):
                part = part.__index__()
            else:
                raise IndexError(f"an index must be an int, slice, None, Ellipsis, "
                                 f"bool or an integer/boolean array, got {part!r} indexing "
                                 f"shape {shape}")
        out.append(part)
    return tuple(out) if type(index) is tuple else out[0]


_BASIC_PARTS = (slice, int, type(None), type(Ellipsis))


def _is_basic(index: Any) -> bool:
    """No index arrays (so no repeated elements): a plain loop, as x[:, t] runs T times a step."""
    for part in index if type(index) is tuple else (index,):
        if type(part) is np.ndarray:
            return False
    return True


@primitive("getitem")
class GetItem(Op):
    saves = None  # its output is a view of x, which a consumer may have saved

    def forward(self, x, index):
        index = normalize_index(index, x.shape)
        self.index, self.basic = index, _is_basic(index)
        return x[index]

    def backward(self, g):
        return (IndexGrad(self.index, g, self.basic),)


def _axis(axis: Any, ndim: int) -> int:
    """`axis` counted from 0, or an IndexError naming it (as torch's "dimension out of range");
    inside an op's forward, whose errors apply() prefixes with the op's name."""
    if type(axis) is not int and not is_int(axis):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise IndexError(f"axis {axis} is out of range for {ndim} dimension(s)")
    return int(axis) % ndim


@primitive("split")
class Split(Op):
    """Consecutive pieces of `sizes` along `axis` (torch.split): one node with several outputs,
    so its backward is one concatenate of the pieces' gradients (zeros for an unused piece)
    rather than a zero buffer plus one strided addition per piece. Its outputs reach their
    consumers' graphs as Ports (tensor.apply_multi records it)."""

    saves = None  # its output is a view of x, which a consumer may have saved

    multi_output = True

    def forward(self, x, sizes, axis=0):
        axis = _axis(axis, x.ndim)
        for n in sizes:  # a loop, not all(...): this runs once per time step
            if type(n) is not int and not is_int(n):
                raise TypeError(f"sizes must be ints, got {list(sizes)}")
        if sum(sizes) != x.shape[axis] or min(sizes, default=0) < 0 or not sizes:
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

    saves = None  # its output is a view of x, which a consumer may have saved

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

    saves = ()

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
    saves = ()

    def forward(self, *xs, axis=0):
        if not xs:
            raise ValueError("needs at least one tensor")
        for i, x in enumerate(xs):
            if x.ndim == 0:
                raise ValueError(f"a zero-dimensional tensor (at position {i}) cannot be "
                                 f"concatenated; use stack")
        axis = _axis(axis, xs[0].ndim)
        for i, x in enumerate(xs):
            if x.shape[:axis] + x.shape[axis + 1:] != xs[0].shape[:axis] + xs[0].shape[axis + 1:]:
                raise ValueError(f"the tensor at position {i} has shape {x.shape}, which "
                                 f"differs from {xs[0].shape} outside axis {axis}")
        self.ends = np.cumsum([x.shape[axis] for x in xs])[:-1]
        self.axis = axis
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.ends, axis=self.axis))


@primitive("stack", arity=-1)
class Stack(Op):
    saves = ()

    def forward(self, *xs, axis=0):
        if not xs:
            raise ValueError("needs at least one tensor")
        for i, x in enumerate(xs):
            if x.shape != xs[0].shape:
                raise ValueError(f"every tensor needs one shape: position {i} has {x.shape}, "
                                 f"position 0 {xs[0].shape}")
        self.axis = _axis(axis, xs[0].ndim + 1)
        return np.stack(xs, axis=self.axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))
