"""Parity with torch.nn.functional in float64: every loss's value and input gradient."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = np.random.default_rng(0)
REDUCTIONS = ["mean", "sum", "none"]


def both(fn_ours, fn_torch, *arrays):
    """Run both with float64 leaves; return (our value, torch value, our grads, torch grads)."""
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    a, b = fn_ours(*ours), fn_torch(*theirs)
    proj = RNG.standard_normal(a.shape)  # a fixed projection checks non-scalar outputs too
    (a * proj).sum().backward()
    (b * torch.tensor(proj)).sum().backward()
    return a.data, b.detach().numpy(), [t.grad for t in ours], [t.grad.numpy() for t in theirs]


def assert_parity(fn_ours, fn_torch, *arrays, grad_rtol=1e-9):
    va, vb, ga, gb = both(fn_ours, fn_torch, *arrays)
    np.testing.assert_allclose(va, vb, rtol=1e-10, atol=1e-12)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x, y, rtol=grad_rtol, atol=1e-12)


def test_softmax_and_log_softmax():
    x = RNG.standard_normal((3, 4, 5)) * 5
    assert_parity(lambda a: a.softmax(-1), lambda a: TF.softmax(a, -1), x)
    assert_parity(lambda a: a.log_softmax(1), lambda a: TF.log_softmax(a, 1), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse(reduction):
    x, t = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    assert_parity(lambda a, b: F.mse_loss(a, b, reduction),
                  lambda a, b: TF.mse_loss(a, b, reduction=reduction), x, t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce(reduction, weighted):
    p, t = RNG.uniform(0.01, 0.99, (3, 4)), RNG.uniform(0, 1, (3, 4))
    w = RNG.random(4) if weighted else None
    assert_parity(
        lambda a, b: F.binary_cross_entropy(a, b, w, reduction),
        lambda a, b: TF.binary_cross_entropy(
            a, b, None if w is None else torch.tensor(w), reduction=reduction), p, t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_at_the_clamp(reduction):
    # the clamp at -100 and torch's gradient floor; only the input gradient is compared:
    # torch's target gradient there is log(1-p) - log(p) unclamped (inf), ours is clamped
    p = np.array([0.0, 1.0, 1e-13, 1 - 1e-13, 1e-50, 0.3])
    t = np.array([1.0, 0.0, 1.0, 0.0, 0.3, 0.6])
    assert_parity(
        lambda a: F.binary_cross_entropy(a, t, reduction=reduction),
        lambda a: TF.binary_cross_entropy(a, torch.tensor(t), reduction=reduction), p,
        grad_rtol=1e-8)  # torch's floor is float32(1e-12) = 9.99999996e-13, ours exactly 1e-12


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits(reduction, weighted):
    x, t = RNG.standard_normal((3, 4)) * 3, RNG.uniform(0, 1, (3, 4))
    x[0, :3] = [0.0, 1e4, -1e4]
    w, pw = (RNG.random((3, 1)), RNG.random(4) * 3) if weighted else (None, None)
    tw = (lambda v: None if v is None else torch.tensor(v))
    assert_parity(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction, pos_weight=pw),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, tw(w), reduction=reduction,
                                                         pos_weight=tw(pw)), x, t)


def class_case():
    """Logits (2, 3, 5) with the class dim last for us; torch wants it at dim 1."""
    x = RNG.standard_normal((2, 3, 5)) * 2
    t = np.array([[0, 4, -100], [2, 2, 1]])
    return x, t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_cross_entropy_class_indices(reduction, weighted, smoothing):
    x, t = class_case()
    w = RNG.random(5) + 0.1 if weighted else None
    assert_parity(
        lambda a: F.cross_entropy(a, t, w, reduction=reduction, label_smoothing=smoothing),
        lambda a: TF.cross_entropy(
            a.permute(0, 2, 1), torch.tensor(t), None if w is None else torch.tensor(w),
            reduction=reduction, label_smoothing=smoothing), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_custom_ignore_index_and_2d(reduction):
    x, t = RNG.standard_normal((6, 4)), np.array([0, 3, 2, 2, 3, 1])
    assert_parity(lambda a: F.cross_entropy(a, t, ignore_index=2, reduction=reduction),
                  lambda a: TF.cross_entropy(a, torch.tensor(t), ignore_index=2,
                                             reduction=reduction), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_probability_targets(reduction, smoothing):
    x, p = RNG.standard_normal((4, 3)), RNG.dirichlet(np.ones(3), 4)
    w = np.array([1.0, 2.0, 0.5])
    assert_parity(
        lambda a, b: F.cross_entropy(a, b, w, reduction=reduction, label_smoothing=smoothing),
        lambda a, b: TF.cross_entropy(a, b, torch.tensor(w), reduction=reduction,
                                      label_smoothing=smoothing), x, p)


def test_cross_entropy_large_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]])
    assert_parity(lambda a: F.cross_entropy(a, np.array([1, 0])),
                  lambda a: TF.cross_entropy(a, torch.tensor([1, 0])), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll(reduction, weighted):
    x, t = RNG.standard_normal((5, 4)), np.array([0, 3, -1, 3, 1])
    w = RNG.random(4) + 0.1 if weighted else None
    assert_parity(
        lambda a: F.nll_loss(a, t, w, ignore_index=-1, reduction=reduction),
        lambda a: TF.nll_loss(a, torch.tensor(t), None if w is None else torch.tensor(w),
                              ignore_index=-1, reduction=reduction), x)


def test_embedding_with_padding():
    w = RNG.standard_normal((6, 3))
    idx = np.array([[0, 2, 2], [5, 1, 2]])
    assert_parity(lambda a: F.embedding(idx, a, padding_idx=2),
                  lambda a: TF.embedding(torch.tensor(idx), a, padding_idx=2), w)


def test_dropout_scaling_matches_torch_rule():
    # masks differ by generator; the rule (kept values scaled by 1/(1-p)) must agree
    x = np.ones((100, 100))
    ours = F.dropout(Tensor(x), 0.3, rng=np.random.default_rng(0)).data
    theirs = TF.dropout(torch.tensor(x), 0.3).numpy()
    np.testing.assert_allclose(np.unique(ours), np.unique(theirs))
