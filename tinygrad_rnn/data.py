"""Batching, padding, built-in recurrent teaching tasks and the Keras IMDB reader (pure numpy)."""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

RNGLike = np.random.Generator | int | None


def _as_rows(a: Any) -> np.ndarray:
    """View `a` as an array indexable along axis 0; ragged lists become a 1-D object array."""
    try:
        arr = np.asarray(a)
    except ValueError:                         # ragged nested lists: keep each row as one object
        arr = np.empty(len(a), dtype=object)
        for i, row in enumerate(a):
            arr[i] = row
    if arr.ndim == 0:
        raise ValueError(f"expected arrays with a batch axis, got a scalar {a!r}")
    return arr


def _aligned(name: str, arrays: tuple) -> tuple[list[np.ndarray], int]:
    """Convert `arrays` with `_as_rows` and check that they share their first dimension."""
    if not arrays:
        raise ValueError(f"{name}: pass at least one array")
    rows = [_as_rows(a) for a in arrays]
    lengths = [len(r) for r in rows]
    if len(set(lengths)) != 1:
        raise ValueError(f"{name}: arrays differ in first-dimension length: {lengths}")
    return rows, lengths[0]


def batches(*arrays: Any, batch_size: int, shuffle: bool = False,
            rng: RNGLike = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Iterate over aligned mini-batches of `arrays` along axis 0; the last batch may be smaller.

    Args: arrays share their first dimension N; `rng` (Generator or seed) drives `shuffle`.
    Shape: each array (N, ...) -> each batch element (<= batch_size, ...).
    Returns: an iterator of tuples (one entry per array, even for a single array).
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batches: batch_size must be an integer >= 1, got {batch_size!r}")
    rows, n = _aligned("batches", arrays)
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)

    def generate() -> Iterator[tuple[np.ndarray, ...]]:
        for start in range(0, n, int(batch_size)):
            idx = order[start:start + int(batch_size)]
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
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    rows, n = _aligned("train_val_split", arrays)
    split_at = math.floor(n * (1.0 - val_fraction))
    if split_at in (0, n):
        raise ValueError(f"train_val_split: {n} samples cannot be split with "
                         f"val_fraction={val_fraction} (one part would be empty)")
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
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
        if val not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {arg} must be 'pre' or 'post', got {val!r}")
    if not hasattr(seqs, "__len__"):
        raise ValueError("pad_sequences: `seqs` must be a sequence of sequences")
    lengths, sample_shape = [], None
    for i, s in enumerate(seqs):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__"):
            raise ValueError(f"pad_sequences: sequence {i} is {type(s).__name__} {s!r}, "
                             "not a list of tokens or feature vectors")
        lengths.append(len(s))
        if sample_shape is None and len(s):    # the first non-empty sequence fixes F (Keras)
            sample_shape = _convert(s, i, None).shape[1:]
    sample_shape = sample_shape or ()
    maxlen = max(lengths, default=0) if maxlen is None else int(maxlen)
    if maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be >= 0, got {maxlen}")
    out = np.full((len(lengths), maxlen) + tuple(sample_shape), value, dtype=dtype)
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


def _convert(s: Any, i: int, dtype: Any) -> np.ndarray:
    """np.asarray(s, dtype) with an error that names sequence `i` when its contents are ragged."""
    try:
        return np.asarray(s, dtype=dtype)
    except (ValueError, TypeError) as e:
        kind = f"{np.dtype(dtype)} array" if dtype is not None else "regular array"
        raise ValueError(f"pad_sequences: sequence {i} is not a {kind} (ragged elements "
                         f"or non-numeric values): {e}") from e


