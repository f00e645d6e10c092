"""Differentiable primitives: forward and backward side by side, in one enumerable registry.

`forward` works on numpy arrays and saves what `backward` needs (usually its own output,
never a recomputation); `backward(g)` returns one gradient per input, or None for an input that
needs none (`self.needs` says which do). A backward is written once, in operations numpy arrays
and Tensors both understand (bridge.py spells the few that differ): on arrays it is the fast
gradient; when a backward is recorded (`create_graph=True`, grad_sweep.py), `g` is a Tensor and
the attributes named in `saved_tensors` hold Tensors wired to the graph, so the same lines
record a differentiable gradient. Masks and other piecewise constants stay arrays. Gradients may keep broadcast shapes: the
engine (engine.py) sums them back to each input's shape in one place. Two structured
gradients (gradients.py) let the engine sum cheaply: IndexGrad (a slice's gradient, added into a
buffer) and OuterGrad (a matmul's right operand, summed over its uses in blocked GEMMs).

This file holds the registry, the Op node and the elementwise and matrix primitives;
shape_ops.py holds the reductions, shape and indexing ones (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tinygrad_rnn import bridge
from tinygrad_rnn.gradients import OuterGrad

OPS: dict[str, type[Op]] = {}
OUTPUT = -1  # in `saved_tensors`: the attribute holds the op's own output
OpT = TypeVar("OpT", bound="Op")


def primitive(name: str, *, domain: tuple[float, float] = (-2.0, 2.0),
              nondiff: tuple[int, ...] = (), arity: int = 1
              ) -> Callable[[type[OpT]], type[OpT]]:
    """Register an Op under `name`; `domain`, `nondiff` and `arity` (-1: variadic) tell the
    gradcheck suite how to sample it."""
    def register(cls: type[OpT]) -> type[OpT]:
        cls.name, cls.domain, cls.nondiff, cls.arity = name, domain, nondiff, arity
        cls.routed = cls.multi_output or not cls.differentiable
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
    the inputs whose arrays backward reads (None: all of them), for the in-place check;
    `saved_tensors` names the attributes holding an input's array or the output, which a
    recorded backward reads as Tensors (differentiably).
    """

    __slots__ = ("__dict__", "_dtype", "_parents", "_scope", "_seq", "_shape", "needs")
    _parents: tuple[Any, ...]  # the slots' types: Ops, Ports and leaf Tensors (see above)
    _scope: tuple[str, ...]
    _seq: int
    _shape: tuple[int, ...]
    _dtype: np.dtype
    needs: tuple[bool, ...]
    name = "op"
    domain: tuple[float, float]  # these three are set by @primitive
    nondiff: tuple[int, ...]
    arity: int
    n_out: int  # a multi-output op's number of outputs, set by its forward
    multi_output = False  # True: forward returns a list of arrays and sets `n_out`
    differentiable = True  # False: the output is a constant (a comparison's boolean mask)
    routed = False  # set by @primitive: multi-output or not differentiable (see tensor.apply)
    requires_grad = True  # a node exists only for an output that needs grad
    _freed = False  # set once backward has dropped the saved arrays
    _retained: Any = None  # weakref to the output Tensor, when it called retain_grad()
    _guard: Any = None  # versions.Guard once the output's array was written or handed out
    saves: tuple[int, ...] | None = None
    saved_tensors: tuple[tuple[str, int], ...] = ()  # (attribute, input index or OUTPUT)

    @property
    def _op(self) -> Op:
        return self  # graph walkers treat nodes and leaf Tensors alike: node._op is not None

    @property
    def grad(self) -> np.ndarray | None:
        """The output's retained gradient (see Tensor.retain_grad), else None."""
        out = self._retained() if self._retained is not None else None
        return None if out is None else out.grad

    def forward(self, *xs: Any, **kwargs: Any) -> Any:
        """An array, or a list of arrays for a multi-output op; a subclass names its inputs."""
        raise NotImplementedError

    def backward(self, g: Any) -> tuple[Any, ...]:
        """One gradient per input (None where `needs` says none); a multi-output op's `g` is
        the list of its outputs' gradients."""
        raise NotImplementedError


def _constants(value: float) -> dict[np.dtype, np.ndarray]:
    """`value` as a read-only 0-d array per float dtype: a ufunc takes one ~2x faster than a
    Python float (no scalar conversion), with the same result (the dtypes match)."""
    table = {}
    for t in (np.float16, np.float32, np.float64):
        c = np.array(value, t)
        c.flags.writeable = False
        table[np.dtype(t)] = c
    return table


_HALF, _ONE = _constants(0.5), _constants(1.0)  # .get(dtype, python float): other dtypes


# ---- elementwise binary (broadcasting) ------------------------------------------------------

@primitive("add", arity=2)
class Add(Op):
    saves = ()

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x + y

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return g, g


@primitive("sub", arity=2)
class Sub(Op):
    saves = ()

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x - y

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return g, (-g if self.needs[1] else None)


