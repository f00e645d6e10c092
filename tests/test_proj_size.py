"""LSTM projections (proj_size) without torch: shapes, gradients by central differences, the
cell on its own (Recurrent, Bidirectional), lengths, and the errors that name the culprit."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import built_in_float64

import tinygrad_rnn as tg
from tinygrad_rnn import nn


def test_cell_layout_state_and_parameter_order():
    cell = nn.LSTMCell(3, 5, proj_size=2)
    assert {k: v.shape for k, v in cell.state_dict().items()} == {
        "weight_ih": (20, 3), "weight_hh": (20, 2), "bias_ih": (20,), "bias_hh": (20,),
        "weight_hr": (2, 5)}
    assert list(cell.state_dict())[-1] == "weight_hr"  # after the biases, as torch
    h, c = cell(np.zeros((4, 3), np.float32))
    assert h.shape == (4, 2) and c.shape == (4, 5)
    h0, c0 = cell.initial_state(3)
    assert h0.shape == (3, 2) and c0.shape == (3, 5)
    assert "proj_size=2" in repr(cell)
    assert nn.LSTMCell(3, 5).proj_size == 0 and "weight_hr" not in nn.LSTMCell(3, 5).state_dict()


def test_cell_step_is_the_projected_lstm_step():
    np.random.seed(0)
    cell = built_in_float64(lambda: nn.LSTMCell(3, 4, proj_size=2))
    plain = built_in_float64(lambda: nn.LSTMCell(3, 4))
    x, h, c = np.random.randn(2, 3), np.random.randn(2, 2), np.random.randn(2, 4)
    # the unprojected cell whose weight_hh reads the 2-wide h through zero-padded columns
    sd = cell.state_dict()
    plain.load_state_dict({**{k: sd[k] for k in ("weight_ih", "bias_ih", "bias_hh")},
                           "weight_hh": np.pad(sd["weight_hh"], ((0, 0), (0, 2)))})
    h_full, c_ref = plain(x, (np.pad(h, ((0, 0), (0, 2))), c))
    h_new, c_new = cell(x, (h, c))
    np.testing.assert_allclose(c_new.data, c_ref.data, rtol=1e-12)
    np.testing.assert_allclose(h_new.data, h_full.data @ sd["weight_hr"].T, rtol=1e-12)


def test_recurrent_and_stack_gradients_by_central_differences():
    np.random.seed(1)
    layer = built_in_float64(lambda: nn.Recurrent(nn.LSTMCell(3, 4, proj_size=2), return_state=True))
    x = tg.Tensor(np.random.randn(2, 5, 3), requires_grad=True)

    def loss():
        out, (_, c) = layer(x)
        return (out ** 2).sum() + (c * c).sum()
    assert tg.gradcheck_module(layer, loss)
    assert tg.gradcheck(lambda xs: layer(xs)[0], [x])
    stack = built_in_float64(lambda: nn.LSTM(3, 4, 2, proj_size=3, bidirectional=True, batch_first=True))
    assert tg.gradcheck_module(stack, lambda: (stack(x)[0] ** 2).sum())


def test_bidirectional_of_a_projected_cell():
    np.random.seed(2)
    bi = nn.Bidirectional(nn.Recurrent(nn.LSTMCell(3, 4, proj_size=2), return_sequences=True,
                                       return_state=True))
    out, ((hf, cf), (hb, cb)) = bi(np.random.randn(2, 5, 3).astype(np.float32))
    assert out.shape == (2, 5, 4) and hf.shape == hb.shape == (2, 2)
    assert cf.shape == cb.shape == (2, 4)
    assert bi.backward_layer.cell.weight_hr.shape == (2, 4)


def test_lengths_with_proj_size_equal_running_each_sequence_alone():
    np.random.seed(3)
    lstm = nn.LSTM(3, 4, proj_size=2, bidirectional=True, batch_first=True).to(np.float64)
    x = np.random.randn(2, 5, 3)
    out, (h_n, c_n) = lstm(x, lengths=[5, 3])
    alone, (h_a, c_a) = lstm(x[1:, :3])
    np.testing.assert_allclose(out.data[1, :3], alone.data[0], rtol=1e-10)
    np.testing.assert_allclose(h_n.data[:, 1], h_a.data[:, 0], rtol=1e-10)
    np.testing.assert_allclose(c_n.data[:, 1], c_a.data[:, 0], rtol=1e-10)
    assert not out.data[1, 3:].any()


def test_hx_parts_are_checked_each_against_its_own_width():
    lstm = nn.LSTM(3, 5, 2, proj_size=2)
    x = np.zeros((4, 2, 3), np.float32)
    h0, c0 = np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 5), np.float32)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    assert out.shape == (4, 2, 2) and h_n.shape == (2, 2, 2) and c_n.shape == (2, 2, 5)
    with pytest.raises(ValueError, match=r"LSTM: expected hx of shape \(2, 2, 5\) .*"
                                         r"hidden_size\) for c_0, got \(2, 2, 2\)"):
        lstm(x, (h0, h0))
    with pytest.raises(ValueError, match=r"LSTM: expected hx of shape \(2, 2\) .*proj_size\) "
                                         r"for h_0, got \(2, 5\)"):
        lstm(x[:, 0], (c0[:, 0], c0[:, 0]))  # unbatched
    out, (h_n, c_n) = lstm(x[:, 0], (h0[:, 0], c0[:, 0]))
    assert out.shape == (4, 2) and h_n.shape == (2, 2) and c_n.shape == (2, 5)


def test_cell_state_of_the_wrong_width_names_the_part():
    cell = nn.LSTMCell(3, 5, proj_size=2)
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"LSTMCell: state h has shape \(4, 5\), expected "
                                         r"\(4, 2\) \(batch 4, hidden_size 5, proj_size 2\)"):
        cell(x, (np.zeros((4, 5), np.float32), np.zeros((4, 5), np.float32)))
    layer = nn.Recurrent(cell)
    with pytest.raises(ValueError, match=r"initial_state c has shape \(4, 2\), expected "
                                         r"\(4, 5\)"):
        layer(np.zeros((4, 6, 3), np.float32), (np.zeros((4, 2), np.float32),) * 2)


@pytest.mark.parametrize("who, build", [
    ("LSTMCell", lambda p: nn.LSTMCell(3, 5, proj_size=p)),
    ("LSTM", lambda p: nn.LSTM(3, 5, 2, proj_size=p)),
])
def test_bad_proj_size_names_it(who, build):
    with pytest.raises(ValueError, match=f"{who}: proj_size should be a positive integer or "
                                         f"zero to disable projections, got -2"):
        build(-2)
    with pytest.raises(ValueError, match=f"{who}: proj_size has to be smaller than hidden_size, "
                                         f"got proj_size 5 and hidden_size 5"):
        build(5)
    for bad in (2.0, True, "2", None):
        with pytest.raises(TypeError, match=f"{who}: proj_size must be an int"):
            build(bad)


def test_replaced_weight_hr_of_the_wrong_shape_is_named_and_nothing_runs():
    lstm = nn.LSTM(3, 5, proj_size=2)
    before = lstm.state_dict()
    lstm.weight_hr_l0 = nn.Parameter(np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match=r"LSTM: parameter weight_hr has shape \(5, 5\), "
                                         r"expected \(2, 5\) .*proj_size 2"):
        lstm(np.zeros((4, 2, 3), np.float32))
    assert lstm.weight_hr_l0.grad is None
    assert all(np.array_equal(before[k], v) for k, v in lstm.state_dict().items()
               if k != "weight_hr_l0")


def test_a_load_of_the_wrong_weight_hr_shape_changes_nothing():
    lstm = nn.LSTM(3, 5, proj_size=2)
    before = lstm.state_dict()
    bad = {**before, "weight_hr_l0": np.zeros((5, 5), np.float32)}
    with pytest.raises(ValueError, match=r"weight_hr_l0"):
        lstm.load_state_dict(bad)
    assert all(np.array_equal(before[k], v) for k, v in lstm.state_dict().items())


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU])
@pytest.mark.parametrize("proj_size", [0, 2, 1.0])
def test_rnn_and_gru_refuse_proj_size_as_torch(cls, proj_size):
    """torch.nn.GRU(3, 4, proj_size=0) is a ValueError too: the keyword is LSTM's alone."""
    with pytest.raises(ValueError, match=f"{cls.__name__}: proj_size argument is only supported "
                                         f"for LSTM"):
        cls(3, 4, proj_size=proj_size)
