"""Packed sequences as torch.nn.utils.rnn: PackedSequence, pack_padded_sequence,
pad_packed_sequence, pad_sequence, pack_sequence.

A PackedSequence holds a batch of sequences of different lengths time step by time step, the
sequences still running at step t in order of decreasing length: no padding is stored.
Packing and padding are a gather (integer indexing) and a cat of Tensors, so gradients flow
through both from the engine. The RNN/LSTM/GRU stacks run a PackedSequence by padding it and
running with its lengths (the masked unroll of `lengths=`), then packing the output alike.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_rnn.tensor import Tensor, cat, stack
from tinygrad_rnn.validate import as_array, as_real, check_bool, check_size

__all__ = ["PackedSequence", "PackingError", "pack_padded_sequence", "pack_sequence",
           "pad_packed_sequence", "pad_sequence"]

_Fields = collections.namedtuple("_Fields", ["data", "batch_sizes", "sorted_indices",
                                             "unsorted_indices"])


class PackingError(ValueError, RuntimeError):
    """A bad value for packing (lengths unsorted, out of range, of another count; no
    sequences): a ValueError, and the RuntimeError torch raises there."""


def _ints(who: str, name: str, value: Any, error: type = ValueError) -> np.ndarray:
    """A 1-D array of integers (a list, an ndarray or a Tensor) as int64."""
    arr = as_array(who, name, value)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{who}: {name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise error(f"{who}: {name} must be 1-D, got shape {arr.shape}")
    return arr.astype(np.int64)


def _inverse(perm: np.ndarray) -> np.ndarray:
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
    Build one with pack_padded_sequence or pack_sequence, as in torch.
    """

    __slots__ = ()

    def __new__(cls, data: Any, batch_sizes: Any,  # noqa: PYI034 (typing.Self needs 3.11)
                sorted_indices: Any = None, unsorted_indices: Any = None) -> PackedSequence:
        who = "PackedSequence"
        data = data if isinstance(data, Tensor) else Tensor(as_array(who, "data", data))
        sizes = _ints(who, "batch_sizes", batch_sizes)
        if data.ndim < 1 or not sizes.size or sizes.min() < 1 or (np.diff(sizes) > 0).any() \
                or sizes.sum() != data.shape[0]:
            raise ValueError(f"{who}: batch_sizes must be positive and non-increasing and add "
                             f"up to data's first dimension, got {sizes.tolist()} for data of "
                             f"shape {data.shape}")
        if sorted_indices is None:
            if unsorted_indices is not None:
                raise ValueError(f"{who}: unsorted_indices given without sorted_indices")
            return cls._make((data, Tensor(sizes), None, None))
        order = _ints(who, "sorted_indices", sorted_indices)
        if np.sort(order).tolist() != list(range(sizes[0])):
            raise ValueError(f"{who}: sorted_indices must be a permutation of "
                             f"range({sizes[0]}) (batch_sizes[0]), got {order.tolist()}")
        inverse = _inverse(order)
        if unsorted_indices is not None and not np.array_equal(
                _ints(who, "unsorted_indices", unsorted_indices), inverse):
            raise ValueError(f"{who}: unsorted_indices must be the inverse permutation of "
                             f"sorted_indices, {inverse.tolist()}")
        return cls._make((data, Tensor(sizes), Tensor(order), Tensor(inverse)))


