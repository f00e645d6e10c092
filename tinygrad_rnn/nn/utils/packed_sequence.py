"""torch's PackedSequence: a named tuple (data, batch_sizes, sorted_indices,
unsorted_indices) of Tensors that checks what it is given, with torch's casts (`to`,
`double`, ...) acting on `data`. The functions that build and undo one are in rnn.py."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.validate import as_array, check_bool

__all__ = ["PackedSequence", "PackingError", "PackingTypeError"]

_Fields = collections.namedtuple("_Fields", ["data", "batch_sizes", "sorted_indices",
                                             "unsorted_indices"])


class PackingError(ValueError, RuntimeError):
    """A bad value for packing (lengths unsorted, out of range, of another count; no
    sequences): a ValueError, and the RuntimeError torch raises there."""


class PackingTypeError(TypeError, RuntimeError):
    """A wrong type where torch's packing raises a RuntimeError (pad_sequence of something
    that is not a list): a TypeError, as this project's rule, and torch's RuntimeError."""


def int_vector(who: str, name: str, value: Any, error: type = ValueError) -> np.ndarray:
    """A 1-D array of integers (a list, an ndarray or a Tensor) as int64. Whole floats pass
    (`Tensor([3, 2])` is float32 here, torch's `tensor([3, 2])` int64); 2.5 does not."""
    arr = as_array(who, name, value)
    if arr.size and arr.dtype.kind not in "iu":
        odd = arr[~(np.isfinite(arr) & (arr == np.round(arr)))] if arr.dtype.kind == "f" else arr
        if odd.size:
            raise TypeError(f"{who}: {name} must hold integers, got dtype {arr.dtype}"
                            + (f" holding {odd.ravel()[0].item()}" if arr.dtype.kind == "f"
                               else ""))
    if arr.ndim != 1:
        raise error(f"{who}: {name} must be 1-D, got shape {arr.shape}")
    return arr.astype(np.int64)


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """(n,) -> (n,): inv[perm[i]] = i."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    return inv


class PackedSequence(_Fields):
    """Sequences of different lengths, stored step by step without padding (as torch).

    Fields:
        data: (N, *) Tensor, N = the sum of the lengths; the rows of step 0, then of step 1...
        batch_sizes: (T,) int64 Tensor, how many sequences are still running at step t.
        sorted_indices: (B,) int64 Tensor, the batch position of the i-th longest sequence;
            None when the batch came sorted (enforce_sorted=True).
        unsorted_indices: the inverse permutation of sorted_indices (None with it).
    Build one with pack_padded_sequence or pack_sequence, as in torch; `PackedSequence((data,
    batch_sizes))` works too. `to`, `double`, `float`, ... cast `data` only, as torch.
    """

    __slots__ = ()

    def __new__(cls, data: Any, batch_sizes: Any = None,  # noqa: PYI034 (typing.Self: 3.11)
                sorted_indices: Any = None, unsorted_indices: Any = None) -> PackedSequence:
        who = "PackedSequence"
        if batch_sizes is None:  # torch's other form: one (data, batch_sizes) pair
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise TypeError(f"{who}: without batch_sizes, data must be a pair (data, "
                                f"batch_sizes), got {type(data).__name__}")
            data, batch_sizes = data
        data = data if isinstance(data, Tensor) else Tensor(as_array(who, "data", data))
        sizes = int_vector(who, "batch_sizes", batch_sizes)
        if data.ndim < 1 or not sizes.size or sizes.min() < 1 or (np.diff(sizes) > 0).any() \
                or sizes.sum() != data.shape[0]:
            raise ValueError(f"{who}: batch_sizes must be positive and non-increasing and add "
                             f"up to data's first dimension, got {sizes.tolist()} for data of "
                             f"shape {data.shape}")
        if sorted_indices is None:
            if unsorted_indices is not None:
                raise ValueError(f"{who}: unsorted_indices given without sorted_indices")
            return cls._make((data, Tensor(sizes), None, None))
        order = int_vector(who, "sorted_indices", sorted_indices)
        if np.sort(order).tolist() != list(range(sizes[0])):
            raise ValueError(f"{who}: sorted_indices must be a permutation of "
                             f"range({sizes[0]}) (batch_sizes[0]), got {order.tolist()}")
        inverse = inverse_permutation(order)
        if unsorted_indices is not None and not np.array_equal(
                int_vector(who, "unsorted_indices", unsorted_indices), inverse):
            raise ValueError(f"{who}: unsorted_indices must be the inverse permutation of "
                             f"sorted_indices, {inverse.tolist()}")
        return cls._make((data, Tensor(sizes), Tensor(order), Tensor(inverse)))

    def to(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """Cast `data` (as torch's `PackedSequence.to`): `to(dtype)`, `to(device)`,
        `to(device, dtype)`, `to(dtype=..., device=..., copy=False)`. A dtype is a numpy dtype,
        its name or a torch dtype (torch.float64); the only device is 'cpu'. Returns self
        when nothing changes; the index fields are shared."""
        dtype, copy = _parse_to("PackedSequence.to", args, kwargs)
        data = self.data
        if dtype is None or dtype == data.dtype:
            if not copy:
                return self
            data = data + Tensor(np.zeros((), data.dtype)) if data.requires_grad else \
                Tensor(data._data)
        else:
            data = _cast("PackedSequence.to", data, dtype)
        return type(self)._make((data,) + tuple(self)[1:])

    def cpu(self) -> PackedSequence:
        """Self: everything here lives on the CPU."""
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """There is no CUDA here: a RuntimeError, as torch built without CUDA."""
        raise RuntimeError("PackedSequence.cuda: tinygrad_rnn computes on the CPU only (numpy), "
                           "so there is no CUDA device")

    @property
    def is_cuda(self) -> bool:
        """False: data is a numpy array on the CPU."""
        return False

    def is_pinned(self) -> bool:
        """False: there is no pinned (page-locked) memory here."""
        return False

    # torch's dtype shorthands; they come last, where their names no longer shadow int, float
    def double(self) -> PackedSequence:
        """data as float64."""
        return self.to(np.float64)

    def float(self) -> PackedSequence:
        """data as float32."""
        return self.to(np.float32)

    def half(self) -> PackedSequence:
        """data as float16."""
        return self.to(np.float16)

    def long(self) -> PackedSequence:
        """data as int64 (no longer differentiable)."""
        return self.to(np.int64)

    def int(self) -> PackedSequence:
        """data as int32 (no longer differentiable)."""
        return self.to(np.int32)

    def short(self) -> PackedSequence:
        """data as int16 (no longer differentiable)."""
        return self.to(np.int16)

    def char(self) -> PackedSequence:
        """data as int8 (no longer differentiable)."""
        return self.to(np.int8)

    def byte(self) -> PackedSequence:
        """data as uint8 (no longer differentiable)."""
        return self.to(np.uint8)


_DEVICE_KINDS = ("cpu", "cuda", "mps", "meta", "xpu", "xla")


def _parse_to(who: str, args: tuple[Any, ...], kwargs: dict[str, Any]
              ) -> tuple[np.dtype | None, bool]:
    """(dtype or None, copy) from torch's `to` arguments; a device other than the CPU is a
    RuntimeError, an unknown keyword a TypeError."""
    unknown = set(kwargs) - {"dtype", "device", "copy", "non_blocking", "memory_format"}
    if unknown:
        raise TypeError(f"{who}: unexpected keyword argument(s) {sorted(unknown)}")
    dtype, copy = kwargs.get("dtype"), check_bool(who, "copy", kwargs.get("copy", False))
    devices = [kwargs["device"]] if kwargs.get("device") is not None else []
    for arg in args:
        text = str(arg)
        if isinstance(arg, Tensor):  # to(other): other's dtype, as torch
            dtype = arg.dtype
        elif type(arg).__name__ == "device" or text.split(":")[0] in _DEVICE_KINDS:
            devices.append(arg)
        else:
            dtype = arg
    for device in devices:
        if str(device).split(":")[0] != "cpu":
            raise RuntimeError(f"{who}: tinygrad_rnn computes on the CPU only, so device must "
                               f"be 'cpu', got {str(device)!r}")
    return (None if dtype is None else _dtype(who, dtype)), copy


def _dtype(who: str, dtype: Any) -> np.dtype:
    """A numpy dtype from a numpy dtype, a type, a name or a torch dtype (torch.float32)."""
    name = str(dtype)
    try:
        return np.dtype(name[len("torch."):] if name.startswith("torch.") else dtype)
    except TypeError:
        raise TypeError(f"{who}: dtype must be a numpy dtype, its name or a torch dtype, got "
                        f"{type(dtype).__name__} {dtype!r}") from None


def _cast(who: str, data: Tensor, dtype: np.dtype) -> Tensor:
    """`data` as `dtype`; differentiable where the engine can be (to a wider float)."""
    if dtype.kind not in "biuf":
        raise TypeError(f"{who}: dtype must be a real or boolean numpy dtype, got {dtype}")
    if not data.requires_grad or dtype.kind not in "f":
        return Tensor(data._data.astype(dtype))  # integers never carry a gradient, as torch
    if np.result_type(data.dtype, dtype) != dtype:
        raise RuntimeError(f"{who}: data requires grad and {data.dtype} -> {dtype} narrows it, "
                           f"which no primitive here can differentiate; cast the input before "
                           f"packing it")
    return data + Tensor(np.zeros((), dtype))  # a float widening: promotion keeps the graph
