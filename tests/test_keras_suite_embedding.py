"""Keras' Embedding(mask_zero=True) and compute_mask (keras/src/layers/core/embedding_test.py,
masking_test.py) as DESIGN.md defines them: `compute_mask(indices)` is `indices != 0` as a
boolean Tensor of the indices' shape when mask_zero, else None; it feeds a recurrent layer's
`mask`. Keras casts float indices to int32; DESIGN (as torch's embedding) takes integer
indices only, so float or boolean indices are an IndexError naming compute_mask, as in the
forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import GRU, LSTM, Bidirectional, Embedding, GRUCell, Recurrent

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def test_keras_compute_mask_example():
    mask = Embedding(3, 2, mask_zero=True).compute_mask(np.array([2, 1, 0]))
    np.testing.assert_array_equal(mask.data, [True, True, False])


def test_no_mask_without_mask_zero_whatever_the_input():
    emb = Embedding(3, 2)
    assert emb.compute_mask(np.array([2, 1, 0])) is None
    assert emb.compute_mask(np.array([2.0, 0.0])) is None  # Keras returns None unread too


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_compute_mask_takes_every_integer_dtype(dtype):
    ids = np.array([[3, 0, 1], [0, 0, 2]], dtype)
    mask = Embedding(4, 2, mask_zero=True).compute_mask(ids)
    assert isinstance(mask, tg.Tensor) and mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal(mask.data, ids != 0)


@pytest.mark.parametrize("ids", [
    np.array(0), np.array(3), np.array([0, 4, 0]), np.arange(12).reshape(3, 4) % 3,
    np.arange(24).reshape(2, 3, 4) % 2, np.zeros((0, 5), np.int64), np.zeros((2, 0), np.int64),
], ids=["scalar0", "scalar3", "1-D", "2-D", "3-D", "empty batch", "empty steps"])
def test_compute_mask_keeps_the_indices_shape(ids):
    mask = Embedding(5, 2, mask_zero=True).compute_mask(ids)
    assert mask.shape == ids.shape
    np.testing.assert_array_equal(mask.data, ids != 0)


@pytest.mark.parametrize("as_given", [
    lambda a: a.tolist(), lambda a: tuple(map(tuple, a.tolist())), lambda a: tg.Tensor(a),
    lambda a: tg.Tensor.from_numpy(a), lambda a: a[:, ::-1][:, ::-1]],
    ids=["list", "tuple", "Tensor", "from_numpy", "strided view"])
def test_compute_mask_takes_any_integer_array_form(as_given):
    ids = np.array([[3, 0, 1], [0, 0, 2]])
    mask = Embedding(4, 2, mask_zero=True).compute_mask(as_given(ids))
    np.testing.assert_array_equal(mask.data, ids != 0)


def test_the_mask_is_its_own_array():
    ids = np.array([[3, 0, 1]])
    mask = Embedding(4, 2, mask_zero=True).compute_mask(ids)
    ids[:] = 0  # the caller's later write does not reach the mask
    np.testing.assert_array_equal(mask.data, [[True, False, True]])


def test_negative_and_large_indices_are_masked_only_by_being_nonzero():
    """Keras' compute_mask reads nothing but `!= 0`; the range is the forward pass's check."""
    emb = Embedding(4, 2, mask_zero=True)
    np.testing.assert_array_equal(emb.compute_mask(np.array([-1, 0, 9])).data,
                                  [True, False, True])
    with pytest.raises(IndexError, match=r"index 9 is out of range for a table of 4 rows"):
        emb(np.array([1, 0, 9]))


def test_keras_signature_takes_an_incoming_mask_and_ignores_it():
    emb = Embedding(4, 2, mask_zero=True)
    ids = np.array([[3, 0, 1]])
    np.testing.assert_array_equal(emb.compute_mask(ids, None).data, ids != 0)
    np.testing.assert_array_equal(emb.compute_mask(ids, mask=np.zeros((1, 3), bool)).data,
                                  ids != 0)


@pytest.mark.parametrize("ids, error, message", [
    (np.array([2.0, 1.0, 0.0]), IndexError, r"indices must be integers, got float64"),
    (np.array([2.0, 0.0], np.float32), IndexError, r"indices must be integers, got float32"),
    (tg.Tensor(np.array([1.0, 0.0])), IndexError, r"indices must be integers, got float64"),
    (np.array([True, False]), IndexError, r"indices must be integers, got bool"),
    ("ab", TypeError, r"indices must hold real numbers, got str"),
    (None, TypeError, r"indices must hold real numbers, got NoneType"),
    ([[1, 2], [3]], ValueError, r"indices is ragged"),
], ids=["float64", "float32", "float Tensor", "bool", "str", "None", "ragged"])
def test_compute_mask_refuses_what_the_forward_pass_refuses(ids, error, message):
    with pytest.raises(error, match=r"Embedding.compute_mask: " + message):
        Embedding(4, 2, mask_zero=True).compute_mask(ids)


@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0])
def test_mask_zero_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=r"Embedding: mask_zero must be a bool"):
        Embedding(4, 2, mask_zero=bad)
    with pytest.raises(TypeError, match=r"Embedding: mask_zero must be a bool"):
        Embedding.from_pretrained(np.eye(3), mask_zero=bad)


def test_keras_embedding_correctness_and_mask_zero_leaves_the_lookup_alone():
    table = np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]], np.float32)
    for mask_zero in (False, True):
        emb = Embedding.from_pretrained(table, mask_zero=mask_zero)
        np.testing.assert_array_equal(emb(np.array([2, 1, 0])).data,
                                      [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])
    np.random.seed(0)
    row0 = Embedding(5, 4, mask_zero=True)(np.array([0])).data
    assert row0.any()  # index 0 is still looked up (Keras); padding_idx=0 zeroes it (torch)
    assert not Embedding(5, 4, padding_idx=0, mask_zero=True)(np.array([0])).data.any()


def test_keras_basics_shapes_and_weights():
    emb = Embedding(5, 4, mask_zero=True)
    ids = np.random.default_rng(0).integers(0, 5, (2, 3)).astype(np.int64)
    assert emb(ids).shape == (2, 3, 4) and emb.compute_mask(ids).shape == (2, 3)
    assert [n for n, _ in emb.named_parameters()] == ["weight"]
    assert "mask_zero=True" in repr(emb) and "mask_zero" not in repr(Embedding(5, 4))


def test_the_mask_feeds_recurrent_bidirectional_and_stacks():
    np.random.seed(0)
    emb = Embedding(6, 3, mask_zero=True)
    ids = np.array([[1, 0, 2, 0], [0, 0, 0, 0], [3, 3, 0, 5]])
    x, mask = emb(ids), emb.compute_mask(ids)
    out = Recurrent(GRUCell(3, 4), return_sequences=True)(x, mask=mask)
    assert not out.data[ids == 0].any()
    bi = Bidirectional(Recurrent(GRUCell(3, 4), return_sequences=True))(x, mask=mask)
    assert not bi.data[ids == 0].any()
    for net in (GRU(3, 4, batch_first=True), LSTM(3, 4, batch_first=True, bidirectional=True)):
        assert not net(x, mask=mask)[0].data[ids == 0].any()


def test_an_unbatched_sequence_mask_feeds_an_unbatched_stack():
    np.random.seed(0)
    emb, net = Embedding(6, 3, mask_zero=True), GRU(3, 4)
    ids = np.array([2, 0, 4, 0, 1])
    out, h = net(emb(ids), mask=emb.compute_mask(ids))
    want, h_want = net(emb(ids[ids != 0]))
    np.testing.assert_allclose(out.data[ids != 0], want.data, atol=1e-6)
    np.testing.assert_allclose(h.data, h_want.data, atol=1e-6)
