"""Keras' own expected numbers (keras/src/layers/rnn/*_test.py), reproduced through our API.

Keras' tests build SimpleRNN, LSTM and GRU with constant initializers (kernel 0.01, recurrent
kernel 0.02, bias 0.03) and check outputs to 1e-5. With constant weights the gate order does
not matter, so each maps onto a torch-layout cell: SimpleRNN puts its one bias in bias_ih;
LSTM too, with Keras' unit_forget_bias (the forget gate's bias starts at 1, not 0.03); Keras'
GRU (reset_after=True) has an input and a recurrent bias, which are torch's bias_ih and
bias_hh. Where DESIGN.md deliberately differs from Keras the test says so:
- a masked step outputs zeros (Keras' zero_output_for_mask=True; its default repeats the
  previous output);
- `reverse=True` outputs stay aligned with input positions (Keras' go_backwards returns them
  reversed); the last output of both is the state after consuming position 0;
- return_state gives (output, state) with an LSTM state the tuple (h, c) (Keras flattens:
  output, h, c), and Bidirectional gives (output, (forward_state, backward_state)).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import Bidirectional, Cell, GRUCell, LSTMCell, Parameter, Recurrent, RNNCell

ATOL = 1e-5  # Keras' own tolerance in these tests


def keras_const(cell: Cell, kernel: float = 0.01, recurrent: float = 0.02,
                bias: float = 0.03, unit_forget_bias: bool = True) -> Cell:
    """Set a built-in cell to Keras' Constant initializers, in torch's layout."""
    def fill(p, value):
        p._assign(np.full(p.shape, value, p.dtype))
    fill(cell.weight_ih, kernel)
    fill(cell.weight_hh, recurrent)
    if cell.bias:
        b_ih = np.full(cell.bias_ih.shape, bias, cell.bias_ih.dtype)
        if isinstance(cell, LSTMCell) and unit_forget_bias:
            b_ih[cell.hidden_size:2 * cell.hidden_size] = 1.0  # gate order i, f, g, o
        cell.bias_ih._assign(b_ih)
        fill(cell.bias_hh, bias if isinstance(cell, GRUCell) else 0.0)
    return cell


def seq(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape).astype("float32")


def rows(*values: float, units: int) -> np.ndarray:
    """Keras' expected outputs where every unit has the same value: one row per sequence."""
    return np.repeat(np.array(values, np.float32)[:, None], units, axis=1)


MASK_GAPS = np.array([[True, True, False, True], [True, False, False, True]])  # SimpleRNN, GRU
MASK_TAIL = np.array([[True, True, True, False], [True, True, False, False]])  # LSTM
MASK_HEAD = np.array([[False, True, True, True], [False, False, True, True]])  # LSTM backwards


# ---- SimpleRNN (simple_rnn_test.py) -------------------------------------------------------
@pytest.mark.parametrize("reverse, expected", [(False, (0.405432, 0.73605347)),
                                               (True, (0.11144729, 0.5528889))])
def test_simple_rnn_correctness(reverse, expected):
    layer = Recurrent(keras_const(RNNCell(4, 4)), reverse=reverse)
    np.testing.assert_allclose(layer(seq(2, 3, 4)).data, rows(*expected, units=4), atol=ATOL)


def test_simple_rnn_statefulness_and_reset():
    layer = Recurrent(keras_const(RNNCell(4, 4)), stateful=True)
    for _ in range(2):  # the second round after reset_state() repeats the first
        layer(seq(2, 3, 4))
        np.testing.assert_allclose(layer(seq(2, 3, 4)).data,
                                   rows(0.40559256, 0.7361247, units=4), atol=ATOL)
        layer.reset_state()


@pytest.mark.parametrize("reverse, expected", [(False, (0.33621645, 0.6262637)),
                                               (True, (0.07344437, 0.43043602))])
def test_simple_rnn_initial_state(reverse, expected):
    layer = Recurrent(keras_const(RNNCell(3, 4)), reverse=reverse)
    out = layer(seq(2, 4, 3), initial_state=seq(2, 4))
    np.testing.assert_allclose(out.data, rows(*expected, units=4), atol=ATOL)


@pytest.mark.parametrize("reverse, expected", [(False, (0.32951632, 0.61799484)),
                                               (True, (0.07376196, 0.43645123))])
def test_simple_rnn_masked_last_output(reverse, expected):
    layer = Recurrent(keras_const(RNNCell(3, 4)), reverse=reverse)
    np.testing.assert_allclose(layer(seq(2, 4, 3), mask=MASK_GAPS).data,
                               rows(*expected, units=4), atol=ATOL)


