"""Batching, padding and built-in recurrent teaching tasks (pure numpy); the Keras IMDB reader
(imdb.py) is re-exported here as `data.load_imdb`."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn.validate import check_bool, check_size

RNGLike = np.random.Generator | int | None


def _real(func: str, name: str, value: Any) -> float:
    """`value` as a finite float; TypeError for non-numbers, ValueError for NaN or inf."""
    if isinstance(value, (bool, np.bool_, np.complexfloating)) or not isinstance(
            value, (int, float, np.number)):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{func}: {name} must be finite, got {value}")
    return float(value)


def _generator(func: str, rng: Any) -> np.random.Generator:
    """The Generator for `rng`: a Generator, BitGenerator, SeedSequence, int seed >= 0 or None."""
    if rng is None or isinstance(rng, (np.random.Generator, np.random.BitGenerator,
                                       np.random.SeedSequence)):
        return np.random.default_rng(rng)
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)):
        raise TypeError(f"{func}: rng must be a numpy Generator, an int seed or None, "
                        f"got {type(rng).__name__}")
    if rng < 0:
        raise ValueError(f"{func}: rng seed must be >= 0, got {rng}")
    return np.random.default_rng(int(rng))


def _as_rows(func: str, i: int, a: Any) -> np.ndarray:
    """Array `i` viewed along axis 0; ragged lists become a 1-D object array."""
    if a is None or isinstance(a, (str, bytes, Mapping, set, frozenset)) or not (
            hasattr(a, "__len__") and hasattr(a, "__getitem__")):
        raise TypeError(f"{func}: array {i} is a {type(a).__name__}, expected an array or "
                        "a list with a batch axis")
    try:
        arr = np.asarray(a)
    except ValueError:                         # ragged nested lists: keep each row as one object
        arr = np.empty(len(a), dtype=object)
        for j, row in enumerate(a):
            arr[j] = row
    if arr.ndim == 0:
        raise ValueError(f"{func}: array {i} is a scalar, expected a batch axis (N, ...)")
    return arr


def _aligned(func: str, arrays: tuple) -> tuple[list[np.ndarray], int]:
    """Convert `arrays` with `_as_rows` and check that they share their first dimension."""
    if not arrays:
        raise TypeError(f"{func}: expected at least 1 array, got 0")
    rows = [_as_rows(func, i, a) for i, a in enumerate(arrays)]
    lengths = [len(r) for r in rows]
    if len(set(lengths)) != 1:
        raise ValueError(f"{func}: arrays differ in first-dimension length: {lengths}")
    return rows, lengths[0]


def batches(*arrays: Any, batch_size: int, shuffle: bool = False,
            rng: RNGLike = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Iterate over aligned mini-batches of `arrays` along axis 0; the last batch may be smaller.

    Args: arrays share their first dimension N; `rng` (Generator or seed) drives `shuffle`.
    Shape: each array (N, ...) -> each batch element (<= batch_size, ...).
    Returns: an iterator of tuples (one entry per array, even for a single array).
    """
    size = check_size("batches", "batch_size", batch_size, 1)
    shuffle = check_bool("batches", "shuffle", shuffle)
    gen = _generator("batches", rng)
    rows, n = _aligned("batches", arrays)
    order = gen.permutation(n) if shuffle else np.arange(n)

    def generate() -> Iterator[tuple[np.ndarray, ...]]:
        for start in range(0, n, size):
            idx = order[start:start + size]
            yield tuple(r[idx] for r in rows)
    return generate()                          # errors above are raised at call time, not lazily


