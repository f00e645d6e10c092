"""Parity with torch (float64): torch weights load as is and give the same outputs, final
states, parameter gradients and input gradients, for the cells and the RNN/LSTM/GRU stacks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn

torch = pytest.importorskip("torch")

TOL = {"rtol": 1e-6, "atol": 1e-6}


def _load(ours: nn.Module, theirs) -> None:
    """Copy torch's state_dict (converted to numpy) into `ours`, kept in float64."""
    state = theirs.state_dict()
    assert list(ours.state_dict()) == list(state)  # same names, same order
    ours.to(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in state.items()})


def _flat(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def _weighted_sum(tensors, weights):
    return sum((t * w).sum() for t, w in zip(tensors, weights))


def _assert_grads_match(ours: nn.Module, theirs) -> None:
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL, err_msg=name)


CELLS = [
    (lambda: torch.nn.RNNCell(3, 4), lambda: nn.RNNCell(3, 4)),
    (lambda: torch.nn.RNNCell(3, 4, nonlinearity="relu"),
     lambda: nn.RNNCell(3, 4, nonlinearity="relu")),
    (lambda: torch.nn.RNNCell(3, 4, bias=False), lambda: nn.RNNCell(3, 4, bias=False)),
    (lambda: torch.nn.LSTMCell(3, 4), lambda: nn.LSTMCell(3, 4)),
    (lambda: torch.nn.LSTMCell(3, 4, bias=False), lambda: nn.LSTMCell(3, 4, bias=False)),
    (lambda: torch.nn.GRUCell(3, 4), lambda: nn.GRUCell(3, 4)),
    (lambda: torch.nn.GRUCell(3, 4, bias=False), lambda: nn.GRUCell(3, 4, bias=False)),
]


@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("make_torch, make_ours", CELLS)
def test_cell_parity_over_steps(make_torch, make_ours, given_state):
    torch.manual_seed(0)
    theirs, ours = make_torch().double(), make_ours()
    _load(ours, theirs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3))
    lstm = isinstance(ours, nn.LSTMCell)
    init = [rng.standard_normal((2, 4)) for _ in range(2 if lstm else 1)] if given_state else []
    ins = [tg.Tensor(a, requires_grad=True) for a in (x, *init)]
    tins = [torch.tensor(a, requires_grad=True) for a in (x, *init)]
    state = (tuple(ins[1:]) if lstm else ins[1]) if init else None
    tstate = (tuple(tins[1:]) if lstm else tins[1]) if init else None
    for t in range(4):
        state, tstate = ours(ins[0][:, t], state), theirs(tins[0][:, t], tstate)
    weights = [rng.standard_normal((2, 4)) for _ in _flat(state)]
    _weighted_sum(_flat(state), weights).backward()
    _weighted_sum(_flat(tstate), [torch.tensor(w) for w in weights]).backward()
    for s, ts in zip(_flat(state), _flat(tstate)):
        np.testing.assert_allclose(s.data, ts.detach().numpy(), **TOL)
    _assert_grads_match(ours, theirs)
    for a, ta in zip(ins, tins):
        np.testing.assert_allclose(a.grad, ta.grad.numpy(), **TOL)


STACKS = {"RNN": (nn.RNN, torch.nn.RNN), "LSTM": (nn.LSTM, torch.nn.LSTM),
          "GRU": (nn.GRU, torch.nn.GRU)}
CONFIGS = list(itertools.product(STACKS, [1, 2], [False, True], [False, True]))


def _check_stack(kind: str, kwargs: dict, x_shape: tuple[int, ...], given_hx: bool,
                 lengths=None) -> None:
    ours_cls, torch_cls = STACKS[kind]
    torch.manual_seed(1)
    theirs = torch_cls(3, 4, **kwargs).double()
    ours = ours_cls(3, 4, **kwargs)
    _load(ours, theirs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    batch = x_shape[0] if kwargs.get("batch_first") else x_shape[1]
    hx = [rng.standard_normal((layers, batch, 4)) for _ in range(2 if kind == "LSTM" else 1)]
    hx = hx if given_hx else []
    ins = [tg.Tensor(a, requires_grad=True) for a in (x, *hx)]
    tins = [torch.tensor(a, requires_grad=True) for a in (x, *hx)]
    h0 = (tuple(ins[1:]) if kind == "LSTM" else ins[1]) if hx else None
    th0 = (tuple(tins[1:]) if kind == "LSTM" else tins[1]) if hx else None
    out, h_n = ours(ins[0], h0, lengths=lengths)
    if lengths is None:
        tout, th_n = theirs(tins[0], th0)
    else:
        pack = torch.nn.utils.rnn
        packed = pack.pack_padded_sequence(tins[0], torch.tensor(lengths),
                                           batch_first=kwargs.get("batch_first", False),
                                           enforce_sorted=False)
        tout, th_n = theirs(packed, th0)
        tout, _ = pack.pad_packed_sequence(tout, batch_first=kwargs.get("batch_first", False),
                                           total_length=x.shape[1 if kwargs.get(
                                               "batch_first") else 0])
    results, tresults = [out, *_flat(h_n)], [tout, *_flat(th_n)]
    weights = [rng.standard_normal(r.shape) for r in results]
    _weighted_sum(results, weights).backward()
    _weighted_sum(tresults, [torch.tensor(w) for w in weights]).backward()
    for r, tr in zip(results, tresults):
        assert r.shape == tuple(tr.shape)
        np.testing.assert_allclose(r.data, tr.detach().numpy(), **TOL)
    _assert_grads_match(ours, theirs)
    for a, ta in zip(ins, tins):
        np.testing.assert_allclose(a.grad, ta.grad.numpy(), **TOL)


@pytest.mark.parametrize("kind, num_layers, bidirectional, batch_first", CONFIGS)
def test_stack_parity(kind, num_layers, bidirectional, batch_first):
    kwargs = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": batch_first}
    _check_stack(kind, kwargs, (2, 5, 3) if batch_first else (5, 2, 3), given_hx=False)


@pytest.mark.parametrize("kind", STACKS)
def test_stack_parity_with_hx_and_no_bias(kind):
    kwargs = {"num_layers": 2, "bidirectional": True, "bias": False}
    _check_stack(kind, kwargs, (5, 2, 3), given_hx=True)


def test_rnn_relu_stack_parity_with_hx():
    kwargs = {"num_layers": 2, "nonlinearity": "relu", "batch_first": True}
    _check_stack("RNN", kwargs, (3, 4, 3), given_hx=True)


@pytest.mark.parametrize("kind", STACKS)
def test_lengths_match_torch_packed_sequences(kind):
    kwargs = {"num_layers": 2, "bidirectional": True, "batch_first": True}
    _check_stack(kind, kwargs, (3, 5, 3), given_hx=True, lengths=[5, 2, 3])


@pytest.mark.parametrize("kind", STACKS)
def test_unbatched_input_parity(kind):
    _check_stack(kind, {"bidirectional": True}, (5, 3), given_hx=False)


def test_float32_default_dtype_stays_close_to_torch():
    torch.manual_seed(2)
    theirs, ours = torch.nn.LSTM(3, 4, num_layers=2), nn.LSTM(3, 4, num_layers=2)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((6, 2, 3)).astype(np.float32)
    out, (h, c) = ours(x)
    tout, (_th, tc) = theirs(torch.tensor(x))
    assert out.dtype == np.float32 and h.dtype == np.float32
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.data, tc.detach().numpy(), rtol=1e-5, atol=1e-6)