def test_simple_rnn_masked_sequences_are_keras_zero_output_for_mask():
    """DESIGN: zeros at masked steps, i.e. Keras' zero_output_for_mask=True numbers."""
    out = Recurrent(keras_const(RNNCell(3, 2)), return_sequences=True)(seq(2, 4, 3),
                                                                       mask=MASK_GAPS)
    expected = [[0.0599281, 0.15122814, 0.0, 0.32394567], [0.3969304, 0.0, 0.0, 0.608085]]
    np.testing.assert_allclose(out.data, np.repeat(np.array(expected)[..., None], 2, -1),
                               atol=ATOL)


# ---- LSTM (lstm_test.py) ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, cell_kwargs, expected", [
    ({}, {}, (0.6288687, 0.86899155, 0.9460773)),
    ({"reverse": True}, {}, (0.35622165, 0.74789524, 0.8872726)),
    ({}, {"unit_forget_bias": False}, (0.57019705, 0.8661914, 0.9459622)),
    ({}, {"bias": False}, (0.54986924, 0.86226785, 0.9443936)),
], ids=["forward", "go_backwards", "no_unit_forget_bias", "no_bias"])
def test_lstm_correctness(kwargs, cell_kwargs, expected):
    cell = LSTMCell(4, 3, bias=cell_kwargs.get("bias", True))
    keras_const(cell, unit_forget_bias=cell_kwargs.get("unit_forget_bias", True))
    np.testing.assert_allclose(Recurrent(cell, **kwargs)(seq(3, 6, 4)).data,
                               rows(*expected, units=3), atol=ATOL)


def test_lstm_statefulness_and_reset():
    layer = Recurrent(keras_const(LSTMCell(4, 4)), stateful=True)
    for _ in range(2):
        layer(seq(2, 3, 4))
        np.testing.assert_allclose(layer(seq(2, 3, 4)).data,
                                   rows(0.3124785, 0.6863672, units=4), atol=ATOL)
        layer.reset_states()


@pytest.mark.parametrize("reverse, expected", [
    (False, [[0.20574439, 0.3558822], [0.64930826, 0.66276]]),
    (True, [[0.13281618, 0.2790356], [0.5839337, 0.5992567]])])
def test_lstm_initial_state(reverse, expected):
    layer = Recurrent(keras_const(LSTMCell(3, 2)), reverse=reverse)
    out = layer(seq(2, 4, 3), initial_state=(seq(2, 2), seq(2, 2)))
    np.testing.assert_allclose(out.data, expected, atol=ATOL)


def test_lstm_masked_last_output_and_state():
    layer = Recurrent(keras_const(LSTMCell(3, 2)), return_state=True)
    out, (h, _) = layer(seq(2, 4, 3), mask=MASK_TAIL)
    np.testing.assert_allclose(out.data, rows(0.11755939, 0.28556206, units=2), atol=ATOL)
    np.testing.assert_array_equal(h.data, out.data)  # last output is the final h


def test_lstm_masked_sequences_are_keras_zero_output_for_mask():
    """DESIGN: zeros at masked steps, i.e. Keras' zero_output_for_mask=True numbers."""
    out = Recurrent(keras_const(LSTMCell(3, 2)), return_sequences=True)(seq(2, 4, 3),
                                                                        mask=MASK_TAIL)
    expected = [[0.0158891, 0.05552048, 0.11755939, 0.0], [0.14185596, 0.28556206, 0.0, 0.0]]
    np.testing.assert_allclose(out.data, np.repeat(np.array(expected)[..., None], 2, -1),
                               atol=ATOL)


def test_lstm_go_backwards_with_a_leading_mask():
    layer = Recurrent(keras_const(LSTMCell(3, 2)), reverse=True)
    np.testing.assert_allclose(layer(seq(2, 4, 3), mask=MASK_HEAD).data,
                               rows(0.15341201, 0.3844719, units=2), atol=ATOL)


# ---- GRU (gru_test.py; Keras' default reset_after=True is torch's GRU) ----------------------
@pytest.mark.parametrize("reverse, bias, expected", [
    (False, True, (0.5217289, 0.6371659, 0.39384964)),
    (True, True, (0.24406259, 0.611516, 0.3928808)),
    (False, False, (0.49988455, 0.64701194, 0.4103359))],
    ids=["forward", "go_backwards", "no_bias"])
