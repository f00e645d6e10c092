"""Adversarial arguments to every public data helper: each a clear error naming function and argument.

Types that are wrong are TypeErrors (a float, bool or str where an integer size goes, as
Python's range does); values that are wrong are ValueErrors. A failed call draws nothing from
the caller's Generator and leaves the caller's data as it was.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from tinygrad_rnn import data

X, Y = np.arange(6), np.arange(6) * 2
SEQS = [[1, 2, 3], [4], [5, 6]]


def gen_():
    return (i for i in range(3))


CASES = [
    # ---- batches
    (data.batches, (X,), {"batch_size": 0}, ValueError, "batches: batch_size must be >= 1, got 0"),
    (data.batches, (X,), {"batch_size": -1}, ValueError, "batches: batch_size must be >= 1"),
    (data.batches, (X,), {"batch_size": 2.5}, TypeError, "batches: batch_size must be an integer"),
    (data.batches, (X,), {"batch_size": 2.0}, TypeError, "batches: batch_size must be an integer"),
    (data.batches, (X,), {"batch_size": True}, TypeError, "batches: batch_size .*True"),
    (data.batches, (X,), {"batch_size": "2"}, TypeError, "batches: batch_size .*str"),
    (data.batches, (X,), {"batch_size": None}, TypeError, "batches: batch_size .*NoneType"),
    (data.batches, (X,), {"batch_size": math.nan}, TypeError, "batches: batch_size"),
    (data.batches, (X,), {"batch_size": np.float64(2)}, TypeError, "batches: batch_size"),
    (data.batches, (X,), {"batch_size": [2]}, TypeError, "batches: batch_size"),
    (data.batches, (X,), {"batch_size": 2, "shuffle": "yes"}, TypeError,
     "batches: shuffle must be a bool"),
    (data.batches, (X,), {"batch_size": 2, "shuffle": 1}, TypeError, "batches: shuffle"),
    (data.batches, (X,), {"batch_size": 2, "shuffle": None}, TypeError, "batches: shuffle"),
    (data.batches, (X,), {"batch_size": 2, "rng": 1.5}, TypeError,
     "batches: rng must be a numpy Generator, an int seed or None, got float"),
    (data.batches, (X,), {"batch_size": 2, "rng": -1}, ValueError, "batches: rng seed must be >= 0"),
    (data.batches, (X,), {"batch_size": 2, "rng": "seed"}, TypeError, "batches: rng .*got str"),
    (data.batches, (X,), {"batch_size": 2, "rng": np.random.RandomState(0)}, TypeError,
     "batches: rng .*RandomState"),
    (data.batches, (X,), {"batch_size": 2, "rng": True}, TypeError, "batches: rng"),
    (data.batches, (), {"batch_size": 2}, TypeError, "batches: expected at least 1 array, got 0"),
    (data.batches, (None,), {"batch_size": 2}, TypeError, "batches: array 0 is a NoneType"),
    (data.batches, ("abcdef",), {"batch_size": 2}, TypeError, "batches: array 0 is a str"),
    (data.batches, (5,), {"batch_size": 2}, TypeError, "batches: array 0 is a int"),
    (data.batches, (X, {"a": 1}), {"batch_size": 2}, TypeError, "batches: array 1 is a dict"),
    (data.batches, ({1, 2},), {"batch_size": 2}, TypeError, "batches: array 0 is a set"),
    (data.batches, (np.float64(3),), {"batch_size": 2}, TypeError, "batches: array 0 is a float64"),
    (data.batches, (np.array(3.0),), {"batch_size": 2}, ValueError,
     r"batches: array 0 is a scalar, expected a batch axis"),
    (data.batches, (gen_(),), {"batch_size": 2}, TypeError, "batches: array 0 is a generator"),
    (data.batches, (X, Y[:5]), {"batch_size": 2}, ValueError,
     r"batches: arrays differ in first-dimension length: \[6, 5\]"),
    (data.batches, (X, X, Y[:1]), {"batch_size": 2}, ValueError, r"\[6, 6, 1\]"),
    # ---- train_val_split
    (data.train_val_split, (X,), {"val_fraction": 0}, ValueError,
     r"train_val_split: val_fraction must be in \(0, 1\), got 0"),
    (data.train_val_split, (X,), {"val_fraction": 1}, ValueError, "train_val_split: val_fraction"),
    (data.train_val_split, (X,), {"val_fraction": -0.1}, ValueError, "val_fraction .*-0.1"),
    (data.train_val_split, (X,), {"val_fraction": 1.5}, ValueError, "val_fraction .*1.5"),
    (data.train_val_split, (X,), {"val_fraction": math.nan}, ValueError,
     "train_val_split: val_fraction must be finite, got nan"),
    (data.train_val_split, (X,), {"val_fraction": math.inf}, ValueError, "val_fraction .*finite"),
    (data.train_val_split, (X,), {"val_fraction": "0.2"}, TypeError,
     "train_val_split: val_fraction must be a real number"),
    (data.train_val_split, (X,), {"val_fraction": None}, TypeError, "val_fraction .*NoneType"),
    (data.train_val_split, (X,), {"val_fraction": True}, TypeError, "val_fraction .*bool"),
    (data.train_val_split, (X,), {"shuffle": "no"}, TypeError, "train_val_split: shuffle"),
    (data.train_val_split, (X,), {"rng": -3}, ValueError, "train_val_split: rng seed"),
    (data.train_val_split, (X,), {"rng": 2.5}, TypeError, "train_val_split: rng"),
    (data.train_val_split, (), {}, TypeError, "train_val_split: expected at least 1 array"),
    (data.train_val_split, (None,), {}, TypeError, "train_val_split: array 0 is a NoneType"),
    (data.train_val_split, (X, Y[:4]), {}, ValueError, r"train_val_split: .*\[6, 4\]"),
    (data.train_val_split, (X[:1],), {}, ValueError,
     "train_val_split: 1 samples cannot be split .*empty"),
    (data.train_val_split, (X[:0],), {}, ValueError, "train_val_split: 0 samples cannot be split"),
    # ---- pad_sequences: the sequences
    (data.pad_sequences, (None,), {}, ValueError, "pad_sequences: seqs must be a sequence"),
    (data.pad_sequences, ("abc",), {}, ValueError, "pad_sequences: seqs .*str"),
    (data.pad_sequences, (5,), {}, ValueError, "pad_sequences: seqs .*int"),
    (data.pad_sequences, (gen_(),), {}, ValueError, "pad_sequences: seqs .*generator"),
    (data.pad_sequences, ([[1], "ab"],), {}, ValueError, "pad_sequences: sequence 1 is str"),
    (data.pad_sequences, ([[1], 5],), {}, ValueError, "pad_sequences: sequence 1 is int"),
    (data.pad_sequences, ([[1], None],), {}, ValueError, "pad_sequences: sequence 1 is NoneType"),
    (data.pad_sequences, ([[1], [1.5]],), {}, ValueError,
     "pad_sequences: sequence 1 holds values that dtype int32 cannot hold exactly"),
    (data.pad_sequences, ([[1], [math.nan]],), {}, ValueError, "pad_sequences: sequence 1"),
    (data.pad_sequences, ([[1], [math.inf]],), {}, ValueError, "pad_sequences: sequence 1"),
    (data.pad_sequences, ([[1], [2**40]],), {}, ValueError, "pad_sequences: sequence 1"),
    (data.pad_sequences, ([[1], np.array([2**40])],), {}, ValueError, "pad_sequences: sequence 1"),
    (data.pad_sequences, ([[1], [-1]],), {"dtype": "uint8"}, ValueError,
     "pad_sequences: sequence 1 .*uint8"),
    (data.pad_sequences, ([[1], ["x"]],), {}, ValueError, "pad_sequences: sequence 1"),
    (data.pad_sequences, ([[[1, 2]], [[1, 2, 3]]],), {}, ValueError,
     r"pad_sequences: sequence 1 has elements of shape \(3,\), expected \(2,\)"),
    (data.pad_sequences, ([[1], [[1, 2], [3]]],), {}, ValueError, "pad_sequences: sequence 1"),
    # ---- pad_sequences: the options
    (data.pad_sequences, (SEQS,), {"maxlen": -1}, ValueError,
     "pad_sequences: maxlen must be >= 0, got -1"),
    (data.pad_sequences, (SEQS,), {"maxlen": 2.5}, TypeError,
     "pad_sequences: maxlen must be an integer"),
    (data.pad_sequences, (SEQS,), {"maxlen": "3"}, TypeError, "pad_sequences: maxlen"),
    (data.pad_sequences, (SEQS,), {"maxlen": True}, TypeError, "pad_sequences: maxlen"),
    (data.pad_sequences, (SEQS,), {"maxlen": math.nan}, TypeError, "pad_sequences: maxlen"),
    (data.pad_sequences, (SEQS,), {"padding": "middle"}, ValueError,
     "pad_sequences: padding must be 'pre' or 'post', got 'middle'"),
    (data.pad_sequences, (SEQS,), {"padding": None}, ValueError, "pad_sequences: padding"),
    (data.pad_sequences, (SEQS,), {"padding": "PRE"}, ValueError, "pad_sequences: padding"),
    (data.pad_sequences, (SEQS,), {"truncating": "both"}, ValueError, "pad_sequences: truncating"),
    (data.pad_sequences, (SEQS,), {"truncating": 0}, ValueError, "pad_sequences: truncating"),
    (data.pad_sequences, (SEQS,), {"dtype": "notatype"}, TypeError,
     "pad_sequences: dtype 'notatype' is not a numpy dtype"),
    (data.pad_sequences, (SEQS,), {"dtype": 5}, TypeError, "pad_sequences: dtype 5"),
    (data.pad_sequences, (SEQS,), {"value": "x"}, TypeError,
     "pad_sequences: value must be a number for dtype int32, got 'x'"),
    (data.pad_sequences, (SEQS,), {"value": None}, TypeError, "pad_sequences: value"),
    (data.pad_sequences, (SEQS,), {"value": [1, 2]}, TypeError, "pad_sequences: value"),
    (data.pad_sequences, (SEQS,), {"value": True}, TypeError, "pad_sequences: value"),
    (data.pad_sequences, (SEQS,), {"value": 1 + 2j, "dtype": "float32"}, TypeError,
     "pad_sequences: value"),
    (data.pad_sequences, (SEQS,), {"value": 2.5}, ValueError,
     "pad_sequences: value 2.5 does not fit dtype int32"),
    (data.pad_sequences, (SEQS,), {"value": math.nan}, ValueError, "pad_sequences: value nan"),
    (data.pad_sequences, (SEQS,), {"value": 2**40}, ValueError, "pad_sequences: value"),
    (data.pad_sequences, (SEQS,), {"value": -1, "dtype": "uint8"}, ValueError,
     "pad_sequences: value -1 does not fit dtype uint8"),
    (data.pad_sequences, (SEQS,), {"value": 300, "dtype": "uint8"}, ValueError,
     "pad_sequences: value 300"),
    (data.pad_sequences, (SEQS,), {"value": 1e300, "dtype": "float32"}, ValueError,
     "pad_sequences: value 1e[+]?300 does not fit dtype float32"),
    (data.pad_sequences, (SEQS,), {"return_lengths": "yes"}, TypeError,
     "pad_sequences: return_lengths must be a bool"),
    (data.pad_sequences, (SEQS,), {"return_lengths": 1}, TypeError, "pad_sequences: return_lengths"),
    # ---- echo_task
    (data.echo_task, (-1, 5), {}, ValueError, "echo_task: n must be >= 0, got -1"),
    (data.echo_task, (2.5, 5), {}, TypeError, "echo_task: n must be an integer"),
    (data.echo_task, ("3", 5), {}, TypeError, "echo_task: n"),
    (data.echo_task, (3, 0), {}, ValueError, "echo_task: T must be >= 1, got 0"),
    (data.echo_task, (3, 1.5), {}, TypeError, "echo_task: T must be an integer"),
    (data.echo_task, (3, 5), {"dim": 0}, ValueError, "echo_task: dim must be >= 1"),
    (data.echo_task, (3, 5), {"dim": None}, TypeError, "echo_task: dim"),
    (data.echo_task, (3, 5), {"rng": -1}, ValueError, "echo_task: rng seed"),
    (data.echo_task, (3, 5), {"rng": "a"}, TypeError, "echo_task: rng"),
    # ---- binary_subtraction_task
    (data.binary_subtraction_task, (-5,), {}, ValueError, "binary_subtraction_task: n must be >= 0"),
    (data.binary_subtraction_task, (None,), {}, TypeError, "binary_subtraction_task: n"),
    (data.binary_subtraction_task, (4,), {"bits": 0}, ValueError,
     r"binary_subtraction_task: bits must be in \[1, 62\], got 0"),
    (data.binary_subtraction_task, (4,), {"bits": 63}, ValueError, "bits must be in"),
    (data.binary_subtraction_task, (4,), {"bits": 4.0}, TypeError,
     "binary_subtraction_task: bits must be an integer"),
    (data.binary_subtraction_task, (4,), {"bits": True}, TypeError, "binary_subtraction_task: bits"),
    (data.binary_subtraction_task, (4,), {"rng": 3.3}, TypeError, "binary_subtraction_task: rng"),
    # ---- spiral_task
    (data.spiral_task, (-1,), {}, ValueError, "spiral_task: n_per_class must be >= 0"),
    (data.spiral_task, (1.5,), {}, TypeError, "spiral_task: n_per_class must be an integer"),
    (data.spiral_task, (10,), {"classes": 0}, ValueError, "spiral_task: classes must be >= 1"),
    (data.spiral_task, (10,), {"classes": -2}, ValueError, "spiral_task: classes"),
    (data.spiral_task, (10,), {"classes": 2.0}, TypeError, "spiral_task: classes"),
    (data.spiral_task, (10,), {"noise": -0.1}, ValueError,
     "spiral_task: noise is a standard deviation, must be >= 0"),
    (data.spiral_task, (10,), {"noise": math.nan}, ValueError, "spiral_task: noise must be finite"),
    (data.spiral_task, (10,), {"noise": math.inf}, ValueError, "spiral_task: noise"),
    (data.spiral_task, (10,), {"noise": "0.2"}, TypeError, "spiral_task: noise must be a real"),
    (data.spiral_task, (10,), {"noise": None}, TypeError, "spiral_task: noise"),
    (data.spiral_task, (10,), {"noise": np.complex128(0.2)}, TypeError, "spiral_task: noise"),
    (data.train_val_split, (X,), {"val_fraction": 0.2j}, TypeError, "val_fraction .*complex"),
    (data.spiral_task, (10,), {"rng": np.random.RandomState(1)}, TypeError, "spiral_task: rng"),
]


@pytest.mark.parametrize("fn, args, kwargs, exc, match", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_bad_arguments_are_named(fn, args, kwargs, exc, match):
    before = repr((args, kwargs))
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    assert repr((args, kwargs)) == before      # the caller's data is untouched


@pytest.mark.parametrize("fn, args, kwargs", [
    (data.batches, (X, Y[:3]), {"batch_size": 2, "shuffle": True}),
    (data.batches, (X,), {"batch_size": 0, "shuffle": True}),
    (data.train_val_split, (X,), {"val_fraction": 2.0}),
    (data.train_val_split, (X[:1],), {}),
    (data.echo_task, (3, 0), {}),
    (data.binary_subtraction_task, (3,), {"bits": 0}),
    (data.spiral_task, (3,), {"noise": -1.0}),
])
def test_a_failed_call_draws_nothing_from_the_generator(fn, args, kwargs):
    gen = np.random.default_rng(7)
    state = copy.deepcopy(gen.bit_generator.state)
    with pytest.raises((TypeError, ValueError), match=fn.__name__):
        fn(*args, rng=gen, **kwargs)
    assert gen.bit_generator.state == state


# ---------------------------------------------------------------- load_imdb's arguments

@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    path = tmp_path_factory.mktemp("imdb") / "imdb.npz"
    x = np.empty(2, dtype=object)
    x[0], x[1] = [1, 2, 3], [4]
    np.savez(path, x_train=x, y_train=np.arange(2), x_test=x, y_test=np.arange(2))
    return path


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"num_words": 0}, ValueError, "load_imdb: num_words must be >= 1, got 0"),
    ({"num_words": -5}, ValueError, "load_imdb: num_words"),
    ({"num_words": 100.5}, TypeError, "load_imdb: num_words must be an integer"),
    ({"skip_top": -1}, ValueError, "load_imdb: skip_top must be >= 0"),
    ({"skip_top": 1.5}, TypeError, "load_imdb: skip_top"),
    ({"maxlen": 0}, ValueError, "load_imdb: maxlen must be >= 1, got 0"),
    ({"maxlen": -3}, ValueError, "load_imdb: maxlen"),
    ({"maxlen": 2.5}, TypeError, "load_imdb: maxlen must be an integer"),
    ({"seed": -1}, ValueError, r"load_imdb: seed must be in \[0, 4294967295\]"),
    ({"seed": 2**32}, ValueError, "load_imdb: seed"),
    ({"seed": 1.5}, TypeError, "load_imdb: seed must be an integer"),
    ({"start_char": -1}, ValueError, "load_imdb: start_char must be >= 0"),
    ({"start_char": "1"}, TypeError, "load_imdb: start_char"),
    ({"oov_char": -2}, ValueError, "load_imdb: oov_char"),
    ({"oov_char": 2.0}, TypeError, "load_imdb: oov_char"),
    ({"index_from": -1}, ValueError, "load_imdb: index_from must be >= 0"),
    ({"index_from": None}, TypeError, "load_imdb: index_from"),
])
def test_load_imdb_bad_arguments(imdb, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        data.load_imdb(imdb, **kwargs)


@pytest.mark.parametrize("path, exc, match", [
    (None, TypeError, "load_imdb: path must be a str or os.PathLike, got NoneType"),
    (3, TypeError, "load_imdb: path must be a str or os.PathLike, got int"),
    ("", FileNotFoundError, "load_imdb: no file at ''"),
])
def test_load_imdb_bad_paths(path, exc, match):
    with pytest.raises(exc, match=match):
        data.load_imdb(path)


def test_load_imdb_on_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="load_imdb: .* is a directory"):
        data.load_imdb(tmp_path)


# ---------------------------------------------------------------- what is still accepted

def test_numpy_integers_and_generators_are_accepted():
    got = list(data.batches(X, batch_size=np.int64(4), rng=np.int32(3), shuffle=np.True_))
    assert [len(b[0]) for b in got] == [4, 2]
    assert data.echo_task(np.int64(0), 3)[0].shape == (0, 3, 1)
    X1, _ = data.spiral_task(2, classes=np.int16(2), noise=np.float32(0.0),
                             rng=np.random.PCG64(0))
    assert X1.shape == (4, 2)
    data.train_val_split(X, rng=np.random.SeedSequence(1))


def test_pad_sequences_values_that_fit_exactly_are_accepted():
    out = data.pad_sequences([[1.0, 2.0], [3]], value=np.int64(-1))   # 1.0 is an exact int
    assert out.tolist() == [[1, 2], [-1, 3]] and out.dtype == np.int32
    out = data.pad_sequences([[0.5], []], dtype="float32", value=math.nan)
    assert out[0, 0] == 0.5 and math.isnan(out[1, 0])
    out = data.pad_sequences([["a", "bc"], ["d"]], dtype=object, value="<pad>")
    assert out.tolist() == [["a", "bc"], ["<pad>", "d"]]