def _rows(sizes: np.ndarray, order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The packed rows' places in a padded batch: (t, b) arrays, packed order (t, then the
    i-th longest sequence)."""
    running = np.arange(sizes[0])[None, :] < sizes[:, None]  # (T, B): sorted position i
    t, i = np.nonzero(running)
    return t, (i if order is None else order[i])


def _pack(who: str, x: Tensor, lengths: Any, batch_first: bool, enforce_sorted: bool
          ) -> PackedSequence:
    batch_first = check_bool(who, "batch_first", batch_first)
    enforce_sorted = check_bool(who, "enforce_sorted", enforce_sorted)
    if x.ndim < 2:
        layout = "(B, T, *)" if batch_first else "(T, B, *)"
        raise ValueError(f"{who}: input must be at least 2-D {layout}, got shape {x.shape}")
    steps, batch = x.shape[:2] if not batch_first else x.shape[1::-1]
    lengths = _ints(who, "lengths", lengths, PackingError)
    if len(lengths) != batch:
        raise PackingError(f"{who}: expected len(lengths) to be the batch size {batch}, got "
                           f"{len(lengths)}")
    if batch == 0:
        raise PackingError(f"{who}: cannot pack empty tensors (a batch of 0 sequences)")
    bad = lengths[(lengths < 1) | (lengths > steps)]
    if bad.size:
        raise PackingError(f"{who}: lengths must be in [1, T={steps}] (the input's time axis), "
                           f"got {sorted(set(bad.tolist()))}")
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise PackingError(f"{who}: lengths must be sorted in decreasing order when "
                               f"enforce_sorted is True, got {lengths.tolist()}; pass "
                               f"enforce_sorted=False to sort them here")
        order = None
    else:
        order = np.argsort(-lengths, kind="stable")  # ties keep the caller's order
    ranked = lengths if order is None else lengths[order]
    sizes = (ranked[None, :] > np.arange(ranked[0])[:, None]).sum(axis=1)
    data = _gather(x, sizes, order, batch_first)
    return PackedSequence._make((data, Tensor(sizes), *(
        (None, None) if order is None else (Tensor(order), Tensor(_inverse(order))))))


def _gather(padded: Tensor, sizes: np.ndarray, order: np.ndarray | None, batch_first: bool
            ) -> Tensor:
    """The packed rows (N, *) of a padded (T, B, *) ((B, T, *) if batch_first) Tensor."""
    t, b = _rows(sizes, order)
    return padded[(b, t) if batch_first else (t, b)]


def pack_padded_sequence(input: Any, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of sequences (as torch).

    Args:
        input: (T, B, *) padded sequences ((B, T, *) if batch_first); any numeric dtype.
        lengths: (B,) integers in [1, T]: a list, an ndarray or a Tensor.
        enforce_sorted: lengths must come in decreasing order; if False they are sorted here
            (stably: ties keep their batch order) and sorted_indices records the order.
    Returns:
        a PackedSequence whose data (sum(lengths), *) is differentiable w.r.t. input.
    """
    who = "pack_padded_sequence"
    x = input if isinstance(input, Tensor) else Tensor(as_array(who, "input", input))
    return _pack(who, x, lengths, batch_first, enforce_sorted)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None
                        ) -> tuple[Tensor, Tensor]:
    """Undo pack_padded_sequence (as torch): the padded batch, in the caller's batch order.

    Args:
        sequence: a PackedSequence. padding_value: what fills the steps past each length.
        total_length: pad to this many steps (at least the longest length); default the
            longest length.
    Returns:
        (padded (T, B, *) or (B, T, *) if batch_first, lengths (B,) int64 Tensor).
    """
    who = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{who}: sequence must be a PackedSequence, got "
                        f"{type(sequence).__name__}")
    batch_first = check_bool(who, "batch_first", batch_first)
    padding_value = as_real(who, "padding_value", padding_value)
    sizes = sequence.batch_sizes._data
    order = None if sequence.sorted_indices is None else sequence.sorted_indices._data
    steps = len(sizes)
    if total_length is not None:
        total_length = check_size(who, "total_length", total_length)
        if total_length < steps:
            raise ValueError(f"{who}: total_length must be at least the length of the longest "
                             f"sequence, {steps}, got {total_length}")
        steps = total_length
    return _pad(sequence.data, sizes, order, steps, batch_first, padding_value)


def _pad(data: Tensor, sizes: np.ndarray, order: np.ndarray | None, steps: int,
         batch_first: bool, padding_value: float) -> tuple[Tensor, Tensor]:
    t, b = _rows(sizes, order)
    where_row = np.full((steps, sizes[0]), data.shape[0], np.intp)  # the padding row
    where_row[t, b] = np.arange(data.shape[0])
    fill = Tensor(np.full((1,) + data.shape[1:], padding_value, data.dtype))
    padded = cat([data, fill], axis=0)[where_row.T if batch_first else where_row]
    lengths = np.zeros(sizes[0], np.int64)
    np.add.at(lengths, b, 1)
    return padded, Tensor(lengths)


