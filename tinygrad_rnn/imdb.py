"""The Keras IMDB reader: `imdb.npz` decoded without unpickling (serialization.read_npz), with
Keras' options (num_words, skip_top, maxlen, seed, start_char, oov_char, index_from)."""

from __future__ import annotations

import math
import os

import numpy as np

from tinygrad_rnn.serialization import read_npz
from tinygrad_rnn.validate import check_size


def load_imdb(path: str | os.PathLike, num_words: int | None = None, skip_top: int = 0,
              maxlen: int | None = None, seed: int = 113, start_char: int | None = 1,
              oov_char: int | None = 2, index_from: int = 3) -> tuple[tuple, tuple]:
    """Read the Keras `imdb.npz` file, with Keras `imdb.load_data` semantics; never downloads.

    Nothing is unpickled: the reviews (pickled lists) are decoded by a reader that builds
    lists of ints and runs no code. Each split is shuffled with RandomState(seed); start_char is
    prepended and word indices shifted by index_from; words >= num_words or < skip_top become
    oov_char (dropped if None); with maxlen, reviews of length >= maxlen are dropped.
    Shape: x_* (N,) object arrays of int lists, y_* (N,) labels.
    """
    f = "load_imdb"
    num_words = None if num_words is None else check_size(f, "num_words", num_words, 1)
    skip_top, index_from = check_size(f, "skip_top", skip_top, 0), check_size(f, "index_from", index_from, 0)
    maxlen = None if maxlen is None else check_size(f, "maxlen", maxlen, 1)
    seed = check_size(f, "seed", seed, 0, 2**32 - 1)
    start_char = None if start_char is None else check_size(f, "start_char", start_char, 0)
    oov_char = None if oov_char is None else check_size(f, "oov_char", oov_char, 0)
    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if isinstance(path, str) and not os.path.exists(path):
        raise FileNotFoundError(f"load_imdb: no file at {path!r}; pass the path of the Keras "
                                "imdb.npz (this function never downloads anything)")
    arrays = read_npz(path, f, objects=("x_train", "x_test"))
    keys = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"load_imdb: {path!r} lacks the Keras imdb.npz keys {missing} "
                         f"(found {sorted(arrays)})")
    state = np.random.RandomState(seed)        # Keras' legacy generator: same order as Keras
    splits = []
    for split in ("train", "test"):
        x, y = _reviews(arrays[f"x_{split}"], f"x_{split}"), arrays[f"y_{split}"]
        if y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"load_imdb: {path!r} has {len(x)} reviews in x_{split} but "
                             f"y_{split} has shape {y.shape}")
        idx = np.arange(len(x))
        state.shuffle(idx)
        head = [start_char] if start_char is not None else []
        xs = [head + [w + index_from for w in x[i]] for i in idx]
        ys = y[idx]
        if maxlen:
            keep = [j for j, s in enumerate(xs) if len(s) < maxlen]
            xs, ys = [xs[j] for j in keep], ys[keep]
            if not xs:
                raise ValueError(f"load_imdb: no review is shorter than maxlen={maxlen}; "
                                 "increase maxlen")
        splits.append((xs, ys))
    # num_words=None keeps every word (Keras would turn its single largest index into OOV)
    hi = math.inf if num_words is None else num_words
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


def _reviews(x: np.ndarray, key: str) -> list[list[int]]:
    """Member `key` as a list of reviews, each a list of word indices >= 0 (Python ints)."""
    if x.dtype == object and x.ndim == 1:
        rows = list(x)
    elif x.dtype.kind in "iu" and x.ndim == 2:
        rows = x.tolist()
    else:
        raise ValueError(f"load_imdb: {key} must be a 1-D array of int lists or a 2-D int array, "
                         f"got {x.ndim}-D {x.dtype}")
    for i, r in enumerate(rows):
        if type(r) not in (list, tuple) or not all(type(w) is int and w >= 0 for w in r):
            raise ValueError(f"load_imdb: {key} review {i} is not a list of word indices >= 0")
    return rows
