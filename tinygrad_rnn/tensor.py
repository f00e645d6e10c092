"""Tensor, and `apply`, which runs a primitive and records it as a graph node (the backward
engine that walks those nodes is engine.py; the ambient settings, grad mode and graph scope, are
in settings.py and re-exported here).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn import ops, versions
from tinygrad_rnn.engine import run_backward
from tinygrad_rnn.gradients import Port
from tinygrad_rnn.ops import Op
from tinygrad_rnn.settings import (
    _GRAD_ENABLED,
    _SCOPE,
    current_scope,
    enable_grad,
    get_default_dtype,
    graph_scope,
    is_grad_enabled,
    no_grad,
    set_default_dtype,
    set_grad_enabled,
)

__all__ = ["Tensor", "addcmul", "addmm", "apply", "apply_multi", "cat", "current_scope",
           "enable_grad", "get_default_dtype", "graph_scope", "is_grad_enabled", "no_grad",
           "set_default_dtype", "set_grad_enabled", "stack", "where"]

def _as_array(data: Any, dtype: Any, copy: bool = True) -> np.ndarray:
    """`data` as a numeric array (a copy unless `copy` is False), or a TypeError/ValueError
    naming what was wrong: strings, objects, ragged sequences, an unknown dtype."""
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"Tensor: dtype {dtype!r} is not a numpy dtype") from None
        if dtype.kind not in "biuf":
            raise TypeError(f"Tensor: dtype must be boolean, integer or floating, got {dtype}")
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(data, dtype=dtype, copy=copy or None)  # as torch.tensor: a copy
    elif data is None or isinstance(data, (str, bytes, dict, set)):
        raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} data")
    else:
        try:
            arr = np.asarray(data)
        except ValueError:
            raise ValueError("Tensor: data is a ragged nested sequence (rows of different "
                             "lengths); expected a rectangular array") from None
        if arr.dtype.kind in "biuf":
            arr = arr.astype(get_default_dtype() if dtype is None else dtype)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: data must be numeric (bool, int or float), got "
                        f"{type(data).__name__} of dtype {arr.dtype}")
    return arr


class Tensor:
    """An n-dimensional numpy array that records the ops applied to it for reverse-mode autodiff.

    Args:
        data: array-like, copied (as torch.tensor; `Tensor.from_numpy` shares instead). Float
            numpy arrays keep their dtype, Python numbers and lists become the default dtype,
            integer and boolean arrays keep theirs (indices, masks).
        requires_grad: accumulate d(output)/d(self) into `.grad` on backward.
        dtype: optional dtype to cast to.
    """

    __slots__ = ("__weakref__", "_data", "_guard", "_op", "grad", "requires_grad")
    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operator
    # a Tensor in the graph is a leaf: no parents, no scope, first in creation order
    _parents: tuple = ()
    _scope: tuple = ()
    _seq = 0
    _freed = False
    _shape = property(lambda self: self._data.shape)  # as a node's, for the engine
    _dtype = property(lambda self: self._data.dtype)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"Tensor: requires_grad must be a bool, got "
                            f"{type(requires_grad).__name__}")
        self._data = _as_array(data, dtype)
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad needs a floating dtype, got "
                            f"{self._data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._op: Op | Port | None = None  # the node that made this tensor; None for a leaf
        self._guard: versions.Guard | None = None  # see versions.py

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> Tensor:
        """A tensor sharing `array`'s memory, as torch.from_numpy: later writes into the array
        are the tensor's values (and, between a forward and its backward, an error there)."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Tensor.from_numpy: expected an np.ndarray, got "
                            f"{type(array).__name__}")
        out = _wrap(_as_array(array, None, copy=False))
        versions.expose(out)
        return out

    # ---- data, and the in-place change detector (see versions.py) -----------------------
    @property
    def data(self) -> np.ndarray:
        """The values. The array is handed out, so writes into it are watched: one made between
        a forward that saved this tensor and its backward makes backward raise."""
        versions.expose(self)
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        arr = value._data if isinstance(value, Tensor) else value
        if not isinstance(arr, np.ndarray):
            arr = _as_array(arr, self._data.dtype)
        elif arr.dtype.kind not in "biuf":
            raise TypeError(f"Tensor.data: expected a numeric array, got dtype {arr.dtype}")
        if self.requires_grad and arr.dtype.kind != "f":
            raise TypeError(f"Tensor.data: a tensor that requires grad needs a floating array, "
                            f"got {arr.dtype}")
        self._data = arr
        versions.written(self)
        versions.expose(self)  # the caller may keep a reference to this array: watch it
        if _TRACE is not None:
            _TRACE.unreplayable(_REPLACED)

    def _assign(self, array: np.ndarray) -> None:
        """Take `array`, which nobody else holds, as the values (the library's own writes:
        initialisation, load_state_dict, to(), optimizer steps): ops recorded before now see
        stale values, so a backward through them raises."""
        self._data = array
        versions.written(self)
        if _TRACE is not None:
            _TRACE.unreplayable(_REPLACED)

    # ---- plain attributes -------------------------------------------------------------
    shape = property(lambda self: self._data.shape)
    ndim = property(lambda self: self._data.ndim)
    dtype = property(lambda self: self._data.dtype)
    size = property(lambda self: self._data.size)
    is_leaf = property(lambda self: self._op is None)
    op_name = property(lambda self: self._op.name if self._op is not None else None)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self._data, precision=4)}, dtype={self.dtype}{extra})"

    def numpy(self) -> np.ndarray:
        """The values as the numpy array itself (shared, as torch's .numpy())."""
        return self.data

    def item(self) -> float:
        if self._data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts, got shape {self.shape}")
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self._data.size} "
                             f"elements is ambiguous (use .any() or .all() on .numpy())")
        if _TRACE is not None:
            import warnings
            warnings.warn("jit: bool() of a tensor while a step is recorded: a Python branch on "
                          "a value is frozen in the recording (jit(fn, check=True) compares "
                          "each replay with an eager step)", stacklevel=2)
        return bool(self._data.item())

    def detach(self) -> Tensor:
        """The same data, shared (as torch), cut from the graph (no grad)."""
        out = _wrap(self.data)
        versions.expose(out)
        return out

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this non-leaf tensor after backward (e.g. dLoss/dh_t)."""
        if self._op is not None:
            self._op._retained = weakref.ref(self)
        if _TRACE is not None:
            _TRACE.unreplayable("retain_grad() inside the step")
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
            if self._data.size != 1:
                raise RuntimeError(f"backward: grad must be given for a non-scalar output of "
                                   f"shape {self.shape}")
            seed = np.ones(self.shape, self.dtype)
        else:
            try:
                seed = np.asarray(grad._data if isinstance(grad, Tensor) else grad, self.dtype)
            except (TypeError, ValueError):
                raise TypeError(f"backward: grad must be numeric, got {type(grad).__name__}"
                                ) from None
            if seed.shape != self.shape:
                raise ValueError(f"backward: grad of shape {seed.shape} for a tensor of shape "
                                 f"{self.shape}")
        if _TRACE is not None:  # jit.py records this backward's plan before it runs
            _TRACE.backward(self, seed, retain_graph)
        run_backward(self, seed, retain_graph)

    # ---- operators ----------------------------------------------------------------------
    def _lift(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float)) and self.dtype.kind == "f":
            return Tensor(np.asarray(other, self.dtype))
        if type(other) is np.ndarray and other.dtype.kind in "biuf":
            # shared and watched, as Tensor.from_numpy (a write before backward raises), so a
            # recorded step (jit.py) binds the caller's array instead of freezing a copy
            return Tensor.from_numpy(other)
        return Tensor(other)

    def __add__(self, o: Any) -> Tensor: return apply(ops.Add, self, self._lift(o))
    def __radd__(self, o: Any) -> Tensor: return apply(ops.Add, self._lift(o), self)
    def __sub__(self, o: Any) -> Tensor: return apply(ops.Sub, self, self._lift(o))
    def __rsub__(self, o: Any) -> Tensor: return apply(ops.Sub, self._lift(o), self)
    def __mul__(self, o: Any) -> Tensor: return apply(ops.Mul, self, self._lift(o))
    def __rmul__(self, o: Any) -> Tensor: return apply(ops.Mul, self._lift(o), self)
    def __truediv__(self, o: Any) -> Tensor: return apply(ops.Div, self, self._lift(o))
    def __rtruediv__(self, o: Any) -> Tensor: return apply(ops.Div, self._lift(o), self)
    def __pow__(self, o: Any) -> Tensor: return apply(ops.Pow, self, self._lift(o))
    def __rpow__(self, o: Any) -> Tensor: return apply(ops.Pow, self._lift(o), self)
    def __matmul__(self, o: Any) -> Tensor: return apply(ops.MatMul, self, self._lift(o))
    def __rmatmul__(self, o: Any) -> Tensor: return apply(ops.MatMul, self._lift(o), self)
    def __neg__(self) -> Tensor: return apply(ops.Neg, self)
    __hash__ = object.__hash__  # tensors hash by identity; == is elementwise, as torch

    # ---- comparisons: boolean tensors, no gradient (as torch) ------------------------------
    def _compare(self, o: Any, op: str) -> Tensor:
        """The `compare` primitive: a mask, a constant (apply records no node for it)."""
        if o is None or isinstance(o, (str, bytes)):
            return NotImplemented
        other = o if isinstance(o, Tensor) else np.asarray(o)
        if other.dtype.kind not in "biuf":
            return NotImplemented
        return apply(ops.Compare, self, _tensor(other), op=op)

    def __eq__(self, o: object) -> Tensor:  # type: ignore[override]  # elementwise, not a bool
        return self._compare(o, "equal")

    def __ne__(self, o: object) -> Tensor:  # type: ignore[override]  # elementwise, not a bool
        return self._compare(o, "not_equal")

    def __lt__(self, o: Any) -> Tensor: return self._compare(o, "less")
    def __le__(self, o: Any) -> Tensor: return self._compare(o, "less_equal")
    def __gt__(self, o: Any) -> Tensor: return self._compare(o, "greater")
    def __ge__(self, o: Any) -> Tensor: return self._compare(o, "greater_equal")

    # ---- in-place operators -------------------------------------------------------------
    def _inplace(self, op_cls: type[Op], o: Any, ufunc: np.ufunc) -> Tensor:
        """`self op= o`: while grad is recorded a new node (Python rebinds the name), except on
        a leaf that requires grad, an error as torch; otherwise a write into the array, which
        makes a backward through an op that saved it raise."""
        other = self._lift(o)
        if _GRAD_ENABLED.get() and (self.requires_grad or other.requires_grad):
            if self._op is None and self.requires_grad:
                raise RuntimeError(f"{op_cls.name}: a leaf tensor that requires grad cannot be "
                                   f"changed in place while grad is recorded; do it under "
                                   f"no_grad()")
            return apply(op_cls, self, other)
        try:
            result = ufunc(self._data, other._data)
        except ValueError:
            raise ValueError(f"{op_cls.name}: shapes {self.shape} and {other.shape} do not "
                             f"broadcast") from None
        if result.shape != self.shape:
            raise ValueError(f"{op_cls.name}: the result's shape {result.shape} differs from the "
                             f"tensor's {self.shape}; an in-place operation keeps the shape")
        try:
            np.copyto(self._data, result, casting="same_kind")
        except TypeError:
            raise TypeError(f"{op_cls.name}: a {result.dtype} result cannot be written into a "
                            f"{self.dtype} tensor in place") from None
        versions.written(self)
        if _TRACE is not None:
            _TRACE.unreplayable(f"an in-place {op_cls.name} (+=, -=, *=, /=) outside the graph")
        return self

    def __iadd__(self, o: Any) -> Tensor:  # noqa: PYI034 (a new node while recording)
        return self._inplace(ops.Add, o, np.add)

    def __isub__(self, o: Any) -> Tensor:  # noqa: PYI034 (a new node while recording)
        return self._inplace(ops.Sub, o, np.subtract)

    def __imul__(self, o: Any) -> Tensor:  # noqa: PYI034 (a new node while recording)
        return self._inplace(ops.Mul, o, np.multiply)

    def __itruediv__(self, o: Any) -> Tensor:  # noqa: PYI034 (a new node while recording)
        return self._inplace(ops.Div, o, np.true_divide)

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
        """Mean (NaN for an empty tensor, as torch; float16 accumulates in float32)."""
        return apply(ops.Mean, self, axis=axis, keepdims=keepdims)

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
            index = tuple([i._data if isinstance(i, Tensor) else i for i in index])
        elif isinstance(index, Tensor):
            index = index._data
        return apply(ops.GetItem, self, index=index)

    def chunk(self, chunks: int, axis: int = 0) -> list[Tensor]:
        """Split into `chunks` pieces along `axis` as torch.chunk (the last may be smaller)."""
        if type(chunks) is not int and not ops.is_int(chunks):
            raise TypeError(f"chunk: chunks must be an int, got {type(chunks).__name__}")
        if chunks < 1:
            raise ValueError(f"chunk: chunks must be >= 1, got {chunks}")
        ndim = self._data.ndim
        n = self.shape[axis if type(axis) is int and -ndim <= axis < ndim  # the usual case
                       else ops.axis_index("chunk", axis, ndim)]
        step = max(-(-n // chunks), 1)
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0] * chunks  # n = 0: as torch
        return apply_multi(ops.Split, self, sizes=sizes, axis=axis)

    def split(self, sizes: int | Sequence[int], axis: int = 0) -> list[Tensor]:
        """Consecutive pieces along `axis` (torch.split): `sizes` lists their lengths, or is one
        length for every piece (the last may be shorter)."""
        if type(sizes) is not list:
            if ops.is_int(sizes):
                n, size = self.shape[ops.axis_index("split", axis, self.ndim)], int(sizes)
                if size < 1:
                    raise ValueError(f"split: a split size must be >= 1, got {size}")
                sizes = [min(size, n - s) for s in range(0, n, size)] or [0]
            elif isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
                raise TypeError(f"split: sizes must be an int or a sequence of ints, got "
                                f"{type(sizes).__name__}")
            sizes = list(sizes)
        return apply_multi(ops.Split, self, sizes=sizes, axis=axis)

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
    if op_cls.routed:  # several outputs (a list), or a constant output: see _apply_routed
        return _apply_routed(op_cls, inputs, kwargs)
    op = op_cls()
    needs: list[bool] = []  # one loop, no comprehension frames: a hot path
    arrays: list[np.ndarray] = []
    nodes: list[Any] = []
    for t in inputs:
        needs.append(t.requires_grad)
        arrays.append(t._data)
        nodes.append(t._op or t)  # the graph holds nodes, not tensors: see ops.Op
        if t._guard is not None and t._guard.copy is not None:  # handed out: see versions.py
            versions.on_record(t)
    op.needs = flags = tuple(needs)
    try:
        data = op.forward(*arrays, **kwargs)
    except (ValueError, IndexError, TypeError) as err:
        raise _named(err, op_cls.name, inputs) from None
    out = Tensor.__new__(Tensor)
    out._data, out.grad, out._guard = data, None, None
    if True in flags and _GRAD_ENABLED.get():
        out.requires_grad, out._op = True, op
        op._parents, op._scope, op._seq = tuple(nodes), _SCOPE.get(), next(_SEQUENCE)
        op._shape, op._dtype = data.shape, data.dtype
    else:
        out.requires_grad, out._op = False, None
    if _TRACE is not None:  # jit.py is recording a step
        _TRACE.record(op, inputs, kwargs, out)
    return out


_SEQUENCE = versions.SEQUENCE  # creation order: a global name, read once per recorded op
_TRACE: Any = None  # while jit.py records a step: its recorder, told of every primitive call
_REPLACED = ("a tensor's values were replaced inside the step (an optimizer's step(), .data = "
             "or load_state_dict): keep the optimizer step outside the jitted function")


def _apply_routed(op_cls: type[Op], inputs: tuple[Tensor, ...], kwargs: dict[str, Any]) -> Any:
    """apply for the ops `routed` marks: a multi-output op (split, unbind) goes to apply_multi
    (Tensor's methods call that directly); a non-differentiable one (compare) runs and gives a
    constant, never a node."""
    if op_cls.multi_output:
        return apply_multi(op_cls, *inputs, **kwargs)
    op = op_cls()
    op.needs = (False,) * len(inputs)
    for t in inputs:
        if t._guard is not None and t._guard.copy is not None:
            versions.on_record(t)
    try:
        out = _wrap(op.forward(*[t._data for t in inputs], **kwargs))
    except (ValueError, IndexError, TypeError) as err:
        raise _named(err, op_cls.name, inputs) from None
    if _TRACE is not None:
        _TRACE.record(op, inputs, kwargs, out)
    return out


def apply_multi(op_cls: type[Op], x: Tensor, **kwargs: Any) -> list[Tensor]:
    """Run a multi-output primitive (split, unbind) on x; each output's node is a Port of the
    one recorded op."""
    op = op_cls()
    op.needs = (x.requires_grad,)
    if x._guard is not None and x._guard.copy is not None:
        versions.on_record(x)
    try:
        pieces = op.forward(x._data, **kwargs)
    except (ValueError, IndexError, TypeError) as err:
        raise _named(err, op_cls.name, (x,)) from None
    record = x.requires_grad and _GRAD_ENABLED.get()
    if record:
        op._parents, op._scope, op._seq = (x._op or x,), _SCOPE.get(), next(_SEQUENCE)
        op._shape, op._dtype = x._data.shape, x._data.dtype
    outs = []
    for i, piece in enumerate(pieces):
        out = Tensor.__new__(Tensor)
        out._data, out.grad, out.requires_grad, out._guard = piece, None, record, None
        out._op = Port(op, i, piece.shape, piece.dtype) if record else None
        outs.append(out)
    if _TRACE is not None:
        _TRACE.record(op, (x,), kwargs, outs)
    return outs


def _named(err: Exception, name: str, inputs: Sequence[Tensor]) -> Exception:
    """`err` from inside an op's forward, as a plain built-in error naming the op and shapes."""
    shapes = ", ".join(str(t.shape) for t in inputs)
    kind = next(k for k in (IndexError, TypeError, ValueError) if isinstance(err, k))
    return kind(f"{name}: {err} (input shapes {shapes})")


def _wrap(data: np.ndarray) -> Tensor:
    """A leaf Tensor around `data` itself (no copy, no grad)."""
    out = Tensor.__new__(Tensor)
    out._data, out.grad, out.requires_grad, out._op, out._guard = data, None, False, None, None
    return out


def _sequence_of_tensors(fn: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, (Tensor, np.ndarray, str, bytes)) or not isinstance(
            tensors, (Sequence, Iterator)):
        raise TypeError(f"{fn}: tensors must be a sequence of tensors, got "
                        f"{type(tensors).__name__}")
    return [_tensor(t) for t in tensors]


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Concatenate along an existing axis (torch.cat)."""
    return apply(ops.Cat, *_sequence_of_tensors("cat", tensors), axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack along a new axis (torch.stack)."""
    return apply(ops.Stack, *_sequence_of_tensors("stack", tensors), axis=axis)


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