def train_val_split(*arrays: Any, val_fraction: float = 0.2, shuffle: bool = True,
                    rng: RNGLike = None) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Split aligned arrays into training and validation parts along axis 0.

    The validation part is the last `N - floor(N * (1 - val_fraction))` rows after the optional
    shuffle (the Keras `validation_split` rule; without shuffle it is exactly Keras').
    Shape: each array (N, ...) -> (N_train, ...) and (N_val, ...).
    Returns: `(train_tuple, val_tuple)`, one entry per array in each.
    """
    fraction = _real("train_val_split", "val_fraction", val_fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    shuffle = check_bool("train_val_split", "shuffle", shuffle)
    gen = _generator("train_val_split", rng)
    rows, n = _aligned("train_val_split", arrays)
    split_at = math.floor(n * (1.0 - fraction))
    if split_at in (0, n):
        raise ValueError(f"train_val_split: {n} samples cannot be split with "
                         f"val_fraction={val_fraction} (one part would be empty)")
    order = gen.permutation(n) if shuffle else np.arange(n)
    train, val = order[:split_at], order[split_at:]
    return tuple(r[train] for r in rows), tuple(r[val] for r in rows)


def pad_sequences(seqs: Sequence, maxlen: int | None = None, dtype: Any = "int32",
                  padding: str = "pre", truncating: str = "pre", value: Any = 0,
                  return_lengths: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pad (or truncate) sequences to a common length, as Keras `pad_sequences`.

    Args: `seqs` holds N sequences of scalars or of feature vectors of one shape F; `padding`
    and `truncating` are 'pre' or 'post'; `maxlen` None means the longest sequence.
    Shape: -> (N, maxlen) or (N, maxlen, *F); lengths (N,) int64, kept lengths after truncation.
    Returns: the padded array, or `(padded, lengths)` when `return_lengths`.
    """
    for arg, val in (("padding", padding), ("truncating", truncating)):
        if not isinstance(val, str) or val not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {arg} must be 'pre' or 'post', got {val!r}")
    if maxlen is not None:
        maxlen = check_size("pad_sequences", "maxlen", maxlen, 0)
    return_lengths = check_bool("pad_sequences", "return_lengths", return_lengths)
    dtype = _dtype(dtype)
    fill = _fill_value(value, dtype)
    if isinstance(seqs, (str, bytes)) or not hasattr(seqs, "__len__"):
        raise ValueError("pad_sequences: seqs must be a sequence of sequences, got "
                         f"{type(seqs).__name__}")
    lengths, sample_shape = [], None
    for i, s in enumerate(seqs):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__"):
            raise ValueError(f"pad_sequences: sequence {i} is {type(s).__name__} {s!r}, "
                             "not a list of tokens or feature vectors")
        lengths.append(len(s))
        if sample_shape is None and len(s):    # the first non-empty sequence fixes F (Keras)
            sample_shape = _convert(s, i, None).shape[1:]
    sample_shape = sample_shape or ()
    maxlen = max(lengths, default=0) if maxlen is None else maxlen
    out = np.full((len(lengths), maxlen) + tuple(sample_shape), fill, dtype=dtype)
    kept = np.minimum(np.asarray(lengths, dtype=np.int64), maxlen)
    for i, s in enumerate(seqs):
        if kept[i] == 0:
            continue
        trunc = _convert(s[-maxlen:] if truncating == "pre" else s[:maxlen], i, dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: sequence {i} has elements of shape "
                             f"{trunc.shape[1:]}, expected {sample_shape} (from the first "
                             "non-empty sequence)")
        if padding == "post":
            out[i, :len(trunc)] = trunc
        else:
            out[i, maxlen - len(trunc):] = trunc
    return (out, kept) if return_lengths else out


def _dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"pad_sequences: dtype {dtype!r} is not a numpy dtype") from None


def _fill_value(value: Any, dtype: np.dtype) -> Any:
    """`value` checked to be one number that `dtype` holds (exactly, for integer dtypes)."""
    if dtype.kind not in "biufc":              # object or string output: Keras' string padding
        return value
    if (isinstance(value, (bool, np.bool_)) and dtype.kind != "b"
            or isinstance(value, (complex, np.complexfloating)) and dtype.kind != "c"
            or not isinstance(value, (int, float, complex, np.number, np.bool_))):
        raise TypeError(f"pad_sequences: value must be a number for dtype {dtype}, "
                        f"got {value!r} ({type(value).__name__})")
    try:
        with np.errstate(all="ignore"):
            cast = np.array(value).astype(dtype)
        fits = bool(cast == value) if dtype.kind in "biu" else bool(
            np.isfinite(cast) or not np.isfinite(value))
    except (OverflowError, TypeError):
        fits = False
    if not fits:
        raise ValueError(f"pad_sequences: value {value!r} does not fit dtype {dtype}")
    return cast


