"""Keras' variational dropout on the cells (dropout_rnn_cell.py and its test, the cells'
`dropout` / `recurrent_dropout`) as DESIGN.md defines it: one input mask and one recurrent mask
per sequence, drawn once per Recurrent call, reused at every step and by every gate; entries
0 or 1/(1-p); training mode only; rates in [0, 1) (Keras clips out-of-range rates silently;
DESIGN refuses them, naming the cell and the argument); masks from the cell's rng or numpy's
global RNG.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn

CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def _cell(kind: str, p: float = 0.3, q: float = 0.4, seed: int = 0, **kw):
    np.random.seed(seed)
    return CELLS[kind](3, 4, dropout=p, recurrent_dropout=q, rng=np.random.default_rng(seed),
                       **kw).to(np.float64)


def _x(batch: int = 2, steps: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, steps, 3))


def _sig(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _lstm_by_gates(cell, x: np.ndarray, m_in: np.ndarray, m_rec: np.ndarray) -> np.ndarray:
    """LSTM outputs computed gate by gate, each gate reading the same masked x and h."""
    w_ih, w_hh = cell.weight_ih.data, cell.weight_hh.data
    b = cell.bias_ih.data + cell.bias_hh.data
    h = c = np.zeros((x.shape[0], cell.hidden_size))
    outs = []
    for t in range(x.shape[1]):
        xm, hm = x[:, t] * m_in, h * m_rec
        g = [xm @ w_ih[k * 4:(k + 1) * 4].T + hm @ w_hh[k * 4:(k + 1) * 4].T + b[k * 4:(k + 1) * 4]
             for k in range(4)]
        c = _sig(g[1]) * c + _sig(g[0]) * np.tanh(g[2])
        h = _sig(g[3]) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1)


def test_every_lstm_gate_reads_the_same_masks_at_every_step():
    cell = _cell("lstm")
    out = nn.Recurrent(cell, return_sequences=True)(_x())
    want = _lstm_by_gates(cell, _x(), cell.dropout_mask, cell.recurrent_dropout_mask)
    np.testing.assert_allclose(out.data, want, atol=1e-12)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_a_dropped_input_feature_gets_no_gradient_at_any_step(kind):
    """One mask per sequence: feature j of sequence b is dropped at every step or at none."""
    cell = _cell(kind, p=0.5, q=0.0)
    x = tg.Tensor(_x(batch=6), requires_grad=True)
    nn.Recurrent(cell, return_sequences=True)(x).sum().backward()
    dropped = cell.dropout_mask == 0  # (B, I)
    assert dropped.any() and (~dropped).any()
    assert not x.grad.transpose(0, 2, 1)[dropped].any()
    assert np.abs(x.grad.transpose(0, 2, 1)[~dropped]).min(axis=-1).all()


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.8])
@pytest.mark.parametrize("which", ["dropout", "recurrent_dropout"])
def test_mask_entries_are_zero_or_the_inverse_keep_probability(which, p):
    cell = nn.LSTMCell(3, 4, rng=np.random.default_rng(0), **{which: p})
    nn.Recurrent(cell)(_x().astype(np.float32))
    mask = cell.dropout_mask if which == "dropout" else cell.recurrent_dropout_mask
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(np.unique(mask)[np.unique(mask) != 0],
                                  np.float32(1.0 / (1.0 - p)))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drop_fraction_and_mean_scale_match_the_rate(p):
    """Over 40,000 entries the dropped fraction is p and the mean entry 1 (inverted dropout
    keeps expectations), within 5 standard deviations of the binomial."""
    cell = nn.GRUCell(200, 200, dropout=p, recurrent_dropout=p, rng=np.random.default_rng(3))
    nn.Recurrent(cell)(np.ones((200, 2, 200), np.float32))
    n = 200 * 200
    for mask in (cell.dropout_mask, cell.recurrent_dropout_mask):
        frac = float((mask == 0).mean())
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / n)
        assert abs(float(mask.mean(dtype=np.float64)) - 1.0) < 5 * np.sqrt(p / (1 - p) / n)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_each_sequence_draws_its_own_mask_and_each_call_new_ones(kind):
    cell = _cell(kind, p=0.5, q=0.5)
    layer = nn.Recurrent(cell)
    layer(_x(batch=8))
    first_in, first_rec = cell.dropout_mask, cell.recurrent_dropout_mask
    assert first_in.shape == (8, 3) and first_rec.shape == (8, 4)
    assert len({row.tobytes() for row in first_rec}) > 1
    layer(_x(batch=8))
    assert not np.array_equal(cell.recurrent_dropout_mask, first_rec)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_eval_mode_draws_nothing_and_equals_the_cell_without_dropout(kind):
    cell = _cell(kind)
    plain = CELLS[kind](3, 4).to(np.float64)
    plain.load_state_dict(cell.state_dict())
    layer = nn.Recurrent(cell, return_sequences=True)
    layer(_x())
    layer.eval()
    state = cell.rng.bit_generator.state
    np.testing.assert_array_equal(layer(_x()).data,
                                  nn.Recurrent(plain, return_sequences=True)(_x()).data)
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None
    assert cell.rng.bit_generator.state == state  # nothing drawn
    layer.train()
    assert not np.array_equal(layer(_x()).data,
                              nn.Recurrent(plain, return_sequences=True)(_x()).data)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_training_mode_output_differs_from_eval_and_repeats_with_the_seed(kind):
    outs = []
    for _ in range(2):
        outs.append(nn.Recurrent(_cell(kind, seed=7), return_sequences=True)(_x()).data)
    np.testing.assert_array_equal(outs[0], outs[1])
    layer = nn.Recurrent(_cell(kind, seed=7), return_sequences=True)
    layer.eval()
    assert not np.allclose(layer(_x()).data, outs[0])


def test_the_global_rng_seeds_masks_when_a_cell_has_none():
    def run():
        np.random.seed(11)
        cell = nn.LSTMCell(3, 4, dropout=0.5, recurrent_dropout=0.5)
        return nn.Recurrent(cell)(_x().astype(np.float32)).data
    np.testing.assert_array_equal(run(), run())


def test_rates_of_zero_draw_nothing_from_the_rng():
    cell = nn.GRUCell(3, 4, rng=np.random.default_rng(0))
    state = cell.rng.bit_generator.state
    nn.Recurrent(cell)(_x().astype(np.float32))
    assert cell.rng.bit_generator.state == state
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None


def test_setting_a_rate_to_zero_later_stops_the_masks():
    cell = _cell("gru")
    layer = nn.Recurrent(cell)
    layer(_x())
    cell.dropout, cell.recurrent_dropout = 0.0, 0.0
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None
    plain = nn.GRUCell(3, 4).to(np.float64)
    plain.load_state_dict(cell.state_dict())
    np.testing.assert_array_equal(layer(_x()).data, nn.Recurrent(plain)(_x()).data)


@pytest.mark.parametrize("good", [0, 0.0, 0.5, 0.999, np.float32(0.25), np.float64(0.1)])
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
def test_rates_in_zero_one_are_taken(name, good):
    cell = nn.GRUCell(3, 4, **{name: good})
    assert getattr(cell, name) == float(good) and isinstance(getattr(cell, name), float)


@pytest.mark.parametrize("bad, error, message", [
    (1.0, ValueError, r"must be in \[0, 1\), got 1"),
    (1.5, ValueError, r"must be in \[0, 1\), got 1.5"),
    (-0.2, ValueError, r"must be in \[0, 1\), got -0.2"),
    (float("nan"), ValueError, r"must be a number, got nan"),
    ("0.2", TypeError, r"must be a real number, got str"),
    (True, TypeError, r"must be a real number, got bool"),
])
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
def test_rates_outside_zero_one_are_refused_naming_cell_and_argument(name, kind, bad, error,
                                                                     message):
    who = CELLS[kind].__name__
    with pytest.raises(error, match=rf"{who}: {name} {message}"):
        CELLS[kind](3, 4, **{name: bad})


def test_a_masked_step_keeps_the_state_with_dropout_on():
    cell = _cell("lstm")
    mask = np.array([[1, 0, 1, 0, 0], [0, 1, 1, 1, 0]], bool)
    seen = []
    layer = nn.Recurrent(cell, return_sequences=True)
    layer.step_observers.append(lambda layer_, d, t, s: seen.append([p.data for p in s]))
    out = layer(_x(), mask=mask)
    assert not out.data[~mask].any()
    for t in range(1, 5):
        for i in range(2):
            if not mask[i, t]:
                np.testing.assert_array_equal(seen[t][0][i], seen[t - 1][0][i])
                np.testing.assert_array_equal(seen[t][1][i], seen[t - 1][1][i])


def test_bidirectional_directions_draw_independent_masks_from_a_seeded_rng():
    cell = nn.GRUCell(3, 4, dropout=0.5, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    bi = nn.Bidirectional(nn.Recurrent(cell))
    assert bi.backward_layer.cell.rng is not cell.rng
    bi(_x(batch=6).astype(np.float32))
    f, b = bi.forward_layer.cell, bi.backward_layer.cell
    assert not np.array_equal(f.dropout_mask, b.dropout_mask)
    assert not np.array_equal(f.recurrent_dropout_mask, b.recurrent_dropout_mask)


def test_a_bidirectional_with_seeded_cells_repeats_run_for_run():
    def run():
        np.random.seed(2)
        cell = nn.LSTMCell(3, 4, dropout=0.3, recurrent_dropout=0.3,
                           rng=np.random.default_rng(5))
        return nn.Bidirectional(nn.Recurrent(cell, return_sequences=True))(
            _x().astype(np.float32)).data
    np.testing.assert_array_equal(run(), run())


def test_a_seeded_forward_layer_draws_the_same_masks_inside_a_bidirectional_as_alone():
    """Giving the backward copy its own stream takes nothing from the forward one."""
    x = _x().astype(np.float32)
    alone = nn.GRUCell(3, 4, dropout=0.4, rng=np.random.default_rng(8))
    nn.Recurrent(alone)(x)
    inside = nn.GRUCell(3, 4, dropout=0.4, rng=np.random.default_rng(8))
    nn.Bidirectional(nn.Recurrent(inside))(x)
    np.testing.assert_array_equal(inside.dropout_mask, alone.dropout_mask)


def test_lstm_projection_masks_the_p_wide_h():
    cell = nn.LSTMCell(3, 4, proj_size=2, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    nn.Recurrent(cell)(_x().astype(np.float32))
    assert cell.recurrent_dropout_mask.shape == (2, 2)


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_a_stacks_layers_and_directions_draw_their_own_recurrent_masks(cls):
    np.random.seed(0)
    net = cls(3, 4, num_layers=2, bidirectional=True, recurrent_dropout=0.5)
    net(_x(batch=6).transpose(1, 0, 2).astype(np.float32))
    masks = [c.recurrent_dropout_mask.tobytes() for c in net._cells]
    assert len(set(masks)) == 4
    net.eval()
    net(_x(batch=6).transpose(1, 0, 2).astype(np.float32))
    assert all(c.recurrent_dropout_mask is None for c in net._cells)


def test_direct_calls_reuse_masks_and_reset_recurrent_keeps_the_input_mask():
    """Keras' reset_recurrent_dropout_mask forgets only the recurrent mask; the next call
    draws that one and reuses the input mask."""
    cell = nn.LSTMCell(3, 4, dropout=0.5, recurrent_dropout=0.5, rng=np.random.default_rng(1))
    x = _x().astype(np.float32)
    state = cell(x[:, 0])
    m_in, m_rec = cell.dropout_mask, cell.recurrent_dropout_mask
    state = cell(x[:, 1], state)
    np.testing.assert_array_equal(cell.dropout_mask, m_in)
    np.testing.assert_array_equal(cell.recurrent_dropout_mask, m_rec)
    cell.reset_recurrent_dropout_mask()
    assert cell.recurrent_dropout_mask is None
    np.testing.assert_array_equal(cell.dropout_mask, m_in)
    cell(x[:, 2], state)
    np.testing.assert_array_equal(cell.dropout_mask, m_in)
    assert cell.recurrent_dropout_mask is not None
    assert not np.array_equal(cell.recurrent_dropout_mask, m_rec)
    cell.reset_dropout_mask()  # ours forgets both
    assert cell.dropout_mask is None and cell.recurrent_dropout_mask is None


def test_gradcheck_holds_with_the_masks_fixed_by_the_seed():
    cell = _cell("gru")
    layer = nn.Recurrent(cell, return_sequences=True)

    def loss():
        cell.rng = np.random.default_rng(4)
        return (layer(_x()) ** 2).sum()
    assert tg.gradcheck_module(layer, loss)


def test_a_bidirectional_copy_of_a_randomstate_cell_gets_its_own_randomstate():
    cell = nn.GRUCell(3, 4, dropout=0.5, rng=np.random.RandomState(0))
    bi = nn.Bidirectional(nn.Recurrent(cell))
    copy_rng = bi.backward_layer.cell.rng
    assert isinstance(copy_rng, np.random.RandomState) and copy_rng is not cell.rng
    bi(_x(batch=6).astype(np.float32))
    assert not np.array_equal(cell.dropout_mask, bi.backward_layer.cell.dropout_mask)


# ---- Keras' per-call `training` ---------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_training_false_for_one_call_is_the_cell_without_dropout_and_the_mode_comes_back(kind):
    cell = _cell(kind)
    plain = CELLS[kind](3, 4).to(np.float64)
    plain.load_state_dict(cell.state_dict())
    layer = nn.Recurrent(cell, return_sequences=True)
    np.testing.assert_array_equal(layer(_x(), training=False).data,
                                  nn.Recurrent(plain, return_sequences=True)(_x()).data)
    assert layer.training and cell.training  # the module's own mode is back
    assert not np.allclose(layer(_x()).data, layer(_x(), training=False).data)


def test_training_true_for_one_call_of_an_eval_layer_draws_the_masks():
    cell = _cell("lstm")
    layer = nn.Recurrent(cell)
    layer.eval()
    on = layer(_x(), training=True).data
    assert cell.dropout_mask is not None and not cell.training
    assert not np.allclose(on, layer(_x()).data)


def test_bidirectional_passes_training_to_both_directions():
    np.random.seed(0)
    cell = nn.GRUCell(3, 4, dropout=0.5, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    bi = nn.Bidirectional(nn.Recurrent(cell))
    bi.eval()
    bi(_x().astype(np.float32), training=True)
    assert bi.forward_layer.cell.dropout_mask is not None
    assert bi.backward_layer.cell.dropout_mask is not None
    assert not bi.forward_layer.cell.training and not bi.backward_layer.cell.training


@pytest.mark.parametrize("who, make", [
    ("Recurrent", lambda: nn.Recurrent(nn.GRUCell(3, 4), stateful=True)),
    ("Bidirectional", lambda: nn.Bidirectional(nn.Recurrent(nn.GRUCell(3, 4), stateful=True)))])
@pytest.mark.parametrize("bad", [1, "yes", 0.0])
def test_a_bad_training_flag_is_refused_before_anything_changes(who, make, bad):
    layer = make()
    x = _x().astype(np.float32)
    layer(x)
    kept = [s.data.copy() for s in (layer.states if who == "Bidirectional" else [layer.states])]
    with pytest.raises(TypeError, match=rf"{who}: training must be a bool, got"):
        layer(x, training=bad)
    now = layer.states if who == "Bidirectional" else [layer.states]
    for s, k in zip(now, kept):
        np.testing.assert_array_equal(s.data, k)
