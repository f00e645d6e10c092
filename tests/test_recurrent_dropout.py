"""Variational dropout on the built-in cells (Keras' dropout / recurrent_dropout): one mask per
sequence for the input and one for h where it enters the hidden matmul, constant over time,
never on the carried state; training mode only; seeded by the cell's rng; gradcheck holds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import built_in_float64

import tinygrad_rnn as tg
from tinygrad_rnn import nn

P_IN, P_REC = 0.3, 0.4




MAKERS = {
    "rnn": lambda **kw: nn.RNNCell(3, 4, **kw),
    "lstm": lambda **kw: nn.LSTMCell(3, 4, **kw),
    "lstm_proj": lambda **kw: nn.LSTMCell(3, 4, proj_size=2, **kw),
    "gru": lambda **kw: nn.GRUCell(3, 4, **kw),
    "gru_nobias": lambda **kw: nn.GRUCell(3, 4, bias=False, **kw),
}


def _pair(kind: str, seed: int = 0):
    """(cell with dropout and a seeded rng, the same weights without dropout), float64."""
    np.random.seed(seed)
    cell = built_in_float64(lambda: MAKERS[kind](dropout=P_IN, recurrent_dropout=P_REC,
                                     rng=np.random.default_rng(seed)))
    plain = built_in_float64(lambda: MAKERS[kind]())
    plain.load_state_dict(cell.state_dict())
    return cell, plain


def _reference_step(plain, x_t, state, m_in, m_rec):
    """One step by the definition: the input and h masked where they enter the matmuls only."""
    x_t = x_t * m_in
    if isinstance(plain, nn.GRUCell):  # h also enters z * h, unmasked
        h = state
        gates_x = x_t @ plain.weight_ih.data.T + (0 if plain.bias_ih is None else
                                                   plain.bias_ih.data)
        gates_h = (h * m_rec) @ plain.weight_hh.data.T + (0 if plain.bias_hh is None else
                                                           plain.bias_hh.data)
        (xr, xz, xn), (hr, hz, hn) = np.split(gates_x, 3, 1), np.split(gates_h, 3, 1)
        r, z = 1 / (1 + np.exp(-(xr + hr))), 1 / (1 + np.exp(-(xz + hz)))
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h
    if isinstance(state, tuple):  # LSTM: h enters only the matmul; c is carried as is
        h, c = plain(x_t, (tg.Tensor(state[0] * m_rec), tg.Tensor(state[1])))
        return h.data, c.data
    return plain(x_t, tg.Tensor(state * m_rec)).data


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_masks_are_constant_over_time_and_the_carried_state_is_never_masked(kind,
                                                                             batch_first):
    cell, plain = _pair(kind)
    layer = nn.Recurrent(cell, return_sequences=True, return_state=True,
                         batch_first=batch_first)
    x = np.random.default_rng(5).standard_normal((3, 6, 3))
    out, final = layer(x if batch_first else x.transpose(1, 0, 2))
    out = out.data if batch_first else out.data.transpose(1, 0, 2)
    m_in, m_rec = cell.dropout_mask, cell.recurrent_dropout_mask
    assert m_in.shape == (3, 3) and m_rec.shape == (3, cell.recurrent_width())
    state = tuple(s.data for s in plain.initial_state(3)) if kind.startswith("lstm") else \
        plain.initial_state(3).data
    for t in range(6):  # the same two masks at every step; the state carried unmasked
        state = _reference_step(plain, x[:, t], state, m_in, m_rec)
        h = state[0] if isinstance(state, tuple) else state
        np.testing.assert_allclose(out[:, t], h, rtol=1e-12, atol=1e-14)
    for mine, ref in zip(final if isinstance(final, tuple) else (final,),
                         state if isinstance(state, tuple) else (state,)):
        np.testing.assert_allclose(mine.data, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_masks_come_from_the_seeded_rng_one_row_per_sequence_and_anew_per_call(kind):
    cell, _ = _pair(kind)
    layer = nn.Recurrent(cell, return_sequences=True)
    x = np.random.default_rng(1).standard_normal((5, 4, 3))
    cell.rng = np.random.default_rng(0)  # (its init used the first draws)
    first = layer(x).data
    m_in, m_rec = cell.dropout_mask, cell.recurrent_dropout_mask
    draw = np.random.default_rng(0)  # the cell's rng was default_rng(0): input mask first
    np.testing.assert_array_equal(m_in, (draw.random((5, 3)) >= P_IN) / (1 - P_IN))
    np.testing.assert_array_equal(m_rec, (draw.random(m_rec.shape) >= P_REC) / (1 - P_REC))
    assert len({row.tobytes() for row in m_rec}) > 1  # per sequence, not one for the batch
    second = layer(x).data
    assert not np.array_equal(cell.recurrent_dropout_mask, m_rec)  # drawn once per call
    assert not np.allclose(first, second)
    cell.rng = np.random.default_rng(0)
    np.testing.assert_array_equal(layer(x).data, first)  # seeded runs repeat


def test_kept_entries_are_scaled_by_one_over_keep_probability_as_keras():
    p = 0.25
    cell = nn.LSTMCell(50, 40, dropout=p, recurrent_dropout=p, rng=np.random.default_rng(3))
    nn.Recurrent(cell)(np.ones((2000, 2, 50), np.float32))
    for mask in (cell.dropout_mask, cell.recurrent_dropout_mask):
        assert set(np.unique(mask).tolist()) == {0.0, np.float32(1 / (1 - p))}
        assert abs((mask == 0).mean() - p) < 0.01  # each entry dropped with probability p
        assert abs(mask.mean() - 1.0) < 0.015  # inverted dropout: the expected scale is 1
    # so a masked input's projection keeps its expected value (Keras' inverted dropout)
    x = np.random.default_rng(4).standard_normal((1, 50)).astype(np.float32)
    masked = (x * cell.dropout_mask) @ cell.weight_ih.data.T
    np.testing.assert_allclose(masked.mean(0), (x @ cell.weight_ih.data.T)[0], atol=0.06)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_eval_mode_is_exactly_the_cell_without_dropout(kind):
    cell, plain = _pair(kind)
    layer, ref = nn.Recurrent(cell, return_sequences=True), nn.Recurrent(plain,
                                                                         return_sequences=True)
    x = np.random.default_rng(2).standard_normal((3, 5, 3))
    layer(x)  # a training call leaves masks behind
    layer.eval()
    before = np.random.get_state()[1].copy()
    np.testing.assert_array_equal(layer(x).data, ref(x).data)
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # nothing drawn


def test_rates_of_zero_draw_nothing_and_change_nothing():
    np.random.seed(0)
    cell = nn.GRUCell(3, 4)
    layer = nn.Recurrent(cell, return_sequences=True)
    x = np.random.randn(2, 5, 3).astype(np.float32)
    state = np.random.get_state()[1].copy()
    out = layer(x)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None
    assert out.shape == (2, 5, 4)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_gradcheck_module_passes_with_the_masks_held_fixed(kind):
    cell, _ = _pair(kind)
    layer = nn.Recurrent(cell, return_sequences=True)
    x = tg.Tensor(np.random.default_rng(3).standard_normal((2, 4, 3)), requires_grad=True)

    def loss():
        cell.rng = np.random.default_rng(11)  # the same masks at every evaluation
        return (layer(x) ** 2).sum()
    assert tg.gradcheck_module(layer, loss)
    loss()
    assert (cell.dropout_mask == 0).any() and (cell.recurrent_dropout_mask == 0).any()

    def run(xs):
        cell.rng = np.random.default_rng(11)
        return layer(xs)
    assert tg.gradcheck(run, [x])


def test_direct_calls_keep_their_masks_until_a_new_sequence_as_keras():
    cell, plain = _pair("lstm")
    x = np.random.default_rng(6).standard_normal((2, 3, 3))
    state = cell(x[:, 0])  # state=None: a new sequence, new masks
    m_in, m_rec = cell.dropout_mask, cell.recurrent_dropout_mask
    ref = _reference_step(plain, x[:, 0], tuple(s.data for s in plain.initial_state(2)),
                          m_in, m_rec)
    for t in (1, 2):
        state = cell(x[:, t], state)
        ref = _reference_step(plain, x[:, t], ref, m_in, m_rec)
        np.testing.assert_array_equal(cell.dropout_mask, m_in)
    np.testing.assert_allclose(state[0].data, ref[0], rtol=1e-12)
    cell.reset_dropout_mask()
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None
    cell(x[:, 0], state)
    assert not np.array_equal(cell.recurrent_dropout_mask, m_rec)
    cell(x[:1, 0], (state[0][:1], state[1][:1]))  # another batch: masks of its size
    assert cell.dropout_mask.shape == (1, 3)
    cell.eval()
    np.testing.assert_array_equal(cell(x[:, 0], state)[0].data, plain(x[:, 0], state)[0].data)


def test_direct_calls_with_recurrent_dropout_alone_keep_the_mask_and_follow_the_dtype():
    cell = nn.GRUCell(3, 4, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    x = np.ones((2, 3), np.float32)
    h = cell(x)
    mask = cell.recurrent_dropout_mask
    h = cell(x, h)
    np.testing.assert_array_equal(cell.recurrent_dropout_mask, mask)
    assert cell.dropout_mask is None and mask.dtype == np.float32
    cell.to(np.float64)
    h = cell(x.astype(np.float64), h.data.astype(np.float64))
    assert cell.recurrent_dropout_mask.dtype == np.float64 and h.dtype == np.float64


def test_a_subclass_stepping_through_forward_gets_the_same_masks():
    class Peeking(nn.LSTMCell):
        def forward(self, x_t, state):
            return super().forward(x_t, state)

    np.random.seed(0)
    fast = nn.LSTMCell(3, 4, dropout=P_IN, recurrent_dropout=P_REC,
                       rng=np.random.default_rng(9)).to(np.float64)
    slow = Peeking(3, 4, dropout=P_IN, recurrent_dropout=P_REC,
                   rng=np.random.default_rng(9)).to(np.float64)
    slow.load_state_dict(fast.state_dict())
    x = np.random.randn(2, 5, 3)
    np.testing.assert_allclose(nn.Recurrent(slow, return_sequences=True)(x).data,
                               nn.Recurrent(fast, return_sequences=True)(x).data, rtol=1e-12)


def test_lengths_keep_the_state_past_the_end_with_dropout_on():
    cell, _ = _pair("gru")
    layer = nn.Recurrent(cell, return_sequences=True, return_state=True)
    x = np.random.default_rng(8).standard_normal((2, 5, 3))
    out, h = layer(x, lengths=[5, 2])
    np.testing.assert_array_equal(h.data[1], out.data[1, 1])
    assert not out.data[1, 2:].any()


def test_stacks_take_recurrent_dropout_for_every_layer_and_direction():
    np.random.seed(0)
    lstm = nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2, recurrent_dropout=0.5)
    plain = nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2)
    plain.load_state_dict(lstm.state_dict())
    assert "recurrent_dropout=0.5" in repr(lstm)
    x = np.random.randn(5, 2, 3).astype(np.float32)
    out, _ = lstm(x)
    assert not np.allclose(out.data, plain(x)[0].data)

    class Holder(nn.Module):  # eval() from a parent reaches the stack's cells too
        def __init__(self):
            super().__init__()
            self.rnn = lstm
    Holder().eval()
    np.testing.assert_array_equal(lstm(x)[0].data, plain(x)[0].data)
    for make in (nn.RNN, nn.GRU):
        net = make(3, 4, recurrent_dropout=0.2)
        assert "recurrent_dropout=0.2" in repr(net)
        assert net(x)[0].shape == (5, 2, 4)


def test_a_stack_gradchecks_with_its_masks_held_by_the_global_seed():
    gru = built_in_float64(lambda: nn.GRU(3, 4, 2, bidirectional=True, recurrent_dropout=0.5))
    x = np.random.default_rng(0).standard_normal((4, 2, 3))

    def loss():
        np.random.seed(5)  # the stack's cells draw from numpy's global RNG (no rng given)
        out, h_n = gru(x)
        return (out ** 2).sum() + h_n.sum()
    assert tg.gradcheck_module(gru, loss)


def test_bidirectional_directions_draw_their_own_masks():
    np.random.seed(1)
    bi = nn.Bidirectional(nn.Recurrent(nn.GRUCell(3, 4, recurrent_dropout=0.5)))
    bi(np.random.randn(6, 2, 3).astype(np.float32))
    f, b = bi.forward_layer.cell, bi.backward_layer.cell
    assert f.recurrent_dropout == b.recurrent_dropout == 0.5
    assert not np.array_equal(f.recurrent_dropout_mask, b.recurrent_dropout_mask)


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("make, who", [(nn.RNNCell, "RNNCell"), (nn.LSTMCell, "LSTMCell"),
                                       (nn.GRUCell, "GRUCell")])
def test_bad_rates_are_refused_naming_the_cell_and_the_argument(make, who, name):
    for bad in (-0.1, 1, 1.0, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"{who}: {name} must be"):
            make(3, 4, **{name: bad})
    for bad in (True, "0.5", None, [0.1]):
        with pytest.raises(TypeError, match=rf"{who}: {name} must be a real number"):
            make(3, 4, **{name: bad})
    cell = make(3, 4, **{name: 0.5})
    with pytest.raises(ValueError, match=rf"{who}: {name} must be in \[0, 1\), got 1"):
        setattr(cell, name, 1.0)
    assert getattr(cell, name) == 0.5  # a refused value changes nothing
    with pytest.raises(TypeError, match=rf"{who}: rng must be a numpy Generator"):
        cell.rng = 3
    assert cell.rng is None


@pytest.mark.parametrize("make, who", [(nn.RNN, "RNN"), (nn.LSTM, "LSTM"), (nn.GRU, "GRU")])
def test_stacks_refuse_bad_recurrent_dropout_naming_themselves(make, who):
    with pytest.raises(ValueError, match=rf"{who}: recurrent_dropout must be in \[0, 1\), "
                                         r"got 1"):
        make(3, 4, recurrent_dropout=1.0)
    with pytest.raises(TypeError, match=rf"{who}: recurrent_dropout must be a real number"):
        make(3, 4, recurrent_dropout="0.1")


def test_a_stale_mask_of_another_batch_is_named_not_broadcast():
    cell = nn.RNNCell(3, 4, dropout=0.5)
    cell.begin_sequence(tg.Tensor(np.zeros((2, 5, 3), np.float32)), 1)
    with pytest.raises(ValueError, match=r"RNNCell: the dropout mask was drawn for a batch of "
                                         r"2, got input of shape \(1, 5, 3\)"):
        cell.project_inputs(tg.Tensor(np.zeros((1, 5, 3), np.float32)))
