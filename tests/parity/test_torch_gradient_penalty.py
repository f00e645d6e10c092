"""A gradient penalty: `backward()` (the numpy fast path) through a gradient recorded with
create_graph=True, as WGAN-GP or double backprop do; parameter and input gradients equal
torch's for the stacks and for Recurrent over each cell (float64, copied weights)."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, nn
from tinygrad_rnn.autograd import grad

torch = pytest.importorskip("torch")

STACKS = [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("LSTM", {"proj_size": 2}),
          ("GRU", {"num_layers": 2, "bidirectional": True})]


def _copy(ours: nn.Module, theirs) -> None:
    ours.to(np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


@pytest.mark.parametrize("kind, extra", STACKS)
def test_backward_through_a_recorded_input_gradient_equals_torch(kind, extra):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, 4, batch_first=True, **extra).double()
    ours = getattr(nn, kind)(3, 4, batch_first=True, **extra)
    _copy(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))

    xt = Tensor(x, requires_grad=True)
    out, _ = ours(xt)
    loss = (out ** 2).mean()
    (gx,) = grad(loss, [xt], create_graph=True)
    (loss + 0.5 * (gx ** 2).sum()).backward()

    tx = torch.tensor(x, requires_grad=True)
    tout, _ = theirs(tx)
    tloss = (tout ** 2).mean()
    (tgx,) = torch.autograd.grad(tloss, [tx], create_graph=True)
    (tloss + 0.5 * (tgx ** 2).sum()).backward()

    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("make_ours, make_theirs", [
    (lambda: nn.RNNCell(3, 4), lambda: torch.nn.RNNCell(3, 4)),
    (lambda: nn.LSTMCell(3, 4), lambda: torch.nn.LSTMCell(3, 4)),
    (lambda: nn.GRUCell(3, 4), lambda: torch.nn.GRUCell(3, 4)),
])
def test_a_penalty_on_the_weight_gradient_through_recurrent_equals_torch(make_ours, make_theirs):
    torch.manual_seed(1)
    theirs = make_theirs().double()
    ours = nn.Recurrent(make_ours())
    _copy(ours.cell, theirs)
    x = np.random.default_rng(1).standard_normal((2, 4, 3))

    last = ours(x)
    h = last[0] if isinstance(last, tuple) else last
    loss = (h ** 2).sum()
    w = ours.cell.weight_hh
    (gw,) = grad(loss, [w], create_graph=True)
    (loss + (gw ** 2).sum()).backward()

    state = None
    for t in range(x.shape[1]):
        state = theirs(torch.tensor(x[:, t]), state)
    th = state[0] if isinstance(state, tuple) else state
    tloss = (th ** 2).sum()
    (tgw,) = torch.autograd.grad(tloss, [theirs.weight_hh], create_graph=True)
    (tloss + (tgw ** 2).sum()).backward()

    for (name, p), tp in zip(ours.cell.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
