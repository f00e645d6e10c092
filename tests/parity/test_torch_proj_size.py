"""LSTM(proj_size=P) against torch in float64: a torch state_dict loads as is (names, order,
shapes) and gives torch's output, h_n, c_n and every gradient (input, hx, each parameter),
for 1 and 2 layers, uni- and bidirectional, batch_first both ways; torch's errors too."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn

torch = pytest.importorskip("torch")

TOL = {"rtol": 1e-7, "atol": 1e-9}
SIZES = {"input_size": 3, "hidden_size": 5, "proj_size": 2}


def _pair(num_layers: int, bidirectional: bool, batch_first: bool, bias: bool = True):
    torch.manual_seed(num_layers * 4 + bidirectional * 2 + batch_first)
    theirs = torch.nn.LSTM(**SIZES, num_layers=num_layers, bidirectional=bidirectional,
                           batch_first=batch_first, bias=bias).double()
    ours = nn.LSTM(**SIZES, num_layers=num_layers, bidirectional=bidirectional,
                   batch_first=batch_first, bias=bias)
    state = theirs.state_dict()
    assert list(ours.state_dict()) == list(state)  # same names, same order
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in state.items()}
    ours.to(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in state.items()})
    return theirs, ours


CONFIGS = list(itertools.product([1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("num_layers, bidirectional, batch_first, given_hx", CONFIGS)
def test_outputs_states_and_every_gradient_equal_torchs(num_layers, bidirectional,
                                                         batch_first, given_hx):
    theirs, ours = _pair(num_layers, bidirectional, batch_first)
    d, (batch, steps) = 2 if bidirectional else 1, (3, 4)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((batch, steps, 3) if batch_first else (steps, batch, 3))
    h0 = rng.standard_normal((num_layers * d, batch, 2))
    c0 = rng.standard_normal((num_layers * d, batch, 5))
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    gx, gh0, gc0 = (tg.Tensor(a, requires_grad=True) for a in (x, h0, c0))
    t_out, (t_h, t_c) = theirs(tx, (th0, tc0) if given_hx else None)
    out, (h_n, c_n) = ours(gx, (gh0, gc0) if given_hx else None)

    assert out.shape == tuple(t_out.shape) == x.shape[:2] + (d * 2,)
    assert h_n.shape == (num_layers * d, batch, 2) and c_n.shape == (num_layers * d, batch, 5)
    for mine, ref in ((out, t_out), (h_n, t_h), (c_n, t_c)):
        np.testing.assert_allclose(mine.data, ref.detach().numpy(), **TOL)

    weights = [rng.standard_normal(t.shape) for t in (t_out, t_h, t_c)]
    sum((t * torch.tensor(w)).sum() for t, w in zip((t_out, t_h, t_c), weights)).backward()
    sum((t * w).sum() for t, w in zip((out, h_n, c_n), weights)).backward()
    np.testing.assert_allclose(gx.grad, tx.grad.numpy(), **TOL)
    if given_hx:
        np.testing.assert_allclose(gh0.grad, th0.grad.numpy(), **TOL)
        np.testing.assert_allclose(gc0.grad, tc0.grad.numpy(), **TOL)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL, err_msg=name)


def test_without_bias_and_unbatched_as_torch():
    theirs, ours = _pair(2, True, False, bias=False)
    assert list(ours.state_dict()) == [f"{w}_l{k}{r}" for k in range(2) for r in ("", "_reverse")
                                       for w in ("weight_ih", "weight_hh", "weight_hr")]
    x = np.random.default_rng(1).standard_normal((4, 3))  # (T, I): one sequence
    t_out, (t_h, t_c) = theirs(torch.tensor(x))
    out, (h_n, c_n) = ours(x)
    assert out.shape == (4, 4) and h_n.shape == (4, 2) and c_n.shape == (4, 5)
    for mine, ref in ((out, t_out), (h_n, t_h), (c_n, t_c)):
        np.testing.assert_allclose(mine.data, ref.detach().numpy(), **TOL)


def test_repr_and_attributes_as_torch():
    theirs = torch.nn.LSTM(3, 5, 2, proj_size=2)
    ours = nn.LSTM(3, 5, 2, proj_size=2)
    assert repr(ours).endswith(repr(theirs)[len("LSTM"):])
    assert ours.proj_size == theirs.proj_size == 2
    assert nn.LSTM(3, 5).proj_size == torch.nn.LSTM(3, 5).proj_size == 0


@pytest.mark.parametrize("proj_size, error, match", [
    (-1, ValueError, "proj_size should be a positive integer or zero"),
    (5, ValueError, "proj_size has to be smaller than hidden_size"),
    (9, ValueError, "proj_size has to be smaller than hidden_size"),
    (1.5, TypeError, None),
    (True, TypeError, None),
])
def test_bad_proj_size_is_refused_as_torch(proj_size, error, match):
    with pytest.raises(error, match=match):
        torch.nn.LSTM(3, 5, proj_size=proj_size)
    with pytest.raises(error, match=rf"LSTM: proj_size .*{proj_size!r}|LSTM: {match}"):
        nn.LSTM(3, 5, proj_size=proj_size)


def test_hx_of_hidden_size_is_refused_with_proj_size_as_torch():
    theirs, ours = torch.nn.LSTM(3, 5, proj_size=2), nn.LSTM(3, 5, proj_size=2)
    x, wrong = np.zeros((4, 2, 3), np.float32), np.zeros((1, 2, 5), np.float32)
    with pytest.raises(RuntimeError, match="hidden"):
        theirs(torch.tensor(x), (torch.tensor(wrong), torch.tensor(wrong)))
    with pytest.raises(ValueError, match=r"LSTM: expected hx of shape \(1, 2, 2\) .*proj_size"
                                         r"\) for h_0, got \(1, 2, 5\)"):
        ours(x, (tg.Tensor(wrong), tg.Tensor(wrong)))
