"""Stateful layers (Keras `stateful=True`): a call starts where the last one ended (gradients
stop at the boundary); reset_states() starts afresh; another batch size is refused and leaves
the kept state as it was."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import GRU, LSTM, Bidirectional, GRUCell, LSTMCell, Recurrent, RNNCell


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _flat(state) -> list[tg.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("make", [lambda: RNNCell(3, 4), lambda: LSTMCell(3, 4),
                                  lambda: GRUCell(3, 4)])
def test_two_calls_on_halves_equal_one_call_on_the_whole(make):
    cell = make().to(np.float64)
    x = _x(2, 8, 3)
    whole, final = Recurrent(cell, return_sequences=True, return_state=True)(x)
    layer = Recurrent(cell, return_sequences=True, return_state=True, stateful=True)
    first, _ = layer(x[:, :5])
    second, state = layer(x[:, 5:])
    np.testing.assert_allclose(np.concatenate([first.data, second.data], 1), whole.data,
                               atol=1e-12)
    for s, f in zip(_flat(state), _flat(final)):
        np.testing.assert_allclose(s.data, f.data, atol=1e-12)
    for kept, s in zip(_flat(layer.states), _flat(state)):
        np.testing.assert_array_equal(kept.data, s.data)


def test_time_first_and_masked_calls_carry_the_state_too():
    cell = GRUCell(3, 4).to(np.float64)
    x = _x(2, 6, 3)
    mask = np.array([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 1]], bool)
    whole = Recurrent(cell, batch_first=False)(x.transpose(1, 0, 2), mask=mask)
    layer = Recurrent(cell, batch_first=False, stateful=True)
    layer(x[:, :3].transpose(1, 0, 2), mask=mask[:, :3])
    second = layer(x[:, 3:].transpose(1, 0, 2), mask=mask[:, 3:])
    np.testing.assert_allclose(second.data, whole.data, atol=1e-12)


def test_gradients_stop_at_the_call_boundary():
    cell = LSTMCell(3, 4).to(np.float64)
    layer = Recurrent(cell, stateful=True)
    x1 = tg.Tensor(_x(2, 4, 3), requires_grad=True)
    x2 = tg.Tensor(_x(2, 4, 3, seed=1), requires_grad=True)
    layer(x1)
    kept = layer.states
    assert all(not s.requires_grad for s in kept)  # detached: no graph into the first call
    layer(x2).sum().backward()
    assert x1.grad is None and x2.grad is not None
    cell.zero_grad()
    Recurrent(cell)(x2.data, initial_state=tuple(s.data for s in kept)).sum().backward()
    expected = {n: p.grad.copy() for n, p in cell.named_parameters()}
    cell.zero_grad()
    layer.states = kept
    layer(x2.data).sum().backward()
    for n, p in cell.named_parameters():  # as a fresh run from the same (constant) state
        np.testing.assert_allclose(p.grad, expected[n], atol=1e-12, err_msg=n)


def test_reset_states_restores_a_fresh_start_and_allows_another_batch():
    cell = GRUCell(3, 4).to(np.float64)
    layer = Recurrent(cell, stateful=True)
    x = _x(2, 5, 3)
    fresh = layer(x).data
    assert not np.allclose(layer(x).data, fresh)  # the second call starts from the first's end
    layer.reset_states()
    assert layer.states is None
    np.testing.assert_array_equal(layer(x).data, fresh)
    layer.reset_states()
    assert layer(_x(5, 5, 3)).shape == (5, 4)


def test_a_given_initial_state_wins_over_the_kept_one():
    cell = GRUCell(3, 4).to(np.float64)
    layer = Recurrent(cell, stateful=True)
    x, h0 = _x(2, 5, 3), _x(2, 4, seed=3)
    layer(x)
    np.testing.assert_array_equal(layer(x, initial_state=h0).data,
                                  Recurrent(cell)(x, initial_state=h0).data)
    layer(_x(3, 5, 3), initial_state=_x(3, 4))  # so may another batch size
    assert layer.states.shape == (3, 4)


def test_not_stateful_keeps_nothing():
    layer = Recurrent(GRUCell(3, 4))
    x = _x(2, 5, 3)
    first = layer(x).data
    assert layer.states is None
    np.testing.assert_array_equal(layer(x).data, first)
    layer.reset_states()  # harmless


def test_another_batch_size_is_refused_naming_both_and_keeps_the_state():
    layer = Recurrent(LSTMCell(3, 4), stateful=True)
    layer(_x(2, 5, 3))
    kept = [s.data.copy() for s in layer.states]
    with pytest.raises(ValueError, match=r"Recurrent: this stateful layer keeps the state of a "
                                         r"batch of 2 sequences, got a batch of 3; call "
                                         r"reset_states\(\)"):
        layer(_x(3, 5, 3))
    for s, k in zip(layer.states, kept):
        np.testing.assert_array_equal(s.data, k)
    assert layer(_x(2, 5, 3)).shape == (2, 4)  # the same batch still works


def test_stateful_must_be_a_bool():
    with pytest.raises(TypeError, match=r"Recurrent: stateful must be a bool, got int"):
        Recurrent(GRUCell(3, 4), stateful=1)


def test_stateful_bidirectional_keeps_both_directions_and_resets_both():
    np.random.seed(0)
    bi = Bidirectional(Recurrent(GRUCell(3, 4), return_state=True, stateful=True))
    bi.to(np.float64)
    x = _x(2, 5, 3)
    assert bi.backward_layer.stateful and bi.backward_layer.states is None
    _, (f1, b1) = bi(x)
    np.testing.assert_array_equal(bi.forward_layer.states.data, f1.data)
    np.testing.assert_array_equal(bi.backward_layer.states.data, b1.data)
    _, (f2, b2) = bi(x)  # each direction started from its own kept state
    np.testing.assert_allclose(f2.data, bi.forward_layer(x, initial_state=f1.data)[1].data,
                               atol=1e-12)
    np.testing.assert_allclose(b2.data, bi.backward_layer(x, initial_state=b1.data)[1].data,
                               atol=1e-12)
    bi.reset_states()
    assert bi.forward_layer.states is None and bi.backward_layer.states is None
    _, (f3, b3) = bi(x)
    np.testing.assert_array_equal(f3.data, f1.data)
    np.testing.assert_array_equal(b3.data, b1.data)


def test_a_failed_bidirectional_call_leaves_both_kept_states():
    bi = Bidirectional(Recurrent(GRUCell(3, 4), stateful=True))
    x = _x(2, 5, 3)
    bi(x)
    kept = bi.forward_layer.states.data.copy(), bi.backward_layer.states.data.copy()
    with pytest.raises(ValueError, match=r"initial_state h has shape \(2, 5\)"):
        bi(x, initial_state=(np.zeros((2, 4)), np.zeros((2, 5))))  # forward half runs first
    np.testing.assert_array_equal(bi.forward_layer.states.data, kept[0])
    np.testing.assert_array_equal(bi.backward_layer.states.data, kept[1])
    with pytest.raises(ValueError, match="batch of 2 sequences, got a batch of 3"):
        bi(_x(3, 5, 3))


def test_a_bidirectional_of_a_stateful_layer_copies_no_kept_state():
    layer = Recurrent(GRUCell(3, 4), stateful=True)
    layer(_x(2, 5, 3))
    bi = Bidirectional(layer)
    assert bi.forward_layer.states is not None and bi.backward_layer.states is None


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_stacks_have_a_harmless_reset_states(cls):
    net = cls(3, 4, bidirectional=True)
    x = _x(5, 2, 3)
    first = net(x)[0].data
    net.reset_states()
    np.testing.assert_array_equal(net(x)[0].data, first)
