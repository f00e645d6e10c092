"""Recurrent, Bidirectional and the stacks: shapes, alignment, merges, BPTT, labels, errors."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.engine import toposort
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    Recurrent,
    RNNCell,
)


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("seqs, state", [(False, False), (True, False), (False, True),
                                         (True, True)])
def test_return_sequences_and_state_shapes(seqs, state):
    layer = Recurrent(LSTMCell(3, 4), return_sequences=seqs, return_state=state)
    out = layer(_x(2, 5, 3))
    if state:
        out, (h, c) = out
        assert h.shape == c.shape == (2, 4)
    assert out.shape == ((2, 5, 4) if seqs else (2, 4))


def test_time_major_layout_matches_batch_first():
    cell = GRUCell(3, 4).to(np.float64)
    x = _x(2, 5, 3)
    bf = Recurrent(cell, return_sequences=True)(x)
    tm = Recurrent(cell, return_sequences=True, batch_first=False)(x.transpose(1, 0, 2))
    np.testing.assert_allclose(tm.data.transpose(1, 0, 2), bf.data, rtol=1e-12)


def test_last_output_is_last_sequence_output_and_state():
    layer = Recurrent(GRUCell(3, 4).to(np.float64), return_sequences=True, return_state=True)
    seq, h = layer(_x(2, 5, 3))
    np.testing.assert_array_equal(seq.data[:, -1], h.data)


def test_reverse_outputs_are_aligned_with_input_positions():
    cell = RNNCell(3, 4).to(np.float64)
    x = _x(2, 6, 3)
    rev, last = Recurrent(cell, return_sequences=True, return_state=True, reverse=True)(x)
    flipped = Recurrent(cell, return_sequences=True)(x[:, ::-1].copy())
    np.testing.assert_allclose(rev.data, flipped.data[:, ::-1], rtol=1e-12)
    np.testing.assert_array_equal(last.data, rev.data[:, 0])  # torch h_n: after position 0


def test_initial_state_is_used():
    cell = LSTMCell(2, 3).to(np.float64)
    x = _x(2, 4, 2)
    h0, c0 = _x(2, 3, seed=1), _x(2, 3, seed=2)
    out = Recurrent(cell)(x, initial_state=(h0, c0))
    state = (tg.Tensor(h0), tg.Tensor(c0))
    for t in range(4):
        state = cell(x[:, t], state)
    np.testing.assert_allclose(out.data, state[0].data, rtol=1e-12)


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(mode):
    np.random.seed(0)
    bi = Bidirectional(Recurrent(GRUCell(3, 4).to(np.float64), return_sequences=True), mode)
    x = _x(2, 5, 3)
    out = bi(x)
    fwd = bi.forward_layer(x).data
    bwd = Recurrent(bi.backward_layer.cell, return_sequences=True, reverse=True)(x).data
    expected = {"concat": lambda: np.concatenate([fwd, bwd], -1), "sum": lambda: fwd + bwd,
                "mul": lambda: fwd * bwd, "ave": lambda: (fwd + bwd) / 2}
    if mode is None:
        assert isinstance(out, list) and len(out) == 2
        np.testing.assert_allclose(out[0].data, fwd)
        np.testing.assert_allclose(out[1].data, bwd)
    else:
        np.testing.assert_allclose(out.data, expected[mode](), rtol=1e-12)


def test_bidirectional_copy_is_independent_and_named():
    bi = Bidirectional(Recurrent(LSTMCell(3, 4), return_state=True))
    assert bi.backward_layer.reverse and not bi.forward_layer.reverse
    names = list(bi.state_dict())
    assert names[0] == "forward_layer.cell.weight_ih" and len(names) == 8
    assert "backward_layer.cell.bias_hh" in names
    f, b = bi.forward_layer.cell.weight_hh, bi.backward_layer.cell.weight_hh
    assert f is not b and not np.array_equal(f.data, b.data)
    out, ((hf, _), (hb, cb)) = bi(_x(2, 5, 3))
    assert out.shape == (2, 8) and hf.shape == hb.shape == cb.shape == (2, 4)
    np.testing.assert_allclose(out.data, np.concatenate([hf.data, hb.data], -1))


def test_bidirectional_initial_state_is_a_forward_backward_pair():
    bi = Bidirectional(Recurrent(GRUCell(3, 4), return_state=True)).to(np.float64)
    x, h_f, h_b = _x(2, 5, 3), _x(2, 4, seed=1), _x(2, 4, seed=2)
    out, (f, b) = bi(x, initial_state=(h_f, h_b))
    np.testing.assert_allclose(out.data, np.concatenate([f.data, b.data], -1))
    np.testing.assert_allclose(f.data, bi.forward_layer(x, h_f)[1].data)
    np.testing.assert_allclose(b.data, bi.backward_layer(x, h_b)[1].data)
    assert not np.allclose(b.data, bi.backward_layer(x)[1].data)


class Readout(Module):
    """2-layer bidirectional LSTM over time-major x, Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = LSTM(2, 3, num_layers=2, bidirectional=True)
        self.head = Linear(6, 1)

    def forward(self, x):
        out, (_, c) = self.lstm(x)
        return self.head(out[-1]).sum() + (c ** 2).sum()


def test_gradcheck_module_on_two_layer_bidirectional_lstm_readout():
    np.random.seed(0)
    model = Readout()
    x = _x(4, 2, 2)
    assert tg.gradcheck_module(model, lambda: model(x))


