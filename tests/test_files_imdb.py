"""load_imdb reads the Keras imdb.npz without unpickling: only lists of ints come out, no code runs.

The Keras file keeps its reviews as pickled object arrays. These tests write such files with
every pickle protocol (and a Python 2 style one by hand), then crafted ones that would run
code or build other objects if they were unpickled: each is refused by name, and the marker
file that running the payload would create never appears.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

from tinygrad_rnn import data

TRAIN = [[0, 1, 2, 5], [3, 4, 6], [7], [0, 1, 2, 5]]     # a repeated review: memo sharing
TEST = [[1, 1], [8, 0, 2**40]]                           # a word beyond 32 bits


def object_array(rows):
    arr = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        arr[i] = r
    return arr


def npy_member(header_descr, shape, body):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": header_descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


def numeric(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def write_imdb(path, x_train, x_test, y_train=None, y_test=None, extra=None):
    """A Keras-layout imdb.npz; x_* are raw pickle bytes or .npy bytes of the members."""
    y_train = np.arange(len(TRAIN)) if y_train is None else y_train
    y_test = np.arange(len(TEST)) + 100 if y_test is None else y_test
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", x_train)
        zf.writestr("y_train.npy", numeric(y_train))
        zf.writestr("x_test.npy", x_test)
        zf.writestr("y_test.npy", numeric(y_test))
        for name, body in (extra or {}).items():
            zf.writestr(name, body)
    return path


def pickled(rows_or_obj, protocol=3, n=None):
    obj = object_array(rows_or_obj) if isinstance(rows_or_obj, list) else rows_or_obj
    n = len(obj) if n is None else n
    return npy_member("|O", (n,), pickle.dumps(obj, protocol=protocol))


def expected(rows):
    return sorted([1] + [w + 3 for w in r] for r in rows)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_reads_the_same_reviews(tmp_path, protocol):
    path = write_imdb(tmp_path / "imdb.npz", pickled(TRAIN, protocol), pickled(TEST, protocol))
    (xtr, ytr), (xte, yte) = data.load_imdb(path)
    assert sorted(xtr.tolist()) == expected(TRAIN) and sorted(xte.tolist()) == expected(TEST)
    assert sorted(ytr.tolist()) == [0, 1, 2, 3] and sorted(yte.tolist()) == [100, 101]
    assert all(type(w) is int for r in xtr for w in r)


def test_numpy_savez_with_pickle_is_read_the_same(tmp_path):
    np.savez(tmp_path / "imdb.npz", x_train=object_array(TRAIN), y_train=np.arange(4),
             x_test=object_array(TEST), y_test=np.arange(2) + 100)
    (xtr, _), (xte, _) = data.load_imdb(tmp_path / "imdb.npz")
    assert sorted(xtr.tolist()) == expected(TRAIN) and sorted(xte.tolist()) == expected(TEST)


# A pickle as Python 2's numpy wrote it (protocol 2, byte strings, numpy.core): the Keras file's era
PY2 = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02"
       b"U\x01bq\x03\x87q\x04Rq\x05(K\x01K\x02\x85q\x06cnumpy\ndtype\nq\x07U\x02O8q\x08K\x00K\x01"
       b"\x87q\tRq\n(K\x03U\x01|q\x0bNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x0cb\x89]q\r"
       b"(]q\x0e(K\x05M,\x01e]q\x0f(K\x07eetq\x10b.")


def test_a_python2_era_pickle_reads(tmp_path):
    x = npy_member("|O", (2,), PY2)
    path = write_imdb(tmp_path / "imdb.npz", x, x, np.arange(2), np.arange(2))
    (xtr, _), _ = data.load_imdb(path, start_char=None, index_from=0)
    assert sorted(xtr.tolist()) == [[5, 300], [7]]


def test_equal_length_reviews_as_a_2d_int_array_read(tmp_path):
    x = numeric(np.array([[1, 2], [3, 4], [5, 6], [7, 8]]))
    path = write_imdb(tmp_path / "imdb.npz", x, numeric(np.array([[1, 1], [2, 2]])))
    (xtr, ytr), _ = data.load_imdb(path, start_char=None, index_from=0)
    assert xtr.dtype == object and xtr.shape == (4,)
    assert dict(zip(ytr.tolist(), xtr.tolist()))[2] == [5, 6]


# ---------------------------------------------------------------- crafted files run nothing

class Touch:
    """Unpickling this calls open(path, 'w'): a marker file appears if any code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class Ctor:
    """Pickled with NEWOBJ (protocol 2+) and a BUILD of a __dict__."""

    def __init__(self):
        self.value = 1