def test_gru_correctness(reverse, bias, expected):
    layer = Recurrent(keras_const(GRUCell(4, 3, bias=bias)), reverse=reverse)
    np.testing.assert_allclose(layer(seq(3, 6, 4)).data, rows(*expected, units=3), atol=ATOL)


def test_gru_statefulness_and_reset():
    layer = Recurrent(keras_const(GRUCell(4, 4)), stateful=True)
    for _ in range(2):
        layer(seq(2, 3, 4))
        np.testing.assert_allclose(layer(seq(2, 3, 4)).data,
                                   rows(0.29542392, 0.5885018, units=4), atol=ATOL)
        layer.reset_states()


@pytest.mark.parametrize("reverse, expected", [
    (False, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]),
    (True, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]])])
def test_gru_initial_state_and_return_state(reverse, expected):
    layer = Recurrent(keras_const(GRUCell(3, 2)), reverse=reverse, return_state=True)
    out, state = layer(seq(2, 4, 3), initial_state=seq(2, 2))
    np.testing.assert_allclose(out.data, expected, atol=ATOL)
    np.testing.assert_array_equal(state.data, out.data)  # Keras: output == state


@pytest.mark.parametrize("reverse, expected", [(False, (0.19393763, 0.30818558)),
                                               (True, (0.11669192, 0.28380975))])
def test_gru_masked_last_output(reverse, expected):
    layer = Recurrent(keras_const(GRUCell(3, 2)), reverse=reverse)
    np.testing.assert_allclose(layer(seq(2, 4, 3), mask=MASK_GAPS).data,
                               rows(*expected, units=2), atol=ATOL)


def test_gru_masked_sequences_are_keras_zero_output_for_mask():
    """DESIGN: zeros at masked steps, i.e. Keras' zero_output_for_mask=True numbers."""
    out = Recurrent(keras_const(GRUCell(3, 2)), return_sequences=True)(seq(2, 4, 3),
                                                                       mask=MASK_GAPS)
    expected = [[0.03606692, 0.09497581, 0.0, 0.19393763], [0.16051409, 0.0, 0.0, 0.30818558]]
    np.testing.assert_allclose(out.data, np.repeat(np.array(expected)[..., None], 2, -1),
                               atol=ATOL)


def test_gru_masked_reverse_sequences_keep_input_positions():
    """Keras' go_backwards returns the outputs reversed; ours stay at their input positions,
    so the output at position 0 is the last one computed and equals the last output."""
    layer = Recurrent(keras_const(GRUCell(3, 2)), reverse=True, return_sequences=True)
    out = layer(seq(2, 4, 3), mask=MASK_GAPS)
    np.testing.assert_allclose(out.data[:, 0], rows(0.11669192, 0.28380975, units=2),
                               atol=ATOL)
    assert not out.data[~MASK_GAPS].any()


# ---- Bidirectional (bidirectional_test.py) ------------------------------------------------
def bidirectional(cell: Cell, merge_mode: str | None = "concat", **flags) -> Bidirectional:
    """Keras builds the backward layer from the forward one's config: with constant
    initializers both directions hold the same weights; ours draws the copy afresh, so the
    constants are set on both."""
    bi = Bidirectional(Recurrent(keras_const(cell), **flags), merge_mode)
    keras_const(bi.backward_layer.cell)
    return bi


def test_bidirectional_concat_ave_and_none():
    f, b = (0.39687276, 0.7237238), (0.10004295, 0.53391594)
    out = bidirectional(RNNCell(4, 2))(seq(2, 3, 4))
    np.testing.assert_allclose(out.data, np.concatenate([rows(*f, units=2), rows(*b, units=2)],
                                                        1), atol=ATOL)
    ave = bidirectional(RNNCell(4, 2), "ave")(seq(2, 3, 4))
    np.testing.assert_allclose(ave.data, rows(0.24845785, 0.6288199, units=2), atol=ATOL)
    fwd, bwd = bidirectional(RNNCell(4, 2), None)(seq(2, 3, 4))
    np.testing.assert_allclose(fwd.data, rows(*f, units=2), atol=ATOL)
    np.testing.assert_allclose(bwd.data, rows(*b, units=2), atol=ATOL)


def test_bidirectional_mul_with_its_own_backward_weights():
    bi = bidirectional(RNNCell(4, 2), "mul")
    keras_const(bi.backward_layer.cell, kernel=0.03, recurrent=0.02, bias=0.01)
    np.testing.assert_allclose(bi(seq(2, 3, 4)).data, rows(0.08374989, 0.6740834, units=2),
                               atol=ATOL)


