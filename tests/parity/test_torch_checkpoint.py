"""checkpoint against torch.utils.checkpoint.checkpoint(use_reentrant=False), float64, copied
weights: gradients, gradients of gradients, and where numpy's / torch's RNG is after backward."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import built_in_float64

from tinygrad_rnn import Tensor, nn
from tinygrad_rnn.autograd import grad
from tinygrad_rnn.checkpoint import checkpoint
from tinygrad_rnn.functional import dropout

torch = pytest.importorskip("torch")
from torch.utils.checkpoint import checkpoint as torch_checkpoint


def arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def test_gradients_of_a_checkpointed_function_equal_torch():
    xa, wa, ba = arrays(0, (3, 4), (4, 5), (5,))
    x, w, b = (Tensor(a, requires_grad=True) for a in (xa, wa, ba))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xa, wa, ba))

    def f(x, b, scale):
        h = (x @ w + b).tanh()
        return h * h.sigmoid() * scale, h.sum()

    def tf(x, b, scale):
        h = torch.tanh(x @ tw + b)
        return h * torch.sigmoid(h) * scale, h.sum()

    a, s = checkpoint(f, x, b, 2.0)
    ((a ** 2).sum() + s * 3.0).backward()
    ta, ts = torch_checkpoint(tf, tx, tb, 2.0, use_reentrant=False)
    ((ta ** 2).sum() + ts * 3.0).backward()
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_lstm_cell_chunks_equal_torch():
    cell = built_in_float64(lambda: nn.LSTMCell(3, 4))
    tcell = torch.nn.LSTMCell(3, 4).double()
    with torch.no_grad():
        for name, p in tcell.named_parameters():
            p.copy_(torch.from_numpy(getattr(cell, name)._data.copy()))
    xs_np, = arrays(1, (9, 2, 3))

    def chunk(c, x, h, s):
        for t in range(x.shape[0]):
            h, s = c(x[t], (h, s))
        return h, s

    xs, txs = Tensor(xs_np, requires_grad=True), torch.tensor(xs_np, requires_grad=True)
    h = s = Tensor(np.zeros((2, 4)))
    th = ts = torch.zeros(2, 4, dtype=torch.float64)
    for t0 in range(0, 9, 3):
        h, s = checkpoint(chunk, cell, xs[t0:t0 + 3], h, s)
        th, ts = torch_checkpoint(chunk, tcell, txs[t0:t0 + 3], th, ts, use_reentrant=False)
    ((h ** 2).sum() + s.sum()).backward()
    ((th ** 2).sum() + ts.sum()).backward()
    np.testing.assert_allclose(xs.grad, txs.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in tcell.named_parameters():
        np.testing.assert_allclose(getattr(cell, name).grad, p.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_grad_of_grad_through_a_checkpoint_equals_torch():
    xa, wa = arrays(2, (3, 4), (4, 4))
    x, w = Tensor(xa, requires_grad=True), Tensor(wa, requires_grad=True)
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)

    def f(x, w):
        return (x @ w).tanh() * x

    gx, gw = grad((checkpoint(f, x, w) ** 3).sum(), [x, w], create_graph=True)
    ours = grad((gx * gx).sum() + (gw * gw).sum(), [x, w])
    tgx, tgw = torch.autograd.grad((torch_checkpoint(f, tx, tw, use_reentrant=False) ** 3).sum(),
                                   [tx, tw], create_graph=True)
    theirs = torch.autograd.grad((tgx * tgx).sum() + (tgw * tgw).sum(), [tx, tw])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a._data, b.numpy(), rtol=1e-12, atol=1e-12)


def test_the_rng_after_backward_is_where_it_would_be_without_checkpoint_as_torch():
    """torch forks the RNG around the recomputation: draws after backward are those of the
    plain run. The same holds for numpy's global RNG here."""
    xa, wa = arrays(3, (5, 6), (6, 6))

    def ours(wrap):
        x, w = Tensor(xa, requires_grad=True), Tensor(wa, requires_grad=True)
        np.random.seed(11)
        wrap(lambda x: dropout((x @ w).tanh(), 0.5), x).sum().backward()
        return np.random.random_sample(4), w.grad

    def theirs(wrap):
        x, w = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
        torch.manual_seed(11)
        wrap(lambda x: torch.nn.functional.dropout(torch.tanh(x @ w), 0.5), x).sum().backward()
        return torch.rand(4).numpy(), w.grad.numpy()

    plain = lambda f, *a: f(*a)
    after, g = ours(checkpoint)
    after_plain, g_plain = ours(plain)
    np.testing.assert_array_equal(after, after_plain)
    np.testing.assert_allclose(g, g_plain, rtol=1e-12)
    t_after, t_g = theirs(lambda f, x: torch_checkpoint(f, x, use_reentrant=False))
    t_after_plain, t_g_plain = theirs(plain)
    np.testing.assert_array_equal(t_after, t_after_plain)
    np.testing.assert_allclose(t_g, t_g_plain, rtol=1e-12)
