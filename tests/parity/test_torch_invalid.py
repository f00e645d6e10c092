"""Against torch 2.x: where torch refuses a use, so do we (with our error type, which is torch's
where the project's rules allow); where torch accepts it (sizes of 0, empty batches, integer
pretrained tables, non-finite entries a norm of order <= 0 ignores, empty means), we give
torch's shapes and values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tinygrad_rnn import Tensor, nn, optim
from tinygrad_rnn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _z(*shape):
    return np.zeros(shape)


# (what, our call, torch's call, our error type, our message)
REFUSED = [
    ("cell state of batch 1",
     lambda: nn.GRUCell(2, 4)(_z(3, 2), _z(1, 4)),
     lambda: torch.nn.GRUCell(2, 4)(torch.zeros(3, 2), torch.zeros(1, 4)),
     ValueError, r"GRUCell: state h has shape \(1, 4\), expected \(3, 4\)"),
    ("LSTM cell c of width 1",
     lambda: nn.LSTMCell(2, 4)(_z(3, 2), (_z(3, 4), _z(3, 1))),
     lambda: torch.nn.LSTMCell(2, 4)(torch.zeros(3, 2), (torch.zeros(3, 4), torch.zeros(3, 1))),
     ValueError, r"LSTMCell: state c has shape \(3, 1\)"),
    ("LSTM cell given one tensor",
     lambda: nn.LSTMCell(2, 4)(_z(3, 2), Tensor(_z(3, 4))),
     lambda: torch.nn.LSTMCell(2, 4)(torch.zeros(3, 2), torch.zeros(3, 4)),
     TypeError, r"LSTMCell: state must be a tuple \(h, c\)"),
    ("LSTM cell given three tensors",
     lambda: nn.LSTMCell(2, 4)(_z(3, 2), (_z(3, 4),) * 3),
     lambda: torch.nn.LSTMCell(2, 4)(torch.zeros(3, 2), (torch.zeros(3, 4),) * 3),
     ValueError, r"LSTMCell: state must be a tuple \(h, c\) of 2 tensors, got 3"),
    ("stack hx of batch 1",
     lambda: nn.LSTM(2, 3)(_z(5, 3, 2), (_z(1, 1, 3), _z(1, 3, 3))),
     lambda: torch.nn.LSTM(2, 3)(torch.zeros(5, 3, 2),
                                 (torch.zeros(1, 1, 3), torch.zeros(1, 3, 3))),
     ValueError, r"LSTM: expected hx of shape \(1, 3, 3\)"),
    ("stack hidden_size 0", lambda: nn.LSTM(2, 0), lambda: torch.nn.LSTM(2, 0),
     ValueError, r"LSTM: hidden_size must be >= 1, got 0"),
    ("stack float input_size", lambda: nn.GRU(2.0, 3), lambda: torch.nn.GRU(2.0, 3),
     TypeError, r"GRU: input_size must be an integer, got float"),
    ("stack num_layers 0", lambda: nn.RNN(2, 3, 0), lambda: torch.nn.RNN(2, 3, 0),
     ValueError, r"RNN: num_layers must be >= 1"),
    ("stack dropout above 1", lambda: nn.GRU(2, 3, 2, dropout=1.5),
     lambda: torch.nn.GRU(2, 3, 2, dropout=1.5), ValueError, r"GRU: dropout must be in \[0, 1\]"),
    ("stack batch_first not a bool", lambda: nn.GRU(2, 3, batch_first=1),
     lambda: torch.nn.GRU(2, 3, batch_first=1), TypeError, r"GRU: batch_first must be a bool"),
    ("stack 0 time steps", lambda: nn.LSTM(2, 3)(_z(0, 3, 2)),
     lambda: torch.nn.LSTM(2, 3)(torch.zeros(0, 3, 2)), ValueError, r"LSTM: expected a non-empty"),
    ("negative cell size", lambda: nn.RNNCell(-1, 3), lambda: torch.nn.RNNCell(-1, 3),
     ValueError, r"RNNCell: input_size must be >= 0, got -1"),
    ("float cell size", lambda: nn.LSTMCell(2, 3.0), lambda: torch.nn.LSTMCell(2, 3.0),
     TypeError, r"LSTMCell: hidden_size must be an integer, got float"),
    ("Tensor over a Parameter", lambda: setattr(nn.Linear(2, 2), "weight", Tensor(_z(2, 2))),
     lambda: setattr(torch.nn.Linear(2, 2), "weight", torch.zeros(2, 2)),
     TypeError, r"Linear: cannot assign Tensor to parameter 'weight'"),
    ("ndarray over a Parameter", lambda: setattr(nn.Linear(2, 2), "bias", _z(2)),
     lambda: setattr(torch.nn.Linear(2, 2), "bias", _z(2)),
     TypeError, r"Linear: cannot assign ndarray to parameter 'bias'"),
    ("train(1)", lambda: nn.Linear(2, 2).train(1), lambda: torch.nn.Linear(2, 2).train(1),
     ValueError, r"train: mode must be a bool"),
    ("load a string array", lambda: nn.Linear(2, 2).load_state_dict(
        {"weight": np.full((2, 2), "a"), "bias": _z(2)}),
     lambda: torch.nn.Linear(2, 2).load_state_dict({"weight": "a", "bias": torch.zeros(2)}),
     RuntimeError, r"weight: expected a real numeric array"),
    ("padding_idx outside the table", lambda: nn.Embedding(3, 2, padding_idx=3),
     lambda: torch.nn.Embedding(3, 2, padding_idx=3), ValueError, r"padding_idx 3 is out of range"),
    ("F.embedding padding_idx outside", lambda: F.embedding(np.array([0]), Tensor(_z(3, 2)), 5),
     lambda: TF.embedding(torch.tensor([0]), torch.zeros(3, 2), 5), ValueError,
     r"embedding: padding_idx 5 is out of range"),
    ("embedding weight not 2-D", lambda: F.embedding(np.array([0]), Tensor(_z(3))),
     lambda: TF.embedding(torch.tensor([0]), torch.zeros(3)), ValueError,
     r"embedding: weight must be 2-D"),
    ("from_pretrained 1-D", lambda: nn.Embedding.from_pretrained(_z(3)),
     lambda: torch.nn.Embedding.from_pretrained(torch.zeros(3)), ValueError,
     r"weights must be 2-D"),
    ("integer table trained", lambda: nn.Embedding.from_pretrained(np.ones((2, 2), int), False),
     lambda: torch.nn.Embedding.from_pretrained(torch.ones(2, 2, dtype=torch.long), False),
     TypeError, r"freeze=False needs floating weights"),
    ("bce NaN input", lambda: F.binary_cross_entropy(Tensor(np.array([np.nan])), _z(1)),
     lambda: TF.binary_cross_entropy(torch.tensor([math.nan]), torch.zeros(1)),
     RuntimeError, r"binary_cross_entropy: input must be probabilities"),
    ("bce input above 1", lambda: F.binary_cross_entropy(Tensor(np.array([1.2])), _z(1)),
     lambda: TF.binary_cross_entropy(torch.tensor([1.2]), torch.zeros(1)),
     RuntimeError, r"binary_cross_entropy: input must be probabilities"),
    ("bce target above 1", lambda: F.binary_cross_entropy(Tensor(np.array([0.5])), np.ones(1) * 2),
     lambda: TF.binary_cross_entropy(torch.tensor([0.5]), torch.tensor([2.0])),
     RuntimeError, r"binary_cross_entropy: target must be probabilities"),
    ("bce target NaN", lambda: F.binary_cross_entropy(Tensor(np.array([0.5])), np.array([np.nan])),
     lambda: TF.binary_cross_entropy(torch.tensor([0.5]), torch.tensor([math.nan])),
     RuntimeError, r"binary_cross_entropy: target must be probabilities"),
    ("cross_entropy target out of range",
     lambda: F.cross_entropy(Tensor(_z(2, 3)), np.array([0, 3])),
     lambda: TF.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3])),
     IndexError, r"cross_entropy: target 3 is out of range for 3 classes"),
    ("nll_loss negative target", lambda: F.nll_loss(Tensor(_z(2, 3)), np.array([0, -1])),
     lambda: TF.nll_loss(torch.zeros(2, 3), torch.tensor([0, -1])),
     IndexError, r"nll_loss: target -1 is out of range"),
    ("cross_entropy float index targets", lambda: F.cross_entropy(Tensor(_z(2, 3)), np.ones(2)),
     lambda: TF.cross_entropy(torch.zeros(2, 3), torch.ones(2)),
     ValueError, r"cross_entropy: class-index targets must be integers"),
    ("cross_entropy ignore_index float",
     lambda: F.cross_entropy(Tensor(_z(2, 3)), np.array([0, 1]), ignore_index=1.5),
     lambda: TF.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), ignore_index=1.5),
     TypeError, r"cross_entropy: ignore_index must be an int"),
    ("softmax axis out of range", lambda: F.softmax(Tensor(_z(2, 2)), 2),
     lambda: TF.softmax(torch.zeros(2, 2), 2), IndexError, r"softmax: axis 2 is out of range"),
    ("dropout p above 1", lambda: F.dropout(Tensor(_z(2)), 1.5),
     lambda: TF.dropout(torch.zeros(2), 1.5),
     ValueError, r"dropout: p must be in \[0, 1\]"),
    ("numpy-scalar negative lr", lambda: optim.SGD([nn.Parameter(_z(2))], lr=np.float32(-0.1)),
     lambda: torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=np.float32(-0.1)),
     ValueError, r"SGD: lr must be >= 0"),
    ("0-d array negative momentum",
     lambda: optim.SGD([nn.Parameter(_z(2))], lr=0.1, momentum=np.array(-1.0)),
     lambda: torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=np.array(-1.)),
     ValueError, r"SGD: momentum must be >= 0"),
    ("numpy negative eps", lambda: optim.Adam([nn.Parameter(_z(2))], eps=np.float64(-1)),
     lambda: torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], eps=np.float64(-1)),
     ValueError, r"Adam: eps must be >= 0"),
    ("beta of 1", lambda: optim.Adam([nn.Parameter(_z(2))], betas=(1.0, 0.9)),
     lambda: torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], betas=(1.0, 0.9)),
     ValueError, r"Adam: betas\[0\] must be in \[0, 1\)"),
    ("Nesterov without momentum", lambda: optim.SGD([nn.Parameter(_z(2))], lr=0.1, nesterov=True),
     lambda: torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, nesterov=True),
     ValueError, r"SGD: Nesterov momentum requires"),
    ("non-leaf tensor", lambda: optim.SGD([Tensor(_z(2), requires_grad=True) * 2], lr=0.1),
     lambda: torch.optim.SGD([torch.zeros(2, requires_grad=True) * 2], lr=0.1),
     ValueError, r"can't optimize a non-leaf Tensor"),
    ("empty parameter list", lambda: optim.Adam([]), lambda: torch.optim.Adam([]),
     ValueError, r"Adam: got an empty parameter list"),
    ("None for params", lambda: optim.SGD(None, lr=0.1),
     lambda: torch.optim.SGD(None, lr=0.1), TypeError, r"SGD: params must be"),
    ("ndarray parameters", lambda: optim.SGD([_z(2)], lr=0.1),
     lambda: torch.optim.SGD([_z(2)], lr=0.1), TypeError, r"SGD: expected Parameters in params"),
    ("norm of a None norm_type", lambda: optim.clip_grad_norm_([], 1.0, None),
     lambda: torch.nn.utils.clip_grad_norm_([], 1.0, None), TypeError,
     r"clip_grad_norm_: norm_type must be a real number"),
]


@pytest.mark.parametrize("what, ours, theirs, error, match", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_by_torch_and_by_us(what, ours, theirs, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception):  # noqa: B017 (torch raises various types here)
            theirs()
    with pytest.raises(error, match=match):
        ours()


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("sizes", [(2, 0), (0, 3)])
def test_cells_with_a_size_of_zero_as_torch(cls, sizes):
    theirs = getattr(torch.nn, cls)(*sizes).double()
    ours = getattr(nn, cls)(*sizes)
    ours.to(np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, sizes[0]))
    xa, xb = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yb = ours(xa), theirs(xb)
    ya, yb = (ya[0], yb[0]) if cls == "LSTMCell" else (ya, yb)
    np.testing.assert_allclose(ya.data, yb.detach().numpy())
    (ya.sum() + 1.0).backward()
    (yb.sum() + 1.0).backward()
    np.testing.assert_allclose(xa.grad, xb.grad.numpy())


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacks_with_a_batch_of_zero_sequences_as_torch(cls, bidirectional):
    theirs = getattr(torch.nn, cls)(2, 3, 2, bidirectional=bidirectional).double()
    ours = getattr(nn, cls)(2, 3, 2, bidirectional=bidirectional)
    xa = Tensor(np.zeros((4, 0, 2)), requires_grad=True)
    xb = torch.zeros(4, 0, 2, dtype=torch.float64, requires_grad=True)
    (oa, ha), (ob, hb) = ours(xa), theirs(xb)
    assert oa.shape == tuple(ob.shape)
    ha, hb = (ha, hb) if isinstance(ha, tuple) else ((ha,), (hb,))
    assert [h.shape for h in ha] == [tuple(h.shape) for h in hb]
    (oa.sum() + sum(h.sum() for h in ha)).backward()
    (ob.sum() + sum(h.sum() for h in hb)).backward()
    assert xa.grad.shape == tuple(xb.grad.shape)
    for p, (_, q) in zip(ours.parameters(), theirs.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())  # zeros, as torch's


@pytest.mark.parametrize("norm_type", [0, 0.0, -1, -2.0, float("-inf"), 0.5, 1, 2, math.inf])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_error_if_nonfinite_as_torch_for_every_norm_type(norm_type, bad):
    grads = [np.array([1.0, bad]), np.array([2.0, 0.0])]
    ours = [nn.Parameter(np.zeros(2)) for _ in grads]
    theirs = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)) for _ in grads]
    for a, b, g in zip(ours, theirs, grads):
        a.grad, b.grad = g.copy(), torch.tensor(g)
    try:
        expected = float(torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type, True))
    except RuntimeError:
        with pytest.raises(RuntimeError, match=r"the gradient of parameter \(index 0"):
            optim.clip_grad_norm_(ours, 1.0, norm_type, error_if_nonfinite=True)
        np.testing.assert_array_equal(ours[0].grad, grads[0])  # nothing scaled
        return
    total = optim.clip_grad_norm_(ours, 1.0, norm_type, error_if_nonfinite=True)
    assert total == pytest.approx(expected)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy())


def test_an_integer_pretrained_table_as_torch():
    table = np.array([[1, 2], [3, 4], [5, 6]])
    ours = nn.Embedding.from_pretrained(table)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table))
    assert str(ours.weight.dtype) == str(theirs.weight.dtype).replace("torch.", "")
    assert ours.weight.requires_grad == theirs.weight.requires_grad
    idx = np.array([[2, 0], [1, 1]])
    np.testing.assert_array_equal(ours(idx).data, theirs(torch.tensor(idx)).numpy())
    ours.to(np.float64)
    theirs.to(torch.float64)
    assert str(ours.weight.dtype) == str(theirs.weight.dtype).replace("torch.", "")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", ["mse_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
def test_empty_losses_as_torch(loss, reduction):
    ours = getattr(F, loss)(Tensor(np.zeros(0)), np.zeros(0), reduction=reduction).item()
    theirs = getattr(TF, loss)(torch.zeros(0), torch.zeros(0), reduction=reduction).item()
    assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_empty_cross_entropy_as_torch(reduction):
    for target in (np.zeros(0, int), np.zeros((0, 3))):
        ours = F.cross_entropy(Tensor(np.zeros((0, 3))), target, reduction=reduction).item()
        theirs = TF.cross_entropy(torch.zeros(0, 3), torch.tensor(target),
                                  reduction=reduction).item()
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs


def test_parameter_slots_as_torch():
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    for m, make in ((ours, nn.Parameter), (theirs, torch.nn.Parameter)):
        m.bias = None
        m.weight = make(np.ones((2, 3)) if m is ours else torch.ones(2, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    ours.bias = nn.Parameter(np.zeros(2))
    theirs.bias = torch.nn.Parameter(torch.zeros(2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
