"""Packed sequences as torch.nn.utils.rnn: PackedSequence, pack_padded_sequence,
pad_packed_sequence, pad_sequence, pack_sequence, unpad_sequence, unpack_sequence,
invert_permutation.

A PackedSequence holds a batch of sequences of different lengths time step by time step, the
sequences still running at step t in order of decreasing length: no padding is stored.
Packing and padding are a gather (integer indexing) and a cat of Tensors, so gradients flow
through both from the engine. The RNN/LSTM/GRU stacks run a PackedSequence by padding it and
running with its lengths (the masked unroll of `lengths=`), then packing the output alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_rnn import ops
from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.nn.utils.packed_sequence import (
    PackedSequence,
    PackingError,
    PackingTypeError,
    int_vector,
    inverse_permutation,
)
from tinygrad_rnn.tensor import Tensor, _wrap, apply, cat, stack
from tinygrad_rnn.validate import as_array, as_real, check_bool, check_size

__all__ = ["PackedSequence", "PackingError", "PackingTypeError", "invert_permutation",
           "pack_padded_sequence", "pack_sequence", "pad_packed_sequence", "pad_sequence",
           "unpack_sequence", "unpad_sequence"]

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
    if _tensor._TRACE is not None:  # jit.py: the lengths' values decide the packed layout
        _tensor._TRACE.unreplayable(f"{who} inside the step (the lengths' values set the "
                                    f"packed layout): pack before the call and pass the "
                                    f"PackedSequence")
    if x.ndim < 2:
        layout = "(B, T, *)" if batch_first else "(T, B, *)"
        raise ValueError(f"{who}: input must be at least 2-D {layout}, got shape {x.shape}")
    steps, batch = x.shape[:2] if not batch_first else x.shape[1::-1]
    if x.size == 0:  # torch checks this first, before the lengths
        raise PackingError(f"{who}: cannot pack empty tensors: input has shape {x.shape} (a "
                           f"batch of 0 sequences, 0 steps or 0 features)")
    lengths = as_array(who, "lengths", lengths)
    if lengths.ndim != 1:
        raise PackingError(f"{who}: 'lengths' argument should be a 1D tensor or list of "
                           f"integers, got shape {lengths.shape}")
    lengths = int_vector(who, "lengths", lengths)
    if len(lengths) != batch:
        raise PackingError(f"{who}: Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{len(lengths)} (batch_size={batch})")
    if (lengths < 1).any():
        raise PackingError(f"{who}: Length of all samples has to be greater than 0, but found an "
                           f"element in 'lengths' that is <= 0: got "
                           f"{sorted(set(lengths[lengths < 1].tolist()))} (lengths must be in "
                           f"[1, T={steps}])")
    if (lengths > steps).any():
        raise PackingError(f"{who}: lengths must be in [1, T={steps}] (the input's time axis), "
                           f"got {sorted(set(lengths[lengths > steps].tolist()))}")
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise PackingError(f"{who}: `lengths` array must be sorted in decreasing order when "
                               f"`enforce_sorted` is True, got {lengths.tolist()}. You can pass "
                               f"`enforce_sorted=False` to pack_padded_sequence and/or "
                               f"pack_sequence to sort them here")
        order = None
    else:
        order = np.argsort(-lengths, kind="stable")  # ties keep the caller's order
    ranked = lengths if order is None else lengths[order]
    sizes = (ranked[None, :] > np.arange(ranked[0])[:, None]).sum(axis=1)
    data = _gather(x, sizes, order, batch_first)
    return PackedSequence._make((data, Tensor(sizes), *(
        (None, None) if order is None else (Tensor(order), Tensor(inverse_permutation(order))))))


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
        total_length = check_size(who, "total_length", total_length, minimum=-(1 << 62))
        if total_length < steps:  # negative too, as torch
            raise ValueError(f"{who}: Expected total_length to be at least the length of the "
                             f"longest sequence in input, but got total_length={total_length} "
                             f"and max sequence length being {steps}")
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
        raise PackingError(f"{who}: padding_side must be 'right' or 'left', got "
                           f"{padding_side!r} (Expected padding_side to be one of left or right)")
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
        kind = type(sequences).__name__
        raise PackingTypeError(f"{who}: sequences must be a list of tensors, got {kind} "
                               f"(Expected iterable for input sequences, but got arg of type: "
                               f"{kind})")
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


def unpad_sequence(padded_sequences: Any, lengths: Any, batch_first: bool = False
                   ) -> list[Tensor]:
    """Undo pad_sequence (as torch): the list of each sequence's first lengths[b] steps.

    Shape: padded_sequences (T, B, *) ((B, T, *) if batch_first), lengths (B,) integers in
    [0, T] -> B Tensors (lengths[b], *), differentiable (slices of the padded batch).
    """
    who = "unpad_sequence"
    batch_first = check_bool(who, "batch_first", batch_first)
    padded = padded_sequences if isinstance(padded_sequences, Tensor) else Tensor(
        as_array(who, "padded_sequences", padded_sequences))
    if padded.ndim < 2:
        raise ValueError(f"{who}: padded_sequences must be at least 2-D "
                         f"{'(B, T, *)' if batch_first else '(T, B, *)'}, got shape "
                         f"{padded.shape}")
    steps, batch = padded.shape[1::-1] if batch_first else padded.shape[:2]
    lengths = int_vector(who, "lengths", lengths)
    if len(lengths) != batch:
        raise ValueError(f"{who}: expected one length per sequence, {batch} (the batch axis of "
                         f"padded_sequences), got {len(lengths)}")
    if ((lengths < 0) | (lengths > steps)).any():
        raise ValueError(f"{who}: lengths must be in [0, T={steps}], got {lengths.tolist()}")
    return [padded[b, :n] if batch_first else padded[:n, b] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """Undo pack_sequence (as torch): the list of (L_i, *) Tensors in the caller's order."""
    if not isinstance(packed_sequences, PackedSequence):
        raise TypeError(f"unpack_sequence: packed_sequences must be a PackedSequence, got "
                        f"{type(packed_sequences).__name__}")
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


