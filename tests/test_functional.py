"""functional: losses gradchecked in float64, reductions, ignore_index, stability, dropout, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, gradcheck
from tinygrad_rnn import functional as F

RNG = np.random.default_rng(0)
REDUCTIONS = ["mean", "sum", "none"]


def leaf(arr) -> Tensor:
    return Tensor(np.asarray(arr, dtype=np.float64), requires_grad=True)


def logits(*shape):
    return leaf(RNG.standard_normal(shape))


def probs(*shape):
    return leaf(RNG.uniform(0.05, 0.95, shape))


# ---- gradients by central differences ------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradcheck(reduction):
    x, t = logits(3, 4), logits(3, 4)
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction), [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_gradcheck(reduction):
    x, t, w = probs(3, 4), probs(3, 4), RNG.random(4)
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, w, reduction), [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_gradcheck(reduction):
    x, t = logits(3, 4), probs(3, 4)
    w, pw = RNG.random((3, 1)), RNG.random(4) * 3
    assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, w, reduction, pos_weight=pw), [x, t])


def test_bce_with_logits_gradient_at_zero_is_sigmoid_minus_target():
    x = leaf(np.zeros(3))
    F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0, 0.25]), reduction="sum").backward()
    np.testing.assert_allclose(x.grad, [0.5, -0.5, 0.25])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gradcheck(reduction, smoothing):
    x, w = logits(2, 3, 5), RNG.random(5) + 0.1
    t = np.array([[0, 4, -100], [2, 2, 1]])
    assert gradcheck(lambda a: F.cross_entropy(a, t, w, reduction=reduction,
                                               label_smoothing=smoothing), [x])


def test_cross_entropy_probability_targets_gradcheck():
    x, p = logits(4, 3), Tensor(RNG.dirichlet(np.ones(3), 4))
    assert gradcheck(lambda a: F.cross_entropy(a, p, weight=np.array([1.0, 2.0, 0.5])), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_gradcheck(reduction):
    x, t = logits(6, 4), np.array([0, 1, 3, 3, -1, 2])
    assert gradcheck(lambda a: F.nll_loss(a.log_softmax(-1), t, np.arange(1.0, 5.0), -1,
                                          reduction), [x])


def test_embedding_gradcheck_with_repeats():
    w = logits(5, 3)
    idx = np.array([[0, 2, 2], [4, 1, 2]])
    assert gradcheck(lambda a: F.embedding(idx, a), [w])


def test_embedding_padding_row_gets_no_gradient():
    w = logits(5, 3)  # padding_idx=-1 counts from the end, as torch: row 4
    F.embedding(np.array([[0, 4, 2], [4, 2, 2]]), w, padding_idx=-1).sum().backward()
    np.testing.assert_array_equal(w.grad[:, 0], [1, 0, 3, 0, 0])


# ---- values and reductions ----------------------------------------------------------------

def test_mse_values_and_reductions():
    x, t = Tensor([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(F.mse_loss(x, t, "none").data, [[1, 0], [4, 16]])
    assert F.mse_loss(x, t, "sum").item() == pytest.approx(21.0)
    assert F.mse_loss(x, t).item() == pytest.approx(5.25)


def test_cross_entropy_matches_manual_formula():
    x = RNG.standard_normal((3, 4))
    t = np.array([3, 0, 1])
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    expected = -logp[np.arange(3), t]
    np.testing.assert_allclose(F.cross_entropy(Tensor(x), t, reduction="none").data, expected,
                               rtol=1e-6)
    assert F.cross_entropy(Tensor(x), t).item() == pytest.approx(expected.mean(), rel=1e-6)


def test_ignore_index_mean_is_over_non_ignored_and_zero_grad():
    x = logits(4, 3)
    t = np.array([1, -100, 2, -100])
    loss = F.cross_entropy(x, t)
    kept = F.cross_entropy(Tensor(x.data[[0, 2]]), t[[0, 2]])
    assert loss.item() == pytest.approx(kept.item())
    loss.backward()
    assert np.all(x.grad[[1, 3]] == 0) and np.all(x.grad[[0, 2]] != 0)
    assert F.cross_entropy(x, t, reduction="none").data[1] == 0.0


def test_weighted_mean_divides_by_selected_weights():
    x, t, w = RNG.standard_normal((3, 2)), np.array([0, 1, 1]), np.array([2.0, 0.5])
    per = F.cross_entropy(Tensor(x), t, reduction="none").data
    expected = (per * w[t]).sum() / w[t].sum()
    assert F.cross_entropy(Tensor(x), t, w).item() == pytest.approx(expected)


def test_all_ignored_mean_is_nan_with_zero_gradient():
    x = logits(2, 3)
    loss = F.cross_entropy(x, np.array([-100, -100]))
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad, 0.0)


def test_bce_clamps_log_at_minus_100():
    x = leaf([0.0, 1.0, 0.5])
    loss = F.binary_cross_entropy(x, np.array([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.data, [100.0, 100.0, np.log(2)], rtol=1e-9)
    loss.sum().backward()
    assert np.isfinite(x.grad).all()


def test_float32_inputs_give_float32_losses():
    x = Tensor(RNG.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 2]))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    assert F.mse_loss(x, np.zeros((2, 3))).dtype == np.float32


# ---- stability at +-1e4 ----------------------------------------------------------------------

BIG = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [1e4, 1e4, -1e4]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_fn", [
    lambda x: F.cross_entropy(x, np.array([1, 0, 2])),
    lambda x: F.cross_entropy(x, np.array([1, 0, 2]), label_smoothing=0.1),
    lambda x: F.nll_loss(x.log_softmax(-1), np.array([1, 0, 2])),
    lambda x: F.binary_cross_entropy_with_logits(x, np.array([[1.0, 1.0, 0.0]] * 3)),
    lambda x: F.binary_cross_entropy_with_logits(x, np.ones((3, 3)), pos_weight=np.ones(3) * 2),
    lambda x: F.binary_cross_entropy(x.sigmoid(), np.array([[1.0, 1.0, 0.0]] * 3)),
    lambda x: x.softmax(-1).sum() + x.log_softmax(-1).sum(),
], ids=["ce", "ce_smooth", "nll", "bce_logits", "bce_logits_pw", "bce_sigmoid", "softmax"])
def test_large_logits_stay_finite(loss_fn, dtype):
    x = Tensor(BIG.astype(dtype), requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow is fine
        loss = loss_fn(x)
        loss.backward()
    assert np.isfinite(loss.data).all() and np.isfinite(x.grad).all()


def test_large_logit_values_are_exact():
    x = Tensor(np.array([[1e4, -1e4]]))
    assert F.cross_entropy(x, np.array([1])).item() == pytest.approx(2e4)
    bce = F.binary_cross_entropy_with_logits(x, np.array([[0.0, 1.0]]), reduction="none")
    np.testing.assert_allclose(bce.data, [[1e4, 1e4]])


# ---- dropout ------------------------------------------------------------------------------

def test_dropout_scales_kept_and_zeroes_dropped():
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    y = F.dropout(x, 0.25, rng=np.random.default_rng(1))
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    assert 0.22 < 1 - kept.mean() < 0.28
    y.sum().backward()
    np.testing.assert_allclose(x.grad, y.data)  # gradient is the same scaled mask


def test_dropout_is_reproducible_with_a_seeded_rng():
    x = Tensor(np.ones((4, 5)))
    a = F.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    b = F.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    np.testing.assert_array_equal(a, b)


def test_dropout_default_rng_follows_np_random_seed():
    x = Tensor(np.ones((4, 5)))
    np.random.seed(11)
    a = F.dropout(x, 0.5).data
    np.random.seed(11)
    np.testing.assert_array_equal(a, F.dropout(x, 0.5).data)


def test_dropout_eval_identity_and_edges():
    x = Tensor(RNG.standard_normal((3, 4)))
    assert F.dropout(x, 0.9, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0.0)
    assert F.dropout(Tensor(np.ones(3, np.float32)), 0.5).dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\]"):
        F.dropout(Tensor(np.ones(3)), p)


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: F.mse_loss(Tensor(np.ones(3)), np.ones(3), "avg"),
    lambda: F.binary_cross_entropy(Tensor(np.ones(3) / 2), np.ones(3), reduction="avg"),
    lambda: F.binary_cross_entropy_with_logits(Tensor(np.ones(3)), np.ones(3), reduction="avg"),
    lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1]), reduction="avg"),
    lambda: F.nll_loss(Tensor(np.ones((2, 3))), np.array([0, 1]), reduction="avg"),
])
def test_bad_reduction(call):
    with pytest.raises(ValueError, match="reduction must be one of"):
        call()


def test_target_shape_mismatch_names_function_and_shapes():
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3, 1\) .* \(3,\)"):
        F.mse_loss(Tensor(np.ones(3)), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape"):
        F.binary_cross_entropy_with_logits(Tensor(np.ones((2, 3))), np.ones(3))
    with pytest.raises(ValueError, match=r"cross_entropy: target shape \(3,\) .* \(2, 4\)"):
        F.cross_entropy(Tensor(np.ones((2, 4))), np.array([0, 1, 2]))


def test_cross_entropy_out_of_range_and_float_targets():
    x = Tensor(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"cross_entropy: target 4 is out of range for 4 class"):
        F.cross_entropy(x, np.array([0, 4]))
    with pytest.raises(ValueError, match=r"nll_loss: target -3 is out of range"):
        F.nll_loss(x, np.array([-3, 0]))
    with pytest.raises(ValueError, match=r"cross_entropy: class-index targets must be integers"):
        F.cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"cross_entropy: weight of shape \(3,\)"):
        F.cross_entropy(x, np.array([0, 1]), weight=np.ones(3))


def test_bce_rejects_non_probabilities():
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must be probabilities"):
        F.binary_cross_entropy(Tensor(np.array([0.5, 1.5])), np.ones(2))


def test_embedding_errors():
    w = Tensor(np.ones((5, 2)))
    with pytest.raises(IndexError, match=r"embedding: index 5 is out of range for a table of 5"):
        F.embedding(np.array([1, 5]), w)
    with pytest.raises(IndexError, match=r"embedding: index -1 is out of range"):
        F.embedding(np.array([-1]), w)
    with pytest.raises(IndexError, match=r"embedding: indices must be integers, got float64"):
        F.embedding(np.array([1.0]), w)