def payloads(marker):
    touch = Touch(marker)
    return {
        "reduce at top": (pickle.dumps(touch, protocol=2), "io.open"),
        "reduce in a review": (pickle.dumps(object_array([[1, 2], touch]), protocol=2),
                               "io.open"),
        "reduce in a word": (pickle.dumps(object_array([[1, touch]]), protocol=4),
                             "io.open"),
        "protocol 0 reduce": (pickle.dumps(object_array([[1], touch]), protocol=0),
                              "io.open"),
        "eval global": (b"cbuiltins\neval\n(Vopen(" + repr(str(marker)).encode()
                        + b", 'w')\ntR.", "builtins.eval"),
        "os.system": (b"cos\nsystem\n(Vtouch " + str(marker).encode() + b"\ntR.", "os.system"),
        "class instance": (pickle.dumps(object_array([[1], Ctor()]), protocol=2),
                           "Ctor|copyreg|NEWOBJ"),
        "dict review": (pickle.dumps(object_array([{"a": 1}]), protocol=3), "EMPTY_DICT"),
        "set review": (pickle.dumps(object_array([{1, 2}]), protocol=4), "set|EMPTY_SET"),
        "numpy array review": (pickle.dumps(object_array([np.arange(3)]), protocol=3),
                               "not a pickled object array|numpy.*not allowed|frombuffer"),
        "bare list": (pickle.dumps([[1, 2], [3]], protocol=3), "not a pickled object array"),
        "not a pickle": (b"\x00\x01\x02garbage", "cannot be read safely"),
        "truncated": (pickle.dumps(object_array(TRAIN), protocol=3)[:40], "cannot be read"),
        "empty": (b"", "cannot be read safely"),
        "inst opcode": (b"(ios\nsystem\nVtouch " + str(marker).encode() + b"\nb.",
                        "INST|os.system"),
        "persistent id": (b"\x80\x02X\x01\x00\x00\x00aQ.", "BINPERSID"),
        "extension code": (b"\x80\x02\x82\x01.", "EXT1"),
    }


@pytest.mark.parametrize("case", sorted(payloads("m")))
def test_a_crafted_x_train_is_refused_by_name_and_runs_no_code(tmp_path, case):
    marker = tmp_path / "pwned"
    body, match = payloads(marker)[case]
    path = write_imdb(tmp_path / "imdb.npz", npy_member("|O", (len(TRAIN),), body),
                      pickled(TEST))
    with pytest.raises(ValueError, match=r"load_imdb: .*imdb\.npz member 'x_train'.*"
                                         f"({match})"):
        data.load_imdb(path)
    assert not marker.exists()


def test_a_pickled_member_other_than_the_reviews_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    extra = {"meta.npy": pickled([[1], Touch(marker)], protocol=2)}
    path = write_imdb(tmp_path / "imdb.npz", pickled(TRAIN), pickled(TEST), extra=extra)
    with pytest.raises(ValueError, match=r"member 'meta' holds Python objects"):
        data.load_imdb(path)
    path = tmp_path / "imdb2.npz"
    with zipfile.ZipFile(path, "w") as zf:    # pickled labels: only x_train and x_test may be
        for name, rows in (("x_train", TRAIN), ("y_train", [[1], [2], [3], [4]]),
                           ("x_test", TEST), ("y_test", [[1], [2]])):
            zf.writestr(f"{name}.npy", pickled(rows))
    with pytest.raises(ValueError, match=r"member 'y_train' holds Python objects"):
        data.load_imdb(path)
    assert not marker.exists()


@pytest.mark.parametrize("rows, match", [
    ([[1, 2], ["the", "cat"], [3], [4]], "x_train review 1 is not a list of word indices"),
    ([[1, 2], [1.5], [3], [4]], "x_train review 1"),
    ([[1, 2], [3], [-4], [4]], "x_train review 2"),
    ([[1, 2], [3], [4], [True]], "x_train review 3"),
    ([[1, 2], [3], [4], [[5]]], "x_train review 3"),
    ([[1, 2], None, [3], [4]], "x_train review 1"),
    ([[1, 2], 7, [3], [4]], "x_train review 1"),
])
def test_reviews_that_are_not_lists_of_word_indices(tmp_path, rows, match):
    path = write_imdb(tmp_path / "imdb.npz", pickled(rows), pickled(TEST))
    with pytest.raises(ValueError, match=f"load_imdb: {match}"):
        data.load_imdb(path)


def test_the_header_shape_must_match_the_pickled_array(tmp_path):
    path = write_imdb(tmp_path / "imdb.npz", pickled(TRAIN, n=9), pickled(TEST))
    with pytest.raises(ValueError, match=r"member 'x_train' is not a pickled object array "
                                         r"of shape \(9,\)"):
        data.load_imdb(path)


@pytest.mark.parametrize("x, y, match", [
    (numeric(np.zeros(4)), None, "x_train must be a 1-D array of int lists or a 2-D int array"),
    (numeric(np.zeros((4, 2, 2), int)), None, "x_train must be"),
    (pickled(TRAIN), np.arange(3), r"4 reviews in x_train but y_train has shape \(3,\)"),
    (pickled(TRAIN), np.zeros((4, 2)), r"y_train has shape \(4, 2\)"),
])
def test_members_of_the_wrong_shape(tmp_path, x, y, match):
    path = write_imdb(tmp_path / "imdb.npz", x, pickled(TEST), y_train=y)
    with pytest.raises(ValueError, match=f"load_imdb: .*{match}"):
        data.load_imdb(path)


def test_a_pickle_file_named_imdb_npz_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "imdb.npz"
    path.write_bytes(pickle.dumps(Touch(marker)))
    with pytest.raises(ValueError, match=r"load_imdb: .*imdb\.npz is not a readable \.npz"):
        data.load_imdb(path)
    assert not marker.exists()


def test_a_truncated_imdb_file(tmp_path):
    path = write_imdb(tmp_path / "imdb.npz", pickled(TRAIN), pickled(TEST))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"load_imdb: .*imdb\.npz is not a readable \.npz"):
        data.load_imdb(path)
