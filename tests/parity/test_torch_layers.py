"""Parity with torch.nn layers in float64: copied weights give the same outputs and gradients."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn import functional as F
from tinygrad_rnn.nn import Dropout, Embedding, Linear, Sequential

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)


def copy_from_torch(ours, theirs):
    ours.to(np.float64)  # first, so the float64 arrays load without a float32 round trip
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (3,)])
def test_linear(bias, shape):
    theirs = torch.nn.Linear(3, 2, bias=bias).double()
    ours = Linear(3, 2, bias=bias)
    copy_from_torch(ours, theirs)
    x = RNG.standard_normal(shape)
    xa, xb = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yb = ours(xa), theirs(xb)
    np.testing.assert_allclose(ya.data, yb.detach().numpy(), rtol=1e-12)
    g = RNG.standard_normal(ya.shape)
    ya.backward(g)
    yb.backward(torch.tensor(g))
    np.testing.assert_allclose(xa.grad, xb.grad.numpy(), rtol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad, p.grad.numpy(), rtol=1e-12)


def test_linear_init_distribution_matches_torch_bound():
    ours, theirs = Linear(50, 400), torch.nn.Linear(50, 400)
    bound = 1 / np.sqrt(50)
    for name in ("weight", "bias"):
        a, b = getattr(ours, name).data, getattr(theirs, name).detach().numpy()
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        assert abs(a).max() <= bound and abs(b).max() <= bound
    assert abs(ours.weight.data.std() - bound / np.sqrt(3)) < 0.01  # std of U(-k, k)


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(padding_idx):
    theirs = torch.nn.Embedding(6, 3, padding_idx=padding_idx).double()
    ours = Embedding(6, 3, padding_idx=padding_idx)
    assert ours.padding_idx == theirs.padding_idx
    if padding_idx is not None:
        np.testing.assert_array_equal(ours.weight.data[padding_idx], 0.0)
    copy_from_torch(ours, theirs)
    idx = np.array([[0, 2, 2, 5], [5, 1, 2, 0]])
    ya, yb = ours(idx), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(ya.data, yb.detach().numpy())
    g = RNG.standard_normal(ya.shape)
    ya.backward(g)
    yb.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12)


def test_embedding_from_pretrained():
    w = RNG.standard_normal((5, 4))
    for freeze in (True, False):
        ours = Embedding.from_pretrained(w, freeze=freeze, padding_idx=1)
        theirs = torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=freeze, padding_idx=1)
        assert ours.weight.requires_grad == theirs.weight.requires_grad
        np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())


def test_sequential_state_dict_keys_and_forward():
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5),
                                 torch.nn.Linear(4, 2)).double().eval()
    ours = Sequential(Linear(3, 4), Dropout(0.5), Linear(4, 2)).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_from_torch(ours, theirs)
    x = RNG.standard_normal((5, 3))
    loss_a = F.cross_entropy(ours(Tensor(x)), np.array([0, 1, 1, 0, 1]))
    loss_b = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor([0, 1, 1, 0, 1]))
    np.testing.assert_allclose(loss_a.item(), loss_b.item(), rtol=1e-12)
    loss_a.backward()
    loss_b.backward()
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(dict(ours.named_parameters())[name].grad, p.grad.numpy(),
                                   rtol=1e-10)