def test_bidirectional_gru_sequences_sum_aligned_with_input_positions():
    """Keras flips the backward sequence before merging; ours is aligned already."""
    out = bidirectional(GRUCell(4, 2), "sum", return_sequences=True)(seq(2, 3, 4))
    expected = [[0.20937867, 0.34462988, 0.40290534], [0.59829646, 0.6734641, 0.6479671]]
    np.testing.assert_allclose(out.data, np.repeat(np.array(expected)[..., None], 2, -1),
                               atol=ATOL)


def test_bidirectional_statefulness_and_reset():
    bi = bidirectional(LSTMCell(3, 2), stateful=True)
    expected = [[0.26234663, 0.26234663, 0.16959146, 0.16959146],
                [0.6137073, 0.6137073, 0.5381646, 0.5381646]]
    for _ in range(2):
        bi(seq(2, 4, 3))
        np.testing.assert_allclose(bi(seq(2, 4, 3)).data, expected, atol=ATOL)
        bi.reset_state()
        assert bi.states is None


def test_bidirectional_initial_state_pair():
    """Keras takes [h_f, c_f, h_b, c_b]; ours the pair ((h_f, c_f), (h_b, c_b))."""
    a = seq(2, 2)
    out = bidirectional(LSTMCell(3, 2))(seq(2, 4, 3), initial_state=((a, a * 2), (a * 3, a * 4)))
    expected = [[0.20794602, 0.4577124, 0.14046375, 0.48191673],
                [0.6682636, 0.6711909, 0.60943645, 0.60950446]]
    np.testing.assert_allclose(out.data, expected, atol=ATOL)


def test_bidirectional_masking():
    out = bidirectional(GRUCell(3, 2))(seq(2, 4, 3), mask=MASK_GAPS)
    expected = [[0.19393763, 0.19393763, 0.11669192, 0.11669192],
                [0.30818558, 0.30818558, 0.28380975, 0.28380975]]
    np.testing.assert_allclose(out.data, expected, atol=ATOL)


def test_bidirectional_return_state():
    out, ((h1, c1), (h2, c2)) = bidirectional(LSTMCell(3, 2), return_state=True)(seq(2, 4, 3))
    np.testing.assert_allclose(out.data, [[0.1990008, 0.1990008, 0.12659755, 0.12659755],
                                          [0.52335435, 0.52335435, 0.44717982, 0.44717982]],
                               atol=ATOL)
    np.testing.assert_allclose(h1.data, rows(0.1990008, 0.52335435, units=2), atol=ATOL)
    np.testing.assert_allclose(c1.data, rows(0.35567185, 1.0492687, units=2), atol=ATOL)
    np.testing.assert_allclose(h2.data, rows(0.12659755, 0.44717982, units=2), atol=ATOL)
    np.testing.assert_allclose(c2.data, rows(0.2501858, 0.941473, units=2), atol=ATOL)


@pytest.mark.parametrize("merge_mode", ["ave", "concat", "mul", "sum", None])
@pytest.mark.parametrize("return_state", [False, True])
def test_bidirectional_output_shapes(merge_mode, return_state):
    """bidirectional_test.test_output_shape, in our return layout."""
    bi = Bidirectional(Recurrent(LSTMCell(2, 2), return_state=return_state), merge_mode)
    got = bi(np.array([[[101.0, 202.0], [303.0, 404.0]]], np.float32))
    out = got[0] if return_state else got
    width = 4 if merge_mode == "concat" else 2
    if merge_mode is None:
        assert [o.shape for o in out] == [(1, 2), (1, 2)]
    else:
        assert out.shape == (1, width)
    if return_state:
        assert [s.shape for part in got[1] for s in part] == [(1, 2)] * 4


# ---- RNN(cell) with user cells (rnn_test.py): ones kernels, no activation -----------------
class OneState(Cell):
    """Keras' OneStateRNNCell: h' = x K + h R with K, R all ones."""

    def __init__(self, input_size: int, units: int):
        super().__init__()
        self.hidden_size = units
        self.kernel = Parameter(np.ones((input_size, units), np.float32))
        self.recurrent_kernel = Parameter(np.ones((units, units), np.float32))

    def forward(self, x, h):
        return x @ self.kernel + h @ self.recurrent_kernel