def test_gradcheck_input_through_bidirectional_gru_stack():
    np.random.seed(1)
    gru = GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True).to(np.float64)
    x = tg.Tensor(_x(2, 3, 2), requires_grad=True)
    h0 = tg.Tensor(_x(4, 2, 3, seed=5), requires_grad=True)
    assert tg.gradcheck(lambda x, h0: gru(x, h0)[0], [x, h0])


def test_long_unroll_backpropagates_without_recursion():
    np.random.seed(0)
    layer = Recurrent(RNNCell(2, 3))
    x = tg.Tensor(_x(1, 2000, 2).astype(np.float32) * 0.1, requires_grad=True)
    layer(x).sum().backward()
    assert np.isfinite(x.grad).all() and np.abs(x.grad[0, -1]).sum() > 0
    assert layer.cell.weight_hh.grad.shape == (3, 3)


def test_step_observers_see_every_step_with_labels():
    seen = []
    layer = Recurrent(LSTMCell(2, 3), reverse=True)
    layer.step_observers.append(lambda *a: seen.append(a))
    layer(_x(2, 4, 2))
    assert [(k, d, t) for k, d, t, _ in seen] == [(0, "backward", t) for t in (3, 2, 1, 0)]
    assert all(isinstance(s, tuple) and s[0].shape == (2, 3) for *_, s in seen)


def test_stack_observers_report_layer_and_direction():
    seen = []
    rnn = RNN(2, 3, num_layers=2, bidirectional=True)
    rnn.step_observers.append(lambda k, d, t, s: seen.append((k, d, t, s.shape)))
    rnn(_x(3, 2, 2))
    assert len(seen) == 2 * 2 * 3
    assert seen[:3] == [(0, "forward", t, (2, 3)) for t in range(3)]
    assert seen[-3:] == [(1, "backward", t, (2, 3)) for t in (2, 1, 0)]


def _scopes(root: tg.Tensor) -> set[tuple[str, ...]]:
    return {n._scope for n in toposort(root) if n._op is not None}


def test_graph_scopes_label_every_step():
    layer = Recurrent(GRUCell(2, 3), return_sequences=True)
    x = tg.Tensor(_x(1, 3, 2).astype(np.float32), requires_grad=True)
    scopes = _scopes(layer(x).sum())
    assert {("dir=forward", f"t={t}") for t in range(3)} <= scopes
    bi = Bidirectional(Recurrent(GRUCell(2, 3)))
    assert ("dir=backward", "t=0") in _scopes(bi(x).sum())


def test_stack_graph_scopes_name_layer_direction_and_step():
    lstm = LSTM(2, 3, num_layers=2, bidirectional=True)
    x = tg.Tensor(_x(3, 1, 2).astype(np.float32), requires_grad=True)
    scopes = _scopes(lstm(x)[0].sum())
    assert ("layer=1", "dir=backward", "t=0") in scopes
    assert ("layer=0", "dir=forward", "t=2") in scopes
    assert all(s[0].startswith("layer=") for s in scopes if s)


def test_dropout_between_layers_only_in_training():
    np.random.seed(0)
    lstm = LSTM(2, 4, num_layers=2, dropout=0.5)
    plain = LSTM(2, 4, num_layers=2)
    plain.load_state_dict(lstm.state_dict())
    x = _x(3, 2, 2).astype(np.float32)
    lstm.dropout_rng = np.random.default_rng(0)
    assert not np.allclose(lstm(x)[0].data, plain(x)[0].data)
    lstm.eval()
    np.testing.assert_allclose(lstm(x)[0].data, plain(x)[0].data)


def test_unbatched_stack_input_matches_batch_of_one():
    gru = GRU(2, 3, bidirectional=True).to(np.float64)
    x, h0 = _x(4, 2), _x(2, 3, seed=1)
    out, h = gru(x, h0)
    out_b, h_b = gru(x[:, None], h0[:, None])
    assert out.shape == (4, 6) and h.shape == (2, 3)
    np.testing.assert_allclose(out.data, out_b.data[:, 0])
    np.testing.assert_allclose(h.data, h_b.data[:, 0])


def test_bad_inputs_raise_errors_that_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Recurrent: expected a non-empty 3-D .*\(2, 3\)"):
        Recurrent(RNNCell(3, 4))(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Recurrent: .*input_size\) 3, got 5"):
        Recurrent(RNNCell(3, 4))(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"LSTM: expected input width .*4, got 3"):
        LSTM(4, 2)(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"GRU: expected hx of shape \(2, 2, 3\).*\(1, 2, 3\)"):
        GRU(4, 3, num_layers=2)(np.zeros((5, 2, 4)), np.zeros((1, 2, 3)))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple"):  # one tensor, not (h, c)
        LSTM(4, 3)(np.zeros((5, 2, 4)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"RNN: expected a non-empty 3-D"):
        RNN(4, 3)(np.zeros((1, 5, 2, 4)))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[0, 5\]"):
        Recurrent(RNNCell(3, 4))(np.zeros((3, 4, 3)), lengths=[0, 5, 2])
    with pytest.raises(ValueError, match=r"LSTM: lengths must be in \[1, T=5\], got \[6\]"):
        LSTM(4, 2)(np.zeros((5, 2, 4)), lengths=[6, 1])
    with pytest.raises(ValueError, match=r"lengths must be 2 integers"):
        GRU(4, 2)(np.zeros((5, 2, 4)), lengths=[3])
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(Recurrent(RNNCell(3, 4)), merge_mode="max")
    with pytest.raises(TypeError, match="Recurrent: cell must be a Cell"):
        Recurrent(Linear(3, 4))
    with pytest.raises(ValueError, match="RNN: nonlinearity"):
        RNN(3, 4, nonlinearity="gelu")
