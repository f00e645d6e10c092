"""tinygrad_rnn.data: batching, splitting, Keras pad_sequences, teaching tasks, the imdb reader."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_rnn import data

# ---------------------------------------------------------------- batches


def test_batches_in_order_with_smaller_last_batch():
    x, y = np.arange(10).reshape(5, 2), np.arange(5) * 10
    got = list(data.batches(x, y, batch_size=2))
    assert [len(b[0]) for b in got] == [2, 2, 1]
    np.testing.assert_array_equal(got[0][0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(got[2][1], [40])
    assert all(isinstance(b, tuple) and len(b) == 2 for b in got)


def test_batches_single_array_still_yields_tuples():
    got = list(data.batches([1, 2, 3], batch_size=5))
    assert len(got) == 1 and isinstance(got[0], tuple)
    np.testing.assert_array_equal(got[0][0], [1, 2, 3])


@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_batches_shuffle_covers_every_row_once_and_stays_aligned(n, batch_size, seed):
    x = np.arange(n)
    y = np.arange(n) * 3 + 1                   # y is a function of x: alignment is checkable
    got = list(data.batches(x, y, batch_size=batch_size, shuffle=True, rng=seed))
    assert len(got) == -(-n // batch_size)
    assert all(len(bx) <= batch_size for bx, _ in got)
    seen = np.concatenate([bx for bx, _ in got]) if got else np.zeros(0, int)
    assert sorted(seen.tolist()) == list(range(n))
    for bx, by in got:
        np.testing.assert_array_equal(by, bx * 3 + 1)


def test_batches_shuffle_is_seeded():
    a = [b[0].tolist() for b in data.batches(np.arange(20), batch_size=4, shuffle=True, rng=7)]
    b = [b[0].tolist() for b in data.batches(np.arange(20), batch_size=4, shuffle=True,
                                             rng=np.random.default_rng(7))]
    assert a == b
    assert [i for batch in a for i in batch] != list(range(20))


def test_batches_errors_are_raised_at_call_time():
    with pytest.raises(ValueError, match=r"\[3, 4\]"):
        data.batches(np.zeros(3), np.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(np.zeros(3), batch_size=0)
    with pytest.raises(TypeError, match="batches: expected at least 1 array"):
        data.batches(batch_size=2)


# ---------------------------------------------------------------- train_val_split


def test_train_val_split_without_shuffle_takes_the_last_rows_as_keras():
    (xtr, _), (xva, yva) = data.train_val_split(np.arange(10), np.arange(10) * 2,
                                                val_fraction=0.3, shuffle=False)
    np.testing.assert_array_equal(xtr, np.arange(7))
    np.testing.assert_array_equal(xva, [7, 8, 9])
    np.testing.assert_array_equal(yva, [14, 16, 18])


def test_train_val_split_shuffled_partitions_and_aligns():
    x = np.arange(50)
    (xtr, ytr), (xva, yva) = data.train_val_split(x, -x, rng=0)
    assert len(xtr) == 40 and len(xva) == 10
    assert sorted(np.concatenate([xtr, xva]).tolist()) == list(range(50))
    np.testing.assert_array_equal(ytr, -xtr)
    np.testing.assert_array_equal(yva, -xva)
    assert xtr.tolist() != list(range(40))


def test_train_val_split_keeps_ragged_rows():
    seqs = [[1], [2, 3], [4, 5, 6], [7], [8, 9]]
    (tr,), (va,) = data.train_val_split(seqs, val_fraction=0.4, shuffle=False)
    assert tr.tolist() == [[1], [2, 3], [4, 5, 6]] and va.tolist() == [[7], [8, 9]]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_train_val_split_rejects_fraction_outside_open_interval(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split(np.arange(10), val_fraction=fraction)


def test_train_val_split_errors():
    with pytest.raises(ValueError, match=r"\[5, 6\]"):
        data.train_val_split(np.arange(5), np.arange(6))
    with pytest.raises(ValueError, match="empty"):
        data.train_val_split(np.arange(2), val_fraction=0.6)   # 0 train rows


# ---------------------------------------------------------------- pad_sequences

SEQS = [[1, 2, 3, 4], [5, 6], [7]]


@pytest.mark.parametrize("padding, truncating, expected", [
    ("pre", "pre", [[2, 3, 4], [0, 5, 6], [0, 0, 7]]),
    ("pre", "post", [[1, 2, 3], [0, 5, 6], [0, 0, 7]]),
    ("post", "pre", [[2, 3, 4], [5, 6, 0], [7, 0, 0]]),
    ("post", "post", [[1, 2, 3], [5, 6, 0], [7, 0, 0]]),
])
def test_pad_sequences_padding_by_truncating(padding, truncating, expected):
    out = data.pad_sequences(SEQS, maxlen=3, padding=padding, truncating=truncating)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_pad_sequences_defaults_pad_to_longest_in_front():
    np.testing.assert_array_equal(data.pad_sequences(SEQS),
                                  [[1, 2, 3, 4], [0, 0, 5, 6], [0, 0, 0, 7]])


def test_pad_sequences_value_dtype_and_lengths():
    out, lengths = data.pad_sequences([[1, 2, 3], [], [4]], maxlen=2, padding="post",
                                      value=-1, dtype="float32", return_lengths=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[2, 3], [-1, -1], [4, -1]])
    assert lengths.dtype == np.int64
    np.testing.assert_array_equal(lengths, [2, 0, 1])


def test_pad_sequences_feature_vectors():
    seqs = [np.ones((3, 2)), np.full((1, 2), 5.0)]
    out, lengths = data.pad_sequences(seqs, dtype="float32", padding="post",
                                      return_lengths=True)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[1], [[5, 5], [0, 0], [0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1])


def test_pad_sequences_empty_inputs():
    assert data.pad_sequences([]).shape == (0, 0)
    assert data.pad_sequences([[], []]).shape == (2, 0)
    out, lengths = data.pad_sequences([[1, 2], []], maxlen=0, return_lengths=True)
    assert out.shape == (2, 0) and lengths.tolist() == [0, 0]


def reference_pad(seqs, maxlen, padding, truncating, value):
    """Row by row in plain Python: what Keras does for integer sequences."""
    rows = []
    for s in seqs:
        kept = s[len(s) - maxlen:] if truncating == "pre" and len(s) > maxlen else s[:maxlen]
        fill = [value] * (maxlen - len(kept))
        rows.append(fill + kept if padding == "pre" else kept + fill)
    return rows


@given(seqs=st.lists(st.lists(st.integers(1, 99), max_size=8), min_size=1, max_size=6),
       maxlen=st.one_of(st.none(), st.integers(0, 10)),
       padding=st.sampled_from(["pre", "post"]), truncating=st.sampled_from(["pre", "post"]),
       value=st.integers(-5, 0))
def test_pad_sequences_matches_row_by_row_reference(seqs, maxlen, padding, truncating, value):
    out, lengths = data.pad_sequences(seqs, maxlen=maxlen, padding=padding,
                                      truncating=truncating, value=value, return_lengths=True)
    width = max(len(s) for s in seqs) if maxlen is None else maxlen
    assert out.shape == (len(seqs), width)
    assert out.tolist() == reference_pad(seqs, width, padding, truncating, value)
    assert lengths.tolist() == [min(len(s), width) for s in seqs]


@pytest.mark.parametrize("seqs, index", [
    ([[1, 2], "abc"], 1),                      # a string is not a token sequence
    ([[1, 2], [3, "x"]], 1),                   # non-numeric token for int32
    ([[1], [[1, 2], [3]]], 1),                 # ragged feature vectors inside one sequence
    ([[[1, 2]], [[1, 2, 3]]], 1),              # feature shape differs from the first sequence
    ([[1], 7], 1),                             # not a sequence at all
])
def test_pad_sequences_names_the_offending_sequence(seqs, index):
    with pytest.raises(ValueError, match=f"sequence {index}"):
        data.pad_sequences(seqs)


@pytest.mark.parametrize("kw", [{"padding": "middle"}, {"truncating": "both"}])
def test_pad_sequences_rejects_unknown_modes(kw):
    with pytest.raises(ValueError, match="'pre' or 'post'"):
        data.pad_sequences([[1]], **kw)


# ---------------------------------------------------------------- tasks


def test_echo_task_shift_and_seed():
    X, Y = data.echo_task(4, 6, rng=0, dim=3)
    assert X.shape == Y.shape == (4, 6, 3) and X.dtype == Y.dtype == np.float32
    np.testing.assert_array_equal(Y[:, 1:], X[:, :-1])
    np.testing.assert_array_equal(Y[:, 0], 0)
    assert np.abs(X).max() <= 1.0 and X.std() > 0.1
    np.testing.assert_array_equal(X, data.echo_task(4, 6, rng=np.random.default_rng(0), dim=3)[0])


@pytest.mark.parametrize("bits", [1, 4, 9])
def test_binary_subtraction_bits_reconstruct_a_minus_b(bits):
    X, Y = data.binary_subtraction_task(300, bits=bits, rng=1)
    assert X.shape == (300, bits, 2) and Y.shape == (300, bits, 1)
    assert X.dtype == Y.dtype == np.float32
    assert set(np.unique(X)) <= {0.0, 1.0} and set(np.unique(Y)) <= {0.0, 1.0}
    weights = 2 ** np.arange(bits)             # least significant bit first
    a, b = X[..., 0] @ weights, X[..., 1] @ weights
    diff = Y[..., 0] @ weights
    assert (a >= b).all()
    np.testing.assert_array_equal(diff, a - b)
    if bits > 1:
        assert (a > b).any()


def test_binary_subtraction_known_values():
    X, Y = data.binary_subtraction_task(2000, bits=4, rng=3)
    a, b, diff = (X[..., 0] @ [1, 2, 4, 8]), (X[..., 1] @ [1, 2, 4, 8]), Y[..., 0] @ [1, 2, 4, 8]
    row = int(np.flatnonzero((a == 6) & (b == 3))[0])   # 6 - 3 = 3: 0110 - 0011 = 0011
    np.testing.assert_array_equal(X[row], [[0, 1], [1, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(Y[row, :, 0], [1, 1, 0, 0])
    assert diff[row] == 3
    with pytest.raises(ValueError, match="bits"):
        data.binary_subtraction_task(2, bits=0)


def test_spiral_task_labels_and_geometry():
    X, y = data.spiral_task(n_per_class=50, classes=4, noise=0.0, rng=0)
    assert X.shape == (200, 2) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [50, 50, 50, 50])
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[:50], np.linspace(0, 1, 50), atol=1e-6)
    theta = np.arctan2(X[:50, 0], X[:50, 1])   # x = r sin t, y = r cos t, t from 0 to 4
    np.testing.assert_allclose(theta[1:10], np.linspace(0, 4, 50)[1:10], atol=1e-5)


def test_spiral_task_noise_is_seeded():
    a, _ = data.spiral_task(rng=5)
    b, _ = data.spiral_task(rng=np.random.default_rng(5))
    c, _ = data.spiral_task(rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------- load_imdb

TRAIN = [[0, 1, 2, 5], [3, 4, 6], [7]]       # raw word indices, before index_from
TEST = [[1, 1], [8, 0, 2]]


def write_imdb(path, train=TRAIN, test=TEST):
    def obj(rows):
        arr = np.empty(len(rows), dtype=object)
        for i, r in enumerate(rows):
            arr[i] = list(r)
        return arr
    np.savez(path, x_train=obj(train), y_train=np.arange(len(train)),
             x_test=obj(test), y_test=np.arange(len(test)) + 100)
    return path


def test_load_imdb_shuffles_with_seed_and_shifts(tmp_path):
    path = write_imdb(tmp_path / "imdb.npz")
    (xtr, ytr), (xte, yte) = data.load_imdb(path, seed=113)
    state = np.random.RandomState(113)         # Keras: train shuffled first, then test
    order_tr, order_te = np.arange(3), np.arange(2)
    state.shuffle(order_tr)
    state.shuffle(order_te)
    np.testing.assert_array_equal(ytr, order_tr)
    np.testing.assert_array_equal(yte, order_te + 100)
    assert xtr.dtype == object and xtr.shape == (3,) and xte.shape == (2,)
    for x, label in zip(xtr, ytr):             # labels identify the original review
        assert x == [1] + [w + 3 for w in TRAIN[label]]
    assert dict(zip(yte.tolist(), xte.tolist()))[101] == [1, 11, 3, 5]


def test_load_imdb_num_words_skip_top_oov(tmp_path):
    path = write_imdb(tmp_path / "imdb.npz")
    (xtr, ytr), _ = data.load_imdb(path, num_words=6, skip_top=4)
    review0 = xtr[list(ytr).index(0)]          # [1, 3, 4, 5, 8] before filtering
    assert review0 == [2, 2, 4, 5, 2]
    (xtr, ytr), _ = data.load_imdb(path, num_words=6, skip_top=4, oov_char=None)
    assert xtr[list(ytr).index(0)] == [4, 5]
    (xtr, ytr), (xte, yte) = data.load_imdb(path, start_char=None, index_from=0)
    assert xtr[list(ytr).index(1)] == [3, 4, 6]
    assert xte[list(yte).index(101)] == [8, 0, 2]   # num_words=None keeps even the largest word


def test_load_imdb_maxlen_keeps_shorter_reviews_only(tmp_path):
    path = write_imdb(tmp_path / "imdb.npz")
    (xtr, ytr), (_, yte) = data.load_imdb(path, maxlen=4)   # lengths incl. start: 5, 4, 2
    assert sorted(ytr.tolist()) == [2] and [len(x) for x in xtr] == [2]
    assert sorted(yte.tolist()) == [100]       # test lengths 3 and 4
    with pytest.raises(ValueError, match="maxlen"):
        data.load_imdb(path, maxlen=2)


def test_load_imdb_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "imdb.npz"
    with pytest.raises(FileNotFoundError, match="imdb.npz") as info:
        data.load_imdb(path)
    assert str(path) in str(info.value) and "download" in str(info.value)


def test_load_imdb_bad_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not an archive at all")
    with pytest.raises(ValueError, match="notes.npz"):
        data.load_imdb(text)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros(2), y_train=np.zeros(2))
    with pytest.raises(ValueError, match=r"partial\.npz.*x_test"):
        data.load_imdb(partial)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single.npy"):
        data.load_imdb(single)