class TwoStates(Cell):
    """Keras' TwoStatesRNNCell: states (s1, s2) with s1' = xK + s1 R1, s2' = xK + s1 R2 (Keras'
    cell reads states[0] twice) and output s1' + s2'. Our step output is the state's first
    part, so the state here is (output, s1, s2); Keras' states are its last two parts."""

    state_names = ("out", "s1", "s2")

    def __init__(self, input_size: int, units: int):
        super().__init__()
        self.hidden_size = units
        self.kernel = Parameter(np.ones((input_size, units), np.float32))
        self.r1 = Parameter(np.ones((units, units), np.float32))
        self.r2 = Parameter(np.ones((units, units), np.float32))

    def initial_state(self, batch_size):
        return tuple(tg.Tensor(np.zeros((batch_size, self.hidden_size), np.float32))
                     for _ in range(3))

    def forward(self, x, state):
        _, s1, _ = state
        h = x @ self.kernel
        o1, o2 = h + s1 @ self.r1, h + s1 @ self.r2
        return o1 + o2, o1, o2


def test_user_cell_single_state_forward_pass():
    x = np.ones((1, 2, 3), np.float32)
    np.testing.assert_allclose(Recurrent(OneState(3, 2))(x).data, [[9.0, 9.0]])
    out, state = Recurrent(OneState(3, 2), return_sequences=True, return_state=True)(x)
    np.testing.assert_allclose(out.data, [[[3.0, 3.0], [9.0, 9.0]]])
    np.testing.assert_allclose(state.data, [[9.0, 9.0]])


def test_user_cell_two_states_forward_pass():
    x = np.ones((1, 2, 3), np.float32)
    out, (_, s1, s2) = Recurrent(TwoStates(3, 2), return_sequences=True, return_state=True)(x)
    np.testing.assert_allclose(out.data, [[[6.0, 6.0], [18.0, 18.0]]])
    np.testing.assert_allclose(s1.data, [[9.0, 9.0]])
    np.testing.assert_allclose(s2.data, [[9.0, 9.0]])


def test_user_cells_with_an_initial_state():
    x, ones = np.ones((2, 3, 2), np.float32), np.ones((2, 2), np.float32)
    np.testing.assert_allclose(Recurrent(OneState(2, 2))(x, initial_state=ones).data,
                               np.full((2, 2), 22.0))
    out, (_, s1, s2) = Recurrent(TwoStates(2, 2), return_state=True)(
        x, initial_state=(np.zeros((2, 2), np.float32), ones, ones))
    np.testing.assert_allclose(out.data, np.full((2, 2), 44.0))
    np.testing.assert_allclose(s1.data, np.full((2, 2), 22.0))
    np.testing.assert_allclose(s2.data, np.full((2, 2), 22.0))


def test_user_cells_statefulness():
    x = np.ones((1, 2, 3), np.float32)
    one = Recurrent(OneState(3, 2), stateful=True, return_state=True)
    one(x)
    out, state = one(x)
    np.testing.assert_allclose(out.data, [[45.0, 45.0]])
    np.testing.assert_allclose(state.data, [[45.0, 45.0]])
    two = Recurrent(TwoStates(3, 2), stateful=True, return_state=True)
    two(x)
    out, (_, s1, s2) = two(x)
    np.testing.assert_allclose(out.data, [[90.0, 90.0]])
    np.testing.assert_allclose(s1.data, [[45.0, 45.0]])
    np.testing.assert_allclose(s2.data, [[45.0, 45.0]])


def test_user_cell_go_backwards_and_stateful_return_state():
    x = seq(2, 3, 4)
    np.testing.assert_allclose(Recurrent(OneState(4, 2), reverse=True)(x).data,
                               [[202.0, 202.0], [538.0, 538.0]], rtol=1e-6)
    layer = Recurrent(OneState(4, 2), stateful=True, return_state=True)
    layer(x)
    out, state = layer(x)
    np.testing.assert_allclose(out.data, [[954.0, 954.0], [3978.0, 3978.0]], rtol=1e-6)
    np.testing.assert_allclose(state.data, out.data)


def test_stateful_batch_size_mismatch_raises():
    layer = Recurrent(TwoStates(3, 2), stateful=True)
    layer(np.random.default_rng(0).uniform(size=(4, 5, 3)).astype(np.float32))
    kept = [s.data.copy() for s in layer.states]
    with pytest.raises(ValueError, match=r"Recurrent: .*batch of 4 sequences, got a batch of 1"):
        layer(np.ones((1, 5, 3), np.float32))
    for s, k in zip(layer.states, kept):
        np.testing.assert_array_equal(s.data, k)
