"""Cells: gradients through unrolled steps (central differences), shapes, errors, custom cells."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import built_in_float64

import tinygrad_rnn as tg
from tinygrad_rnn.nn import Cell, GRUCell, LSTMCell, Parameter, Recurrent, RNNCell

CELLS = [
    lambda: RNNCell(3, 4),
    lambda: RNNCell(3, 4, nonlinearity="relu"),
    lambda: RNNCell(3, 4, bias=False),
    lambda: LSTMCell(3, 4),
    lambda: LSTMCell(3, 4, bias=False),
    lambda: GRUCell(3, 4),
    lambda: GRUCell(3, 4, bias=False),
]


@pytest.mark.parametrize("make", CELLS)
def test_cell_gradients_through_unrolled_steps(make):
    np.random.seed(0)
    cell = built_in_float64(make)
    x = tg.Tensor(np.random.randn(2, 3, 3), requires_grad=True)

    def loss():
        state = None
        for t in range(3):
            state = cell(x[:, t], state)
        return (cell.step_output(state) ** 2).sum()
    assert tg.gradcheck_module(cell, loss)
    assert tg.gradcheck(lambda xs: _run(cell, xs), [x])


def _run(cell: Cell, x: tg.Tensor) -> tg.Tensor:
    state = None
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
    return cell.step_output(state)


def test_cell_state_shapes_and_dtypes():
    for cell in (RNNCell(3, 5), GRUCell(3, 5)):
        h = cell(np.zeros((2, 3), np.float32))
        assert h.shape == (2, 5) and h.dtype == np.float32
    h, c = LSTMCell(3, 5)(np.zeros((2, 3), np.float32))
    assert h.shape == c.shape == (2, 5)
    cell = LSTMCell(3, 5).to(np.float64)
    h0, c0 = cell.initial_state(4)
    assert h0.shape == (4, 5) and h0.dtype == np.float64 and not c0.data.any()


def test_parameter_names_layouts_and_init_range():
    cell = LSTMCell(3, 5)
    shapes = {k: v.shape for k, v in cell.state_dict().items()}
    assert shapes == {"weight_ih": (20, 3), "weight_hh": (20, 5), "bias_ih": (20,),
                      "bias_hh": (20,)}
    assert list(GRUCell(3, 5, bias=False).state_dict()) == ["weight_ih", "weight_hh"]
    bound = 1 / np.sqrt(5)
    assert all(np.abs(p.data).max() <= bound for p in cell.parameters())
    assert all(p.dtype == tg.get_default_dtype() for p in cell.parameters())


def test_init_is_reproducible_with_numpy_seed():
    np.random.seed(3)
    a = GRUCell(2, 3).state_dict()
    np.random.seed(3)
    b = GRUCell(2, 3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = LSTMCell(2, 3, rng=np.random.default_rng(7)).state_dict()
    d = LSTMCell(2, 3, rng=np.random.default_rng(7)).state_dict()
    assert all(np.array_equal(c[k], d[k]) for k in c)
    e = tg.nn.LSTM(2, 3, 2, rng=np.random.default_rng(7)).state_dict()
    np.testing.assert_array_equal(e["weight_ih_l0"], c["weight_ih"])  # same draws, same order


def test_forward_equals_project_then_step():
    cell = GRUCell(3, 4).to(np.float64)
    x, h = np.random.randn(2, 3), tg.Tensor(np.random.randn(2, 4))
    direct = cell(x, h)
    split = cell.step(cell.project_inputs(tg.Tensor(x)), h, cell.hidden_weights())
    np.testing.assert_allclose(direct.data, split.data)


def test_bad_input_width_names_the_cell_and_shapes():
    with pytest.raises(ValueError, match=r"LSTMCell.*input_size\) 3, got 5.*\(2, 5\)"):
        LSTMCell(3, 4)(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="GRUCell: expected input .batch, input_size"):
        GRUCell(3, 4)(np.zeros(3))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="sigmoid")


class MinimalGRU(Cell):
    """A user cell: one gate z, h' = z * h + (1 - z) * tanh(x W + h U)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.w = Parameter(np.random.randn(input_size, 2 * hidden_size) * 0.5)
        self.u = Parameter(np.random.randn(hidden_size, 2 * hidden_size) * 0.5)

    def forward(self, x, h):
        z, cand = (x @ self.w + h @ self.u).chunk(2, axis=1)
        z = z.sigmoid()
        return z * h + (1 - z) * cand.tanh()


class TwoStateCell(Cell):
    """A user cell with a tuple state (h, running sum) and its own initial_state."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.w = Parameter(np.random.randn(input_size, hidden_size) * 0.5)

    def initial_state(self, batch_size):
        zeros = np.zeros((batch_size, self.hidden_size), self.param_dtype())
        return tg.Tensor(zeros), tg.Tensor(zeros + 1)

    def forward(self, x, state):
        h, s = state
        s = s + x @ self.w
        return (s * 0.5).tanh() + h * 0.1, s


def test_custom_cell_runs_through_recurrent_and_gradchecks():
    np.random.seed(1)
    cell = MinimalGRU(3, 4)
    assert not cell.uses_fast_path()
    layer = Recurrent(cell, return_sequences=True)
    x = np.random.randn(2, 5, 3)
    out = layer(x)
    assert out.shape == (2, 5, 4)
    np.testing.assert_allclose(out.data[:, -1], _run(cell, tg.Tensor(x)).data, rtol=1e-6)
    assert tg.gradcheck_module(layer, lambda: (layer(x) ** 2).sum())


def test_custom_tuple_state_cell_with_lengths():
    np.random.seed(2)
    layer = Recurrent(TwoStateCell(2, 3), return_state=True)
    x = np.random.randn(2, 4, 2)
    last, (h, s) = layer(x, lengths=[4, 2])
    assert last.shape == h.shape == s.shape == (2, 3)
    alone, (_, s_alone) = layer(x[1:, :2])
    np.testing.assert_allclose(last.data[1], alone.data[0], rtol=1e-6)
    np.testing.assert_allclose(s.data[1], s_alone.data[0], rtol=1e-6)


def test_subclass_overriding_forward_only_is_called_per_step():
    calls = []

    class Peeking(LSTMCell):
        def forward(self, x_t, state):
            calls.append(x_t.shape)
            return super().forward(x_t, state)

    layer = Recurrent(Peeking(3, 2))
    assert not layer.cell.uses_fast_path() and LSTMCell(3, 2).uses_fast_path()
    layer(np.zeros((4, 6, 3), np.float32))
    assert calls == [(4, 3)] * 6  # raw inputs, one call per step