def _convert(s: Any, i: int, dtype: np.dtype | None) -> np.ndarray:
    """Sequence `i` as an array of `dtype`; a ValueError naming it when its contents are ragged
    or an integer dtype cannot hold them exactly (2.5, NaN, an overflow: Keras would cast)."""
    try:
        with np.errstate(invalid="ignore", over="ignore"):
            raw = np.asarray(s)
            arr = raw if dtype is None else np.asarray(s, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        kind = f"{dtype} array" if dtype is not None else "regular array"
        raise ValueError(f"pad_sequences: sequence {i} is not a {kind} (ragged elements "
                         f"or non-numeric values): {e}") from e
    if (dtype is not None and dtype.kind in "iu" and raw.dtype.kind in "biuf"
            and not np.array_equal(arr, raw)):
        raise ValueError(f"pad_sequences: sequence {i} holds values that dtype {dtype} cannot "
                         "hold exactly (pass a float dtype for real-valued features)")
    return arr


def echo_task(n: int, T: int, rng: RNGLike = None, dim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Echo task: the target at step t is the input at step t-1 (zero at t=0).

    Inputs are uniform in [-1, 1]; a net must remember one step back.
    Shape: X (n, T, dim) float32, Y (n, T, dim) float32 with Y[:, t] = X[:, t-1], Y[:, 0] = 0.
    """
    size = (check_size("echo_task", "n", n, 0), check_size("echo_task", "T", T, 1),
            check_size("echo_task", "dim", dim, 1))
    X = _generator("echo_task", rng).uniform(-1.0, 1.0, size=size).astype(np.float32)
    Y = np.zeros_like(X)
    Y[:, 1:] = X[:, :-1]
    return X, Y


def binary_subtraction_task(n: int, bits: int = 4,
                            rng: RNGLike = None) -> tuple[np.ndarray, np.ndarray]:
    """Binary subtraction a - b of two `bits`-bit numbers with a >= b, least significant bit first.

    (a, b) is a uniformly drawn pair sorted so a >= b; a - b then fits in `bits` bits, so
    T = bits (no extra step). The borrow must be carried from step t to t+1.
    Shape: X (n, bits, 2) float32 with X[:, t] = (bit t of a, bit t of b);
    Y (n, bits, 1) float32 with Y[:, t, 0] = bit t of a - b.
    """
    n = check_size("binary_subtraction_task", "n", n, 0)
    bits = check_size("binary_subtraction_task", "bits", bits, 1, 62)
    gen = _generator("binary_subtraction_task", rng)
    pair = gen.integers(0, 2**bits, size=(2, n), dtype=np.int64)
    a, b = pair.max(axis=0), pair.min(axis=0)
    shifts = np.arange(bits, dtype=np.int64)

    def to_bits(v: np.ndarray) -> np.ndarray:  # (n,) -> (n, bits), LSB first
        return ((v[:, None] >> shifts) & 1).astype(np.float32)
    X = np.stack([to_bits(a), to_bits(b)], axis=-1)
    return X, to_bits(a - b)[..., None]


def spiral_task(n_per_class: int = 100, classes: int = 3, noise: float = 0.2,
                rng: RNGLike = None) -> tuple[np.ndarray, np.ndarray]:
    """The CS231n spiral: `classes` arms, radius 0..1, angle span 4 rad per arm plus noise.

    `noise` is the standard deviation of Gaussian noise added to the angle. Rows are grouped
    by class (class 0 first), as in CS231n; shuffle with `batches` or `train_val_split`.
    Shape: X (N, 2) float32, y (N,) int64 with N = n_per_class * classes.
    """
    n_per_class = check_size("spiral_task", "n_per_class", n_per_class, 0)
    classes = check_size("spiral_task", "classes", classes, 1)
    noise = _real("spiral_task", "noise", noise)
    if noise < 0:
        raise ValueError(f"spiral_task: noise is a standard deviation, must be >= 0, got {noise}")
    gen = _generator("spiral_task", rng)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    y = np.repeat(np.arange(classes, dtype=np.int64), n_per_class)
    base = np.concatenate([np.linspace(j * 4.0, (j + 1) * 4.0, n_per_class)
                           for j in range(classes)])
    theta = base + gen.standard_normal(r.shape) * noise
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1).astype(np.float32)
    return X, y


# the Keras IMDB reader lives in imdb.py, which reads the argument checks above
from tinygrad_rnn.imdb import load_imdb  # noqa: F401