@primitive("mul", arity=2)
class Mul(Op):
    saved_tensors = (("x", 0), ("y", 1))

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.x, self.y = x, y
        return x * y

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g * self.y if self.needs[0] else None), (g * self.x if self.needs[1] else None)


@primitive("div", arity=2, domain=(0.5, 2.0))
class Div(Op):
    saves = (1,)
    saved_tensors = (("y", 1), ("out", OUTPUT))

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.y = y
        self.out = x / y
        return self.out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        gx = g / self.y
        return gx, (-gx * self.out if self.needs[1] else None)  # d(x/y)/dy = -(x/y)/y


@primitive("pow", arity=2, domain=(0.5, 2.0))
class Pow(Op):
    saved_tensors = (("x", 0), ("y", 1), ("out", OUTPUT))

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.x, self.y = x, y
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 = inf, as torch
            self.out = x ** y
        return self.out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        x, y = self.x, self.y
        xs, ys = bridge.data(x), bridge.data(y)  # the masks are constants
        with np.errstate(divide="ignore", invalid="ignore"):
            # d/dx = y x^(y-1), 0 where y == 0 (also at x == 0, as torch); d/dy = x^y log x,
            # 0 where x == 0 and y >= 0 (the limit), as torch
            gx = g * bridge.where(ys == 0, 0.0, y * x ** (y - 1)) if self.needs[0] else None
            gy = (g * bridge.where((xs == 0) & (ys >= 0), 0.0, self.out * bridge.log(x))
                  if self.needs[1] else None)
        return gx, gy


@primitive("matmul", arity=2)
class MatMul(Op):
    saved_tensors = (("x", 0), ("y", 1))

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError("both operands need at least one dimension")
        if x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
            raise ValueError(f"inner dims differ, {x.shape} @ {y.shape}")
        self.x, self.y = x, y
        if x.ndim > 2 and y.ndim == 2:  # (..., n, k) @ (k, m): one GEMM, not one per batch
            return (_rows(x) @ y).reshape(x.shape[:-1] + y.shape[-1:])
        return x @ y

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
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
                gx = g @ bridge.swapaxes(y2, -1, -2)
            gx = gx[..., 0, :] if x.ndim == 1 else gx
        if self.needs[1]:
            if y2.ndim == 2 and x2.ndim > 2:  # (..., n, k) @ (k, m): fold the batch into one matmul
                gy = _rows(x2).T @ _rows(g)
            else:
                gy = bridge.swapaxes(x2, -1, -2) @ g
            gy = gy[..., 0] if y.ndim == 1 else gy
        return gx, gy


def _rows(a: Any) -> Any:
    """(..., k) -> (rows, k): the leading axes folded into one (also when k == 0)."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


@primitive("addmm", arity=3)
class AddMM(Op):
    """c + a @ b for 2-D a, b (torch.addmm): c is added into the product's buffer, so no
    separate a @ b array stays alive in the graph (an RNN step's gates, an input projection)."""

    saves = (1, 2)
    saved_tensors = (("a", 1), ("b", 2))

    def forward(self, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"a and b must be 2-D, got {a.shape} and {b.shape}")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"inner dims differ, {a.shape} @ {b.shape}")
        self.a, self.b = a, b
        return _add_into(a @ b, c)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g if self.needs[0] else None, g @ self.b.T if self.needs[1] else None,
                OuterGrad(self.a, g) if self.needs[2] else None)


@primitive("addcmul", arity=3)
class AddCMul(Op):
    """c + a * b with broadcasting (torch.addcmul): c is added into the product's buffer, so no
    separate a * b array stays alive in the graph (an LSTM's f * c + i * g, a gate's affine)."""

    saves = (1, 2)
    saved_tensors = (("a", 1), ("b", 2))

    def forward(self, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a, self.b = a, b
        return _add_into(a * b, c)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
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


_COMPARISONS = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less,
                "less_equal": np.less_equal, "greater": np.greater,
                "greater_equal": np.greater_equal}


@primitive("compare", arity=2, nondiff=(0, 1))
class Compare(Op):
    """x `op` y elementwise with broadcasting (op: equal, not_equal, less, less_equal, greater,
    greater_equal): a boolean mask, a constant with no gradient (as torch's comparisons).
    Tensor's comparison operators call it without recording a node."""

    saves = ()
    differentiable = False

    def forward(self, x: np.ndarray, y: np.ndarray, op: Any = "equal") -> np.ndarray:
        ufunc = _COMPARISONS.get(op) if isinstance(op, str) else None
        if ufunc is None:
            raise ValueError(f"op must be one of {sorted(_COMPARISONS)}, got {op!r}")
        try:
            return np.asarray(ufunc(x, y))
        except ValueError:
            raise ValueError(f"{op}: shapes {x.shape} and {y.shape} do not broadcast") from None

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return None, None  # a mask is piecewise constant: zero gradient almost everywhere


