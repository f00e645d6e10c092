"""gradcheck_module passes on every built-in layer in float64, and its failure report names
the parameter, the worst element and the time steps (layer, direction) that used it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import FAILURE_LINE

import tinygrad_rnn as tg
from tinygrad_rnn import GradcheckError, Tensor, gradcheck_module
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Cell,
    Embedding,
    GRUCell,
    Linear,
    LSTMCell,
    Parameter,
    Recurrent,
    RNNCell,
    Sequential,
)
from tinygrad_rnn.ops import OPS, Op, primitive
from tinygrad_rnn.tensor import apply

B, T, I, H = 2, 3, 2, 3
X = np.random.default_rng(0).standard_normal((B, T, I))
PROJ = np.random.default_rng(1).standard_normal((B, T, 2 * H))  # weights every output


def _seq_loss(out: Tensor) -> Tensor:
    """Every output of (B, T, F) matters: a fixed weighted sum plus a square (not linear)."""
    w = PROJ[..., :out.shape[-1]]
    return (out * w).sum() + (out * out).sum() * 0.1


RECURRENT_LAYERS = {
    "rnn_tanh": lambda: Recurrent(RNNCell(I, H), return_sequences=True),
    "rnn_relu": lambda: Recurrent(RNNCell(I, H, nonlinearity="relu"), return_sequences=True),
    "lstm": lambda: Recurrent(LSTMCell(I, H), return_sequences=True),
    "gru": lambda: Recurrent(GRUCell(I, H), return_sequences=True),
    "gru_reverse_no_bias": lambda: Recurrent(GRUCell(I, H, bias=False), return_sequences=True,
                                             reverse=True),
    "bi_lstm": lambda: Bidirectional(Recurrent(LSTMCell(I, H), return_sequences=True)),
    "bi_rnn_sum": lambda: Bidirectional(Recurrent(RNNCell(I, H), return_sequences=True), "sum"),
}


@pytest.mark.parametrize("name", sorted(RECURRENT_LAYERS))
def test_passes_on_recurrent_and_bidirectional_layers(name):
    np.random.seed(0)
    layer = RECURRENT_LAYERS[name]()
    assert gradcheck_module(layer, lambda: _seq_loss(layer(Tensor(X))))


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_passes_on_two_layer_bidirectional_stacks(cls):
    np.random.seed(0)
    stack = cls(I, 2, num_layers=2, bidirectional=True, batch_first=True)  # H=2: a short numeric loop

    def loss():
        out, h_n = stack(Tensor(X))
        h_n = h_n if isinstance(h_n, Tensor) else h_n[0] * h_n[1]  # LSTM: use c_n too
        return _seq_loss(out) + (h_n * h_n).sum()
    assert gradcheck_module(stack, loss)


def test_passes_on_linear_and_embedding():
    np.random.seed(0)
    model = Sequential(Embedding(5, I), Recurrent(GRUCell(I, H)), Linear(H, 2))
    idx = np.array([[0, 3, 4], [1, 1, 2]])
    assert gradcheck_module(model, lambda: (model(idx) ** 2).sum())
    assert model[0].weight.dtype == np.float32  # restored after the float64 check


@pytest.fixture
def wrong_tanh():
    """A tanh primitive whose planted backward is 10% too large."""
    @primitive("wrong_tanh_for_test")
    class WrongTanh(Op):
        def forward(self, x):
            self.out = np.tanh(x)
            return self.out

        def backward(self, g):
            return (g * (1.0 - self.out ** 2) * 1.1,)
    yield WrongTanh
    del OPS["wrong_tanh_for_test"]
    assert "wrong_tanh_for_test" not in OPS


class BrokenCell(Cell):
    """An Elman cell using the wrong tanh: every parameter's gradient is wrong."""

    def __init__(self, op: type[Op]):
        super().__init__()
        rng = np.random.default_rng(3)
        self.hidden_size, self.op = H, op
        self.weight_x = Parameter(rng.standard_normal((I, H)) * 0.5)
        self.weight_h = Parameter(rng.standard_normal((H, H)) * 0.5)

    def forward(self, x_t, h):
        return apply(self.op, x_t @ self.weight_x + h @ self.weight_h)


def _failures(err: GradcheckError) -> dict[str, re.Match]:
    lines = str(err).removeprefix("gradcheck_module: ").split("\n  ")
    matches = [FAILURE_LINE.fullmatch(line) for line in lines]
    assert all(matches), str(err)
    return {m[1]: m for m in matches}


def test_failure_names_parameter_element_and_steps(wrong_tanh):
    model = Sequential(Recurrent(BrokenCell(wrong_tanh), return_sequences=True), Linear(H, 1))
    with pytest.raises(GradcheckError) as info:
        gradcheck_module(model, lambda: (model(Tensor(X)) ** 2).sum())
    fails = _failures(info.value)
    assert set(fails) == {"0.cell.weight_x", "0.cell.weight_h"}  # the Linear head is right
    wh = fails["0.cell.weight_h"]
    assert wh[2] == "3, 3" and len(wh[3].split(",")) == 2
    assert float(wh[4]) != pytest.approx(float(wh[5]), rel=1e-3)
    assert wh[7] == f", used in steps t=0..{T - 1} of layer 0 direction forward of '0'"
    assert model[0].step_observers == []  # the check's observers are gone
    assert gradcheck_module(model, lambda: (model(Tensor(X)) ** 2).sum(),
                            raise_exception=False) is False


def test_failure_in_a_stack_names_layer_and_direction(wrong_tanh):
    np.random.seed(0)
    stack = RNN(I, H, num_layers=2, bidirectional=True, batch_first=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck_module(stack, lambda: apply(wrong_tanh, stack(Tensor(X))[0]).sum())
    fails = _failures(info.value)
    assert len(fails) == 16  # the wrong op sits on the output: every parameter is off
    for name, m in fails.items():
        k, reverse = re.search(r"_l(\d)(_reverse)?$", name).groups()
        d = "backward" if reverse else "forward"
        assert m[7] == f", used in steps t=0..{T - 1} of layer {k} direction {d}", name
    assert stack.step_observers == []


def test_non_recurrent_parameter_has_no_steps(wrong_tanh):
    model = Sequential(Recurrent(GRUCell(I, H)), Linear(H, 2))
    with pytest.raises(GradcheckError) as info:
        gradcheck_module(model, lambda: apply(wrong_tanh, model(Tensor(X)) * 0 + model[1].bias)
                         .sum())
    fails = _failures(info.value)
    assert set(fails) == {"1.bias"} and fails["1.bias"][7] == ""


def test_bidirectional_parameters_report_their_own_direction(wrong_tanh):
    np.random.seed(0)
    bi = Bidirectional(Recurrent(RNNCell(I, H)))
    with pytest.raises(GradcheckError) as info:
        gradcheck_module(bi, lambda: apply(wrong_tanh, bi(Tensor(X))).sum())
    for name, m in _failures(info.value).items():
        layer = name.split(".")[0]
        d = "forward" if layer == "forward_layer" else "backward"
        assert m[7] == f", used in steps t=0..{T - 1} of layer 0 direction {d} of '{layer}'"


def test_module_api_is_unchanged():
    assert tg.gradcheck_module is gradcheck_module
    m = Linear(2, 2)
    assert gradcheck_module(m, lambda: (m(Tensor(X[:, 0])) ** 2).sum(), eps=1e-6, atol=1e-5,
                            rtol=1e-3, raise_exception=True)