def echo_task(n: int, T: int, rng: RNGLike = None, dim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Echo task: the target at step t is the input at step t-1 (zero at t=0).

    Inputs are uniform in [-1, 1]; a net must remember one step back.
    Shape: X (n, T, dim) float32, Y (n, T, dim) float32 with Y[:, t] = X[:, t-1], Y[:, 0] = 0.
    """
    X = np.random.default_rng(rng).uniform(-1.0, 1.0, size=(n, T, dim)).astype(np.float32)
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
    if not 1 <= bits <= 62:
        raise ValueError(f"binary_subtraction_task: bits must be in [1, 62], got {bits}")
    pair = np.random.default_rng(rng).integers(0, 2**bits, size=(2, n), dtype=np.int64)
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
    gen = np.random.default_rng(rng)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    y = np.repeat(np.arange(classes, dtype=np.int64), n_per_class)
    base = np.concatenate([np.linspace(j * 4.0, (j + 1) * 4.0, n_per_class)
                           for j in range(classes)]) if classes else np.zeros(0)
    theta = base + gen.standard_normal(r.shape) * noise
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1).astype(np.float32)
    return X, y


def load_imdb(path: str | os.PathLike, num_words: int | None = None, skip_top: int = 0,
              maxlen: int | None = None, seed: int = 113, start_char: int | None = 1,
              oov_char: int | None = 2, index_from: int = 3) -> tuple[tuple, tuple]:
    """Read the Keras `imdb.npz` file, with Keras `imdb.load_data` semantics; never downloads.

    Each split is shuffled with RandomState(seed); start_char is prepended and word indices
    shifted by index_from; words >= num_words or < skip_top become oov_char (dropped if None);
    with maxlen, reviews of length >= maxlen are dropped (Keras keeps len < maxlen).
    Shape: x_* (N,) object arrays of int lists, y_* (N,) labels.
    Returns: `((x_train, y_train), (x_test, y_test))`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_imdb: no file at {path!r}; pass the path of the Keras "
                                "imdb.npz (this function never downloads anything)")
    keys = ("x_train", "y_train", "x_test", "y_test")
    unreadable = (ValueError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile)
    try:
        f = np.load(path, allow_pickle=True)   # the Keras file stores object arrays of lists
    except unreadable as e:
        raise ValueError(f"load_imdb: {path!r} is not a readable npz archive ({e})") from e
    if getattr(f, "files", None) is None:      # a .npy or pickle file: not an archive
        raise ValueError(f"load_imdb: {path!r} is not an npz archive; expected the Keras imdb.npz")
    with f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise ValueError(f"load_imdb: {path!r} lacks the Keras imdb.npz keys {missing} "
                             f"(found {sorted(f.files)})")
        try:
            x_train, y_train, x_test, y_test = (np.asarray(f[k]) for k in keys)
        except unreadable as e:
            raise ValueError(f"load_imdb: {path!r} has an unreadable member ({e})") from e
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if len(x) != len(y):
            raise ValueError(f"load_imdb: {path!r} has {len(x)} reviews but {len(y)} labels")
    state = np.random.RandomState(seed)        # Keras' legacy generator: same order as Keras
    splits = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        idx = np.arange(len(x))
        state.shuffle(idx)
        head = [start_char] if start_char is not None else []
        xs = [head + [int(w) + index_from for w in x[i]] for i in idx]
        ys = y[idx]
        if maxlen:
            keep = [j for j, s in enumerate(xs) if len(s) < maxlen]
            xs, ys = [xs[j] for j in keep], ys[keep]
            if not xs:
                raise ValueError(f"load_imdb: no review is shorter than maxlen={maxlen}; "
                                 "increase maxlen")
        splits.append((xs, ys))
    # num_words=None keeps every word (Keras would turn its single largest index into OOV)
    hi = math.inf if not num_words else num_words
    out = []
    for xs, ys in splits:
        if oov_char is not None:
            xs = [[w if skip_top <= w < hi else oov_char for w in s] for s in xs]
        else:
            xs = [[w for w in s if skip_top <= w < hi] for s in xs]
        arr = np.empty(len(xs), dtype=object)  # always 1-D, even if all reviews share a length
        for j, s in enumerate(xs):
            arr[j] = s
        out.append((arr, ys))
    return out[0], out[1]