@primitive("dropout_mask", arity=0)
class DropoutMask(Op):
    """An inverted-dropout mask of `shape`: 0 with probability p, else 1/(1-p), in `dtype`,
    drawn from `rng` (a numpy Generator or RandomState; None: numpy's global RNG). It has no
    inputs and no gradient; being a primitive, a replayed step (jit.py) draws it afresh."""

    saves = ()
    differentiable = False

    def forward(self, shape: Any = (), p: Any = 0.5, dtype: Any = None,
                rng: Any = None) -> np.ndarray:
        draw = np.random if rng is None else rng
        return ((draw.random(shape) >= p) / (1.0 - p)).astype(dtype)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return ()


@primitive("where", arity=3, nondiff=(0,))
class Where(Op):
    saves = ()  # cond is saved as a boolean copy

    def forward(self, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.cond = cond.astype(bool)
        return np.where(self.cond, a, b)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        zero = np.zeros((), g.dtype)
        ga = bridge.where(self.cond, g, zero) if self.needs[1] else None
        gb = bridge.where(self.cond, zero, g) if self.needs[2] else None
        return None, ga, gb


# ---- elementwise unary ---------------------------------------------------------------------

@primitive("neg")
class Neg(Op):
    saves = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return -x

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (-g,)


@primitive("exp")
class Exp(Op):
    saves = ()
    saved_tensors = (("out", OUTPUT),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.exp(x)
        return self.out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g * self.out,)


@primitive("log", domain=(0.5, 2.0))
class Log(Op):
    saved_tensors = (("x", 0),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.log(x)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g / self.x,)


@primitive("sqrt", domain=(0.5, 2.0))
class Sqrt(Op):
    saves = ()
    saved_tensors = (("out", OUTPUT),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g * 0.5 / self.out,)


@primitive("abs")
class Abs(Op):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.abs(x)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g * np.sign(self.x),)  # sign(0) = 0, as torch; a constant


@primitive("tanh")
class Tanh(Op):
    saves = ()
    saved_tensors = (("out", OUTPUT),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        out = self.out
        if type(out) is np.ndarray:  # d tanh = 1 - tanh^2: no recomputation, one buffer
            gx = out * out
            np.subtract(_ONE.get(gx.dtype, 1.0), gx, gx)
        else:  # a Tensor when a backward is being recorded (grad of grad)
            gx = 1.0 - out * out
        gx *= g
        return (gx,)


@primitive("sigmoid")
class Sigmoid(Op):
    saves = ()
    saved_tensors = (("out", OUTPUT),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # sigmoid(x) = (1 + tanh(x/2)) / 2: no overflow for any x
        out = np.multiply(x, _HALF.get(x.dtype, 0.5))
        if type(out) is not np.ndarray:  # a 0-d input gives a numpy scalar
            out = np.asarray(out)
        np.tanh(out, out)  # in one buffer: four ufunc calls, one allocation
        np.add(out, _ONE.get(out.dtype, 1.0), out)
        np.multiply(out, _HALF.get(out.dtype, 0.5), out)
        self.out = out
        return out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        out = self.out  # d sigmoid = s (1 - s), in one temporary
        gx = np.subtract(_ONE.get(out.dtype, 1.0), out) if type(out) is np.ndarray else 1.0 - out
        gx *= out
        gx *= g
        return (gx,)


@primitive("relu")
class Relu(Op):
    saves = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (g * (self.out > 0),)  # the mask is a constant


@primitive("clip")
class Clip(Op):
    def forward(self, x: np.ndarray, lo: Any = None, hi: Any = None) -> np.ndarray:
        if lo is None and hi is None:
            raise ValueError("at least one of lo and hi must be given")
        for name, bound in (("lo", lo), ("hi", hi)):
            if bound is not None and (not isinstance(bound, (int, float, np.number))
                                      or isinstance(bound, (bool, np.bool_))):
                raise TypeError(f"{name} must be a real number or None, got {bound!r}")
        self.x, self.lo, self.hi = x, lo, hi
        return np.clip(x, lo, hi)

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        inside = np.ones(self.x.shape, bool)  # gradient passes where lo <= x <= hi, as torch
        if self.lo is not None:
            inside &= self.x >= self.lo
        if self.hi is not None:
            inside &= self.x <= self.hi
        return (g * inside,)


# the shape primitives register themselves into OPS on import; re-exported as ops.<Name>
from tinygrad_rnn.shape_ops import (
    AsType,
    BroadcastTo,
    Cat,
    ClassPick,
    Embedding,
    GetItem,
    Max,
    Mean,
    Reshape,
    ScatterAdd,
    Split,
    Stack,
    Sum,
    Transpose,
    Unbind,
    axis_index,
    is_int,
    normalize_index,
)

__all__ = [
    "OPS", "OUTPUT", "AsType", "BroadcastTo", "Cat", "ClassPick", "DropoutMask", "Embedding", "GetItem", "Max",
    "Mean", "Op", "Reshape", "ScatterAdd", "Split", "Stack", "Sum", "Transpose", "Unbind",
    "axis_index", "is_int", "normalize_index", "primitive",
]