def pad_sequence(sequences: Any, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of different lengths into one padded batch (as torch).

    Args:
        sequences: a list of (L_i, *) Tensors or arrays with the same trailing shape (a Tensor
            or array stands for the list of its rows).
        padding_side: 'right' pads after each sequence, 'left' before it.
    Shape: -> (max L_i, B, *), or (B, max L_i, *) if batch_first.
    """
    who = "pad_sequence"
    batch_first = check_bool(who, "batch_first", batch_first)
    padding_value = as_real(who, "padding_value", padding_value)
    if padding_side not in ("right", "left"):
        raise ValueError(f"{who}: padding_side must be 'right' or 'left', got {padding_side!r}")
    seqs = _sequences(who, sequences)
    longest = max(s.shape[0] for s in seqs)
    padded = []
    for s in seqs:
        n = longest - s.shape[0]
        if n:
            fill = Tensor(np.full((n,) + s.shape[1:], padding_value, s.dtype))
            s = cat([s, fill] if padding_side == "right" else [fill, s], axis=0)
        padded.append(s)
    return stack(padded, axis=0 if batch_first else 1)


def _sequences(who: str, sequences: Any) -> list[Tensor]:
    """A non-empty list of Tensors of at least 1 dimension, with one trailing shape."""
    if isinstance(sequences, np.ndarray):
        sequences = Tensor(as_array(who, "sequences", sequences))
    if isinstance(sequences, Tensor) and sequences.ndim:
        sequences = sequences.unbind(0)  # as torch, which iterates over a tensor's rows
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
        raise TypeError(f"{who}: sequences must be a list of tensors, got "
                        f"{type(sequences).__name__}")
    seqs = [s if isinstance(s, Tensor) else Tensor(as_array(who, f"sequences[{i}]", s))
            for i, s in enumerate(sequences)]
    if not seqs:
        raise PackingError(f"{who}: received an empty list of sequences")
    for i, s in enumerate(seqs):
        if s.ndim < 1 or s.shape[1:] != seqs[0].shape[1:]:
            raise PackingError(f"{who}: every sequence must be (L, *) with the trailing shape "
                               f"{seqs[0].shape[1:]} of sequences[0], got sequences[{i}] of "
                               f"shape {s.shape}")
    return seqs


def pack_sequence(sequences: Any, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) sequences (as torch: pad_sequence, then pack_padded_sequence).

    enforce_sorted: the sequences must come longest first; if False they are sorted here.
    """
    who = "pack_sequence"
    seqs = _sequences(who, sequences)
    lengths = [s.shape[0] for s in seqs]
    return _pack(who, pad_sequence(seqs), lengths, False, enforce_sorted)


# ---- what the stacks use: one code path with `lengths` -------------------------------------
def unpack_input(who: str, sequence: PackedSequence, input_size: int, batch_first: bool
                 ) -> tuple[Tensor, np.ndarray]:
    """A PackedSequence given to a stack as (padded input, lengths), batch in the caller's
    order; its data must be (N, input_size)."""
    data = sequence.data
    if data.ndim != 2 or data.shape[1] != input_size:
        raise ValueError(f"{who}: a PackedSequence input needs data of shape (N, input_size="
                         f"{input_size}), got {data.shape}")
    order = None if sequence.sorted_indices is None else sequence.sorted_indices._data
    sizes = sequence.batch_sizes._data
    padded, lengths = _pad(data, sizes, order, len(sizes), batch_first, 0.0)
    return padded, lengths._data


def pack_like(padded: Tensor, sequence: PackedSequence, batch_first: bool) -> PackedSequence:
    """A stack's padded output packed with `sequence`'s batch sizes and order."""
    order = None if sequence.sorted_indices is None else sequence.sorted_indices._data
    data = _gather(padded, sequence.batch_sizes._data, order, batch_first)
    return PackedSequence._make((data,) + tuple(sequence)[1:])