def invert_permutation(permutation: Any) -> Tensor | None:
    """The inverse of a permutation of range(n) (as torch; None stays None): (n,) int64."""
    if permutation is None:
        return None
    perm = int_vector("invert_permutation", "permutation", permutation)
    if np.sort(perm).tolist() != list(range(len(perm))):
        raise ValueError(f"invert_permutation: permutation must hold each of 0..{len(perm) - 1} "
                         f"once, got {perm.tolist()}")
    return Tensor(inverse_permutation(perm))


# ---- what the stacks use: one code path with a mask -----------------------------------------
# Traceable (jit.py): batch_sizes is read as structure (how many sequences run at each step
# shapes every index below, as the data's shape does); the sort order is applied by gather
# primitives whose index is the PackedSequence's own array, so a replay reads the new order.

def _packed_grid(sizes: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, B) of batch_sizes: the packed row of step t's i-th longest sequence (`rows`, one
    past the last, where it has ended), and whether it is still running."""
    running = np.arange(sizes[0])[None, :] < sizes[:, None]
    grid = np.full(running.shape, rows, np.intp)
    grid[running] = np.arange(rows)  # row-major over (t, i): the packed order
    return grid, running


def unpack_input(sequence: PackedSequence, batch_first: bool) -> tuple[Tensor, Tensor]:
    """A PackedSequence given to a stack as (padded input, its (B, T) bool mask of real
    steps), batch in the caller's order; the stack has checked that data is (N, input_size)."""
    data = sequence.data
    grid, running = _packed_grid(sequence.batch_sizes._data, data.shape[0])
    rows, mask = _wrap(grid), _wrap(np.ascontiguousarray(running.T))
    if sequence.sorted_indices is not None:  # caller b is the unsorted_indices[b]-th longest
        unsorted = sequence.unsorted_indices
        position = (unsorted._data if unsorted is not None else
                    inverse_permutation(sequence.sorted_indices._data))
        rows = apply(ops.GetItem, rows, index=(slice(None), position))
        mask = apply(ops.GetItem, mask, index=position)
    if batch_first:
        rows = rows.transpose(1, 0)
    fill = Tensor(np.zeros((1,) + data.shape[1:], data.dtype))
    return apply(ops.GetItem, cat([data, fill], axis=0), index=rows._data), mask


def pack_like(padded: Tensor, sequence: PackedSequence, batch_first: bool) -> PackedSequence:
    """A stack's padded output packed with `sequence`'s batch sizes and order."""
    sizes = sequence.batch_sizes._data
    t, i = np.nonzero(np.arange(sizes[0])[None, :] < sizes[:, None])  # packed order
    b = i
    if sequence.sorted_indices is not None:  # the i-th longest is caller sorted_indices[i]
        b = apply(ops.GetItem, _wrap(sequence.sorted_indices._data), index=i)._data
    data = apply(ops.GetItem, padded, index=(b, t) if batch_first else (t, b))
    return PackedSequence._make((data,) + tuple(sequence)[1:])
