"""Second order through recurrent networks, next to torch on copied weights in float64:
grad with create_graph=True then grad again, hvp, vhp, jacobian and hessian, through
two-layer bidirectional RNN/LSTM/GRU stacks with `lengths` (torch: pack_padded_sequence with
enforce_sorted=False, whose fused CPU kernels support double backward) and through
nn.Recurrent over each built-in cell (torch: its cell looped eagerly)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import autograd, nn

torch = pytest.importorskip("torch")
TF = torch.autograd.functional
PACK = torch.nn.utils.rnn

TOL = {"rtol": 1e-9, "atol": 1e-10}
T, B, I, H = 3, 3, 2, 2
LENGTHS = [3, 1, 2]  # unsorted: torch sorts and unsorts, our stacks mask


def _load(ours: nn.Module, theirs) -> None:
    ours.to(np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _close(ours, theirs, what: str) -> None:
    ours = ours if isinstance(ours, (tuple, list)) else [ours]
    theirs = theirs if isinstance(theirs, (tuple, list)) else [theirs]
    assert len(ours) == len(theirs), what
    for i, (o, t) in enumerate(zip(ours, theirs)):
        assert o.shape == tuple(t.shape), (what, i, o.shape, tuple(t.shape))
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), **TOL, err_msg=f"{what}[{i}]")


# ---- stacks --------------------------------------------------------------------------------
STACKS = {"RNN": (nn.RNN, torch.nn.RNN), "LSTM": (nn.LSTM, torch.nn.LSTM),
          "GRU": (nn.GRU, torch.nn.GRU)}


def _stack_pair(kind: str):
    ours_cls, torch_cls = STACKS[kind]
    torch.manual_seed(3)
    theirs = torch_cls(I, H, num_layers=2, bidirectional=True).double()
    ours = ours_cls(I, H, num_layers=2, bidirectional=True)
    _load(ours, theirs)
    rng = np.random.default_rng(3)
    out_w = rng.standard_normal((T, B, 2 * H))
    h_w = rng.standard_normal((4, B, H))

    def ours_outputs(x):
        out, h_n = ours(x, lengths=LENGTHS)
        return out, (h_n[0] if kind == "LSTM" else h_n)

    def theirs_outputs(x):
        packed = PACK.pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False)
        out, h_n = theirs(packed)
        out, _ = PACK.pad_packed_sequence(out, total_length=T)
        return out, (h_n[0] if kind == "LSTM" else h_n)

    def ours_loss(x):
        out, h_n = ours_outputs(x)
        return (out * out * out_w).sum() + (h_n.tanh() * h_w).sum()

    def theirs_loss(x):
        out, h_n = theirs_outputs(x)
        return (out * out * torch.tensor(out_w)).sum() + (h_n.tanh() * torch.tensor(h_w)).sum()

    return ours, theirs, ours_outputs, theirs_outputs, ours_loss, theirs_loss


def _x(seed: int = 0, shape=(T, B, I)):
    a = np.random.default_rng(seed).standard_normal(shape)
    return tg.Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize("kind", list(STACKS))
def test_stack_grad_of_grad_over_inputs_and_weights(kind):
    ours, theirs, _, _, ours_loss, theirs_loss = _stack_pair(kind)
    x, tx = _x()
    params, tparams = [x, *ours.parameters()], [tx, *theirs.parameters()]
    grads = autograd.grad(ours_loss(x), params, create_graph=True)
    tgrads = torch.autograd.grad(theirs_loss(tx), tparams, create_graph=True)
    _close(grads, tgrads, "first")
    rng = np.random.default_rng(4)
    vs = [rng.standard_normal(p.shape) for p in params]  # an HVP along vs, as users write it
    second = autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs)), params)
    tsecond = torch.autograd.grad(sum((g * torch.tensor(v)).sum() for g, v in zip(tgrads, vs)),
                                  tparams)
    _close(second, tsecond, "second")
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("kind", list(STACKS))
def test_stack_hvp_vhp_hessian_jacobian_over_inputs(kind):
    _, _, ours_outputs, theirs_outputs, ours_loss, theirs_loss = _stack_pair(kind)
    x, tx = _x(1)
    v = np.random.default_rng(5).standard_normal((T, B, I))
    for fn, tfn in ((autograd.hvp, TF.hvp), (autograd.vhp, TF.vhp)):
        out, hv = fn(ours_loss, x, tg.Tensor(v))
        tout, thv = tfn(theirs_loss, tx, torch.tensor(v))
        _close([out, hv], [tout, thv], fn.__name__)
    _close(autograd.hessian(ours_loss, x), TF.hessian(theirs_loss, tx), "hessian")
    _close(autograd.jacobian(ours_outputs, x), TF.jacobian(theirs_outputs, tx), "jacobian")


def test_stack_hvp_with_create_graph_differentiated_again():
    _, _, _, _, ours_loss, theirs_loss = _stack_pair("LSTM")
    x, tx = _x(2)
    v = np.random.default_rng(6).standard_normal((T, B, I))
    _, hv = autograd.hvp(ours_loss, x, tg.Tensor(v), create_graph=True)
    _, thv = TF.hvp(theirs_loss, tx, torch.tensor(v), create_graph=True)
    _close(autograd.grad((hv * hv).sum(), x), torch.autograd.grad((thv * thv).sum(), tx),
           "d|Hv|^2/dx")


# ---- Recurrent over each built-in cell ------------------------------------------------------
CELLS = {
    "RNNCell-tanh": (lambda: nn.RNNCell(I, H), lambda: torch.nn.RNNCell(I, H)),
    "RNNCell-relu": (lambda: nn.RNNCell(I, H, nonlinearity="relu"),
                     lambda: torch.nn.RNNCell(I, H, nonlinearity="relu")),
    "LSTMCell": (lambda: nn.LSTMCell(I, H), lambda: torch.nn.LSTMCell(I, H)),
    "GRUCell": (lambda: nn.GRUCell(I, H), lambda: torch.nn.GRUCell(I, H)),
}


def _cell_pair(name: str):
    make_ours, make_theirs = CELLS[name]
    torch.manual_seed(5)
    theirs = make_theirs().double()
    cell = make_ours()
    _load(cell, theirs)
    layer = nn.Recurrent(cell, return_sequences=True, return_state=True)  # batch first
    rng = np.random.default_rng(7)
    out_w = rng.standard_normal((B, T, H))
    lstm = name == "LSTMCell"

    def ours_loss(x):
        out, state = layer(x)
        h = state[0] if lstm else state
        return (out.tanh() * out_w).sum() + (h * h).sum()

    def theirs_loss(x):
        state, outs = None, []
        for t in range(T):
            state = theirs(x[:, t], state)
            outs.append(state[0] if lstm else state)
        out = torch.stack(outs, 1)
        h = state[0] if lstm else state
        return (out.tanh() * torch.tensor(out_w)).sum() + (h * h).sum()

    return layer, theirs, ours_loss, theirs_loss


@pytest.mark.parametrize("name", list(CELLS))
def test_recurrent_cells_second_order(name):
    layer, theirs, ours_loss, theirs_loss = _cell_pair(name)
    x, tx = _x(8, (B, T, I))
    params, tparams = [x, *layer.parameters()], [tx, *theirs.parameters()]
    grads = autograd.grad(ours_loss(x), params, create_graph=True)
    tgrads = torch.autograd.grad(theirs_loss(tx), tparams, create_graph=True)
    _close(grads, tgrads, "first")
    second = autograd.grad(sum((g * g).sum() for g in grads), params, allow_unused=True)
    tsecond = torch.autograd.grad(sum((g * g).sum() for g in tgrads), tparams,
                                  allow_unused=True)
    for s, ts in zip(second, tsecond):  # relu: a zero second derivative may be "unused"
        s = np.zeros(1) if s is None else s.numpy()
        ts = np.zeros(1) if ts is None else ts.detach().numpy()
        np.testing.assert_allclose(s + np.zeros_like(ts), ts + np.zeros_like(s), **TOL)
    v = np.random.default_rng(9).standard_normal((B, T, I))
    for fn, tfn in ((autograd.hvp, TF.hvp), (autograd.vhp, TF.vhp)):
        _close(list(fn(ours_loss, x, tg.Tensor(v))), list(tfn(theirs_loss, tx, torch.tensor(v))),
               fn.__name__)
    _close(autograd.hessian(ours_loss, x), TF.hessian(theirs_loss, tx), "hessian")
