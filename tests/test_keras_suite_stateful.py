"""Keras stateful RNNs (keras/src/layers/rnn/*_test.py test_statefulness, rnn_test's batch-size
check, bidirectional_test) as DESIGN.md defines `stateful=True`: the final state of a call,
detached, starts the next call unless an initial_state is given; `reset_states()` (Keras 3:
`reset_state()`) forgets it, so the next call may have any batch size (Keras keeps zeros of
the old batch size instead); another batch size is a ValueError naming both sizes that leaves
the kept state as it was; `states` holds the kept state (None before the first call).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import optim
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    Bidirectional,
    GRUCell,
    Linear,
    LSTMCell,
    Recurrent,
    RNNCell,
    Sequential,
)

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _cell(kind: str, seed: int = 0):
    np.random.seed(seed)
    return CELLS[kind](3, 4).to(np.float64)


def _x(batch: int = 2, steps: int = 9, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, steps, 3))


def _parts(state) -> list[np.ndarray]:
    return [s.data for s in state] if isinstance(state, tuple) else [state.data]


@pytest.mark.parametrize("cuts", [(3, 6), (1, 8), (4,), (2, 3, 5, 7)])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_chunks_of_a_stream_equal_the_whole_stream(kind, cuts):
    cell, x = _cell(kind), _x()
    whole, final = Recurrent(cell, return_sequences=True, return_state=True)(x)
    layer = Recurrent(cell, return_sequences=True, return_state=True, stateful=True)
    outs = [layer(chunk)[0].data for chunk in np.split(x, cuts, axis=1)]
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole.data, atol=1e-12)
    for kept, want in zip(_parts(layer.states), _parts(final)):
        np.testing.assert_allclose(kept, want, atol=1e-12)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_states_is_none_before_the_first_call_and_after_reset(kind):
    layer = Recurrent(_cell(kind), stateful=True)
    assert layer.states is None
    layer(_x())
    assert layer.states is not None
    layer.reset_states()
    assert layer.states is None
    layer(_x())
    layer.reset_state()  # Keras 3's name
    assert layer.states is None


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_the_kept_state_is_a_detached_copy_of_the_returned_state(kind):
    layer = Recurrent(_cell(kind), return_state=True, stateful=True)
    _, state = layer(tg.Tensor(_x(), requires_grad=True))
    kept = layer.states if isinstance(layer.states, tuple) else (layer.states,)
    returned = state if isinstance(state, tuple) else (state,)
    for k, r in zip(kept, returned):
        assert not k.requires_grad and r.requires_grad
        np.testing.assert_array_equal(k.data, r.data)
        assert k is not r


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_a_second_call_starts_from_the_first_calls_end(kind):
    cell, x = _cell(kind), _x()
    layer = Recurrent(cell, stateful=True, return_state=True)
    _, first = layer(x)
    out, _ = layer(x)
    ref, _ = Recurrent(cell, return_state=True)(x, initial_state=first)
    np.testing.assert_array_equal(out.data, ref.data)


@pytest.mark.parametrize("bigger", [True, False])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_another_batch_size_is_refused_and_the_state_stays(kind, bigger):
    layer = Recurrent(_cell(kind), stateful=True)
    layer(_x(batch=3))
    kept = _parts(layer.states)
    other = 5 if bigger else 1
    with pytest.raises(ValueError, match=rf"Recurrent: this stateful layer keeps the state of "
                                         rf"a batch of 3 sequences, got a batch of {other}.*"
                                         r"batch size"):
        layer(_x(batch=other))
    for now, before in zip(_parts(layer.states), kept):
        np.testing.assert_array_equal(now, before)
    layer.reset_states()
    assert layer(_x(batch=other)).shape == (other, 4)  # after a reset, any batch size


def test_a_given_initial_state_of_another_batch_wins_and_is_kept():
    cell = _cell("lstm")
    layer = Recurrent(cell, stateful=True)
    layer(_x(batch=2))
    h0 = (np.zeros((4, 4)), np.ones((4, 4)))
    out = layer(_x(batch=4), initial_state=h0)
    np.testing.assert_array_equal(out.data, Recurrent(cell)(_x(batch=4), initial_state=h0).data)
    assert [p.shape for p in layer.states] == [(4, 4), (4, 4)]


def test_a_bad_initial_state_is_refused_and_the_kept_state_stays():
    layer = Recurrent(_cell("gru"), stateful=True)
    layer(_x())
    kept = layer.states.data.copy()
    with pytest.raises(ValueError, match=r"Recurrent\(GRUCell\): initial_state h has shape "
                                         r"\(2, 5\), expected \(2, 4\)"):
        layer(_x(), initial_state=np.zeros((2, 5)))
    np.testing.assert_array_equal(layer.states.data, kept)


def test_an_assigned_states_value_starts_the_next_call():
    cell = _cell("gru")
    layer = Recurrent(cell, stateful=True)
    h = np.random.default_rng(4).standard_normal((2, 4))
    layer.states = h  # as Keras' reset_state(states=...) sets values
    np.testing.assert_array_equal(layer(_x()).data, Recurrent(cell)(_x(), initial_state=h).data)


@pytest.mark.parametrize("value, error, message", [
    (np.zeros((2, 5)), ValueError, r"states h has shape \(2, 5\), expected \(2, 4\)"),
    (np.zeros((2, 4), int), TypeError, r"states h must be a floating tensor"),
    ((np.zeros((2, 4)), np.zeros((2, 4))), TypeError, r"states must be one Tensor.*tuple of 2"),
])
def test_a_bad_assigned_states_value_is_named_not_a_deep_numpy_error(value, error, message):
    layer = Recurrent(_cell("gru"), stateful=True)
    layer.states = value
    with pytest.raises(error, match=r"Recurrent\(GRUCell\): " + message):
        layer(_x())


def test_an_assigned_lstm_state_must_be_the_pair():
    layer = Recurrent(_cell("lstm"), stateful=True)
    layer.states = tg.Tensor(np.zeros((2, 4)))
    with pytest.raises(TypeError, match=r"Recurrent\(LSTMCell\): states must be a tuple "
                                        r"\(h, c\) of 2 tensors, got Tensor"):
        layer(_x())


def test_gradients_stop_at_each_chunk_and_training_steps_between_chunks_work():
    np.random.seed(0)
    layer = Recurrent(LSTMCell(3, 4), return_sequences=True, stateful=True)
    head = Linear(4, 1)
    opt = optim.SGD(list(layer.parameters()) + list(head.parameters()), lr=0.1)
    losses = []
    for chunk in np.split(_x(steps=12).astype(np.float32), 4, axis=1):
        opt.zero_grad()
        loss = (head(layer(chunk)) ** 2).mean()
        loss.backward()  # the kept state is a copy: no in-place error after opt.step()
        opt.step()
        losses.append(loss.item())
    assert np.all(np.isfinite(losses)) and layer.states[0].shape == (2, 4)


def test_the_kept_state_is_not_a_parameter_nor_in_the_state_dict():
    layer = Recurrent(_cell("lstm"), stateful=True)
    before = (len(list(layer.parameters())), sorted(layer.state_dict()))
    layer(_x())
    assert (len(list(layer.parameters())), sorted(layer.state_dict())) == before


@pytest.mark.parametrize("mode", ["eval", "no_grad"])
def test_eval_and_no_grad_calls_carry_the_state_too(mode):
    cell = _cell("gru")
    layer = Recurrent(cell, stateful=True, return_state=True)
    x = _x()
    if mode == "eval":
        layer.eval()
        _, first = layer(x)
    else:
        with tg.no_grad():
            _, first = layer(x)
    np.testing.assert_array_equal(layer.states.data, first.data)


def test_a_masked_chunk_keeps_each_rows_state_through_its_masked_steps():
    cell = _cell("lstm")
    layer = Recurrent(cell, stateful=True)
    x = _x(batch=3, steps=4)
    layer(x)
    kept = _parts(layer.states)
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]], bool)
    layer(x, mask=mask)
    for now, before in zip(_parts(layer.states), kept):
        np.testing.assert_array_equal(now[1], before[1])  # the all-False row kept its state
    start = tuple(tg.Tensor(k[2:3]) for k in kept)
    _, want = Recurrent(cell, return_state=True)(x[2:3, mask[2]], initial_state=start)
    for now, w in zip(_parts(layer.states), _parts(want)):
        np.testing.assert_allclose(now[2], w[0], atol=1e-12)


def test_lengths_chunks_carry_each_sequences_state_after_its_true_end():
    cell = _cell("gru")
    layer = Recurrent(cell, stateful=True)
    x = _x(batch=2, steps=6)
    layer(x[:, :3])
    layer(x[:, 3:], lengths=[3, 1])
    whole = Recurrent(cell, return_state=True)(x[:1])[1]
    np.testing.assert_allclose(layer.states.data[0], whole.data[0], atol=1e-12)
    part = Recurrent(cell, return_state=True)(x[1:, :4])[1]
    np.testing.assert_allclose(layer.states.data[1], part.data[0], atol=1e-12)


def test_time_first_stateful_chunks_equal_the_whole():
    cell = _cell("lstm")
    x = _x().transpose(1, 0, 2)  # (T, B, I)
    whole = Recurrent(cell, return_sequences=True, batch_first=False)(x).data
    layer = Recurrent(cell, return_sequences=True, batch_first=False, stateful=True)
    got = np.concatenate([layer(x[:4]).data, layer(x[4:]).data], axis=0)
    np.testing.assert_allclose(got, whole, atol=1e-12)


def test_a_reverse_stateful_layer_starts_each_chunk_from_the_previous_chunks_end():
    """As Keras' go_backwards: each chunk is read backwards from the state the last chunk
    ended in (the state after its position 0)."""
    cell = _cell("gru")
    layer = Recurrent(cell, reverse=True, stateful=True, return_state=True)
    x = _x()
    _, first = layer(x[:, :4])
    out, _ = layer(x[:, 4:])
    want = Recurrent(cell, reverse=True)(x[:, 4:], initial_state=first)
    np.testing.assert_array_equal(out.data, want.data)


def test_a_stateful_layer_inside_sequential_carries_its_state():
    np.random.seed(0)
    layer = Recurrent(GRUCell(3, 4), return_sequences=True, stateful=True)
    model = Sequential(layer, Linear(4, 2))
    x = _x().astype(np.float32)
    first = model(x).data
    assert not np.allclose(model(x).data, first)
    layer.reset_states()
    np.testing.assert_array_equal(model(x).data, first)


def test_stateful_dropout_draws_new_masks_for_every_chunk():
    cell = GRUCell(3, 4, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    layer = Recurrent(cell, stateful=True)
    layer(_x().astype(np.float32))
    first = cell.recurrent_dropout_mask
    layer(_x().astype(np.float32))
    assert not np.array_equal(cell.recurrent_dropout_mask, first)


# ---- Bidirectional --------------------------------------------------------------------------
def _bi(kind: str = "lstm", **flags) -> Bidirectional:
    np.random.seed(0)
    return Bidirectional(Recurrent(CELLS[kind](3, 4), stateful=True, **flags)).to(np.float64)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bidirectional_states_holds_both_directions(kind):
    bi = _bi(kind, return_state=True)
    assert bi.stateful and bi.states is None
    _, (f, b) = bi(_x())
    fwd, bwd = bi.states
    for kept, got in zip(_parts(fwd) + _parts(bwd), _parts(f) + _parts(b)):
        np.testing.assert_array_equal(kept, got)
    bi.reset_state()
    assert bi.states is None


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bidirectional_directions_each_start_from_their_own_kept_state(kind):
    bi = _bi(kind, return_sequences=True, return_state=True)
    x = _x()
    _, (f1, b1) = bi(x)
    out, _ = bi(x)
    want_f = Recurrent(bi.forward_layer.cell, return_sequences=True)(x, initial_state=f1)
    want_b = Recurrent(bi.backward_layer.cell, return_sequences=True, reverse=True)(
        x, initial_state=b1)
    np.testing.assert_allclose(out.data, np.concatenate([want_f.data, want_b.data], -1),
                               atol=1e-12)


def test_bidirectional_batch_mismatch_names_both_sizes_and_keeps_both_states():
    bi = _bi("gru")
    bi(_x(batch=2))
    kept = [s.data.copy() for s in bi.states]
    with pytest.raises(ValueError, match=r"batch of 2 sequences, got a batch of 3"):
        bi(_x(batch=3))
    for s, k in zip(bi.states, kept):
        np.testing.assert_array_equal(s.data, k)


def test_bidirectional_not_stateful_has_no_states_and_a_harmless_reset():
    """Keras raises 'Layer must be stateful' here; DESIGN makes reset_states harmless."""
    bi = Bidirectional(Recurrent(GRUCell(3, 4)))
    bi(_x().astype(np.float32))
    assert not bi.stateful and bi.states is None
    bi.reset_states()
    bi.reset_state()
    assert bi.states is None


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_stacks_reset_states_is_harmless(cls):
    net = cls(3, 4, num_layers=2, batch_first=True)
    x = _x().astype(np.float32)
    first = net(x)[0].data
    net.reset_states()
    np.testing.assert_array_equal(net(x)[0].data, first)
