"""Data helpers against torch where the same call exists: DataLoader batching, pad_sequence."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import data

torch = pytest.importorskip("torch")
DataLoader, TensorDataset = torch.utils.data.DataLoader, torch.utils.data.TensorDataset


@pytest.mark.parametrize("n, batch_size", [(0, 1), (1, 3), (7, 2), (8, 4), (9, 10), (10, 1)])
def test_batches_in_order_match_a_dataloader(n, batch_size):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n)
    ours = list(data.batches(x, y, batch_size=batch_size))
    theirs = list(DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                             batch_size=batch_size))
    assert len(ours) == len(theirs)
    for (bx, by), (tx, ty) in zip(ours, theirs):
        np.testing.assert_array_equal(bx, tx.numpy())
        np.testing.assert_array_equal(by, ty.numpy())


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_non_positive_batch_size_is_a_value_error_in_both(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(torch.zeros(4)), batch_size=batch_size)
    with pytest.raises(ValueError, match="batches: batch_size must be >= 1"):
        data.batches(np.zeros(4), batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [2.5, 2.0, True, "2"])
def test_a_non_integer_batch_size_is_refused_by_both(batch_size):
    # torch's DataLoader says ValueError for every bad batch_size; a wrong type is a TypeError
    # here, as Python's range(2.5) says (documented in docs/files.md)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(torch.zeros(4)), batch_size=batch_size)
    with pytest.raises(TypeError, match="batches: batch_size must be an integer"):
        data.batches(np.zeros(4), batch_size=batch_size)


SEQS = [[1.0, 2.0, 3.0], [4.0], [5.0, 6.0], []]


@pytest.mark.parametrize("padding, side", [("post", "right"), ("pre", "left")])
@pytest.mark.parametrize("value", [0.0, -1.5])
def test_pad_sequences_matches_torch_pad_sequence(padding, side, value):
    ours = data.pad_sequences(SEQS, dtype="float32", padding=padding, value=value)
    theirs = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(s, dtype=torch.float32) for s in SEQS], batch_first=True,
        padding_value=value, padding_side=side)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_pad_sequences_of_feature_vectors_matches_torch():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((t, 2)).astype(np.float32) for t in (3, 1, 2)]
    ours = data.pad_sequences(seqs, dtype="float32", padding="post")
    theirs = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs],
                                             batch_first=True)
    np.testing.assert_array_equal(ours, theirs.numpy())
