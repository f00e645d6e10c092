"""Keras masking semantics (keras/src/layers/rnn tests, backend rnn's mask handling) as DESIGN.md
defines them for `mask=`: a False step carries the state unchanged and outputs zeros (Keras'
zero_output_for_mask=True; its default repeats the previous output), the last output and the
returned state are those after the last kept step, `reverse` keeps outputs at their input
positions (Keras' go_backwards returns them reversed), and masks are boolean (B, T), batch
first in every layout (Keras casts 0/1 masks; DESIGN refuses another dtype, naming `mask`).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Embedding,
    GRUCell,
    LSTMCell,
    Recurrent,
    RNNCell,
)

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
PATTERNS = {  # one row each; B = 3 rows of T = 5
    "trailing": [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]],
    "leading": [[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]],
    "holes": [[1, 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 1, 0, 1, 1]],
    "single": [[0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]],
}


def _cell(kind: str, seed: int = 0):
    np.random.seed(seed)
    return CELLS[kind](3, 4).to(np.float64)


def _x(batch: int = 3, steps: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, steps, 3))


def _parts(state) -> list[np.ndarray]:
    return [s.data for s in state] if isinstance(state, tuple) else [state.data]


def _alone(cell, x_row: np.ndarray, reverse: bool, init=None):
    """One sequence run alone on its kept steps: (outputs (n, H), final state parts)."""
    out, state = Recurrent(cell, return_sequences=True, return_state=True, reverse=reverse)(
        x_row[None], initial_state=init)
    return out.data[0], _parts(state)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_masked_run_equals_each_sequence_on_its_kept_steps(kind, reverse, pattern):
    cell, x = _cell(kind), _x()
    mask = np.array(PATTERNS[pattern], bool)
    out, state = Recurrent(cell, return_sequences=True, return_state=True,
                           reverse=reverse)(x, mask=mask)
    for i, keep in enumerate(mask):
        outs, final = _alone(cell, x[i, keep], reverse)
        np.testing.assert_allclose(out.data[i, keep], outs, atol=1e-12)
        assert not out.data[i, ~keep].any()  # DESIGN: zero output at a masked step
        for got, want in zip(_parts(state), final):
            np.testing.assert_allclose(got[i], want[0], atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_last_output_is_the_final_h_after_the_last_kept_step(kind, reverse):
    cell, x = _cell(kind), _x()
    mask = np.array(PATTERNS["holes"], bool)
    last, state = Recurrent(cell, return_state=True, reverse=reverse)(x, mask=mask)
    np.testing.assert_array_equal(last.data, _parts(state)[0])
    seqs = Recurrent(cell, return_sequences=True, reverse=reverse)(x, mask=mask).data
    # the last kept step's output: the highest kept position forward, the lowest in reverse
    pick = [np.flatnonzero(k)[0 if reverse else -1] for k in mask]
    np.testing.assert_allclose(last.data, seqs[np.arange(3), pick], atol=1e-12)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_the_state_is_carried_unchanged_through_a_masked_step(kind):
    cell, x = _cell(kind), _x()
    seen = []
    layer = Recurrent(cell, return_sequences=True)
    layer.step_observers.append(lambda layer_, d, t, state: seen.append(_parts(state)))
    mask = np.array(PATTERNS["holes"], bool)
    layer(x, mask=mask)
    for t in range(1, 5):
        for i in range(3):
            if not mask[i, t]:
                for now, before in zip(seen[t], seen[t - 1]):
                    np.testing.assert_array_equal(now[i], before[i])


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_masked_steps_get_no_gradient_and_their_values_never_matter(kind):
    cell, x = _cell(kind), _x()
    mask = np.array(PATTERNS["holes"], bool)
    xt = tg.Tensor(x, requires_grad=True)
    Recurrent(cell, return_sequences=True)(xt, mask=mask).sum().backward()
    assert not xt.grad[~mask].any() and xt.grad[mask].any()
    clean = Recurrent(cell, return_sequences=True)(x, mask=mask).data
    noisy = x.copy()
    noisy[~mask] = 1e6  # what sits at a masked step never reaches a result
    np.testing.assert_allclose(Recurrent(cell, return_sequences=True)(noisy, mask=mask).data,
                               clean, atol=1e-12)


# ---- all-False rows ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_an_all_false_row_outputs_zeros_and_keeps_a_zero_initial_state(kind):
    """With the zero initial state, Keras and DESIGN agree: zeros everywhere, last output 0."""
    cell, x = _cell(kind), _x()
    mask = np.array(PATTERNS["holes"], bool)
    mask[1] = False
    out, state = Recurrent(cell, return_sequences=True, return_state=True)(x, mask=mask)
    last = Recurrent(cell)(x, mask=mask)
    assert not out.data[1].any() and not last.data[1].any()
    assert all(not p[1].any() for p in _parts(state))
    assert out.data[0].any()  # the other rows ran


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_an_all_false_row_returns_its_given_initial_state(kind, reverse):
    """DESIGN: 'last' is the state after the last kept step, so a row with no kept step
    returns its initial h as the last output (Keras would return zeros there)."""
    cell, x = _cell(kind), _x()
    mask = np.ones((3, 5), bool)
    mask[2] = False
    init = cell.initial_state(3)
    init = tuple(tg.Tensor(np.full(p.shape, 0.5 + k)) for k, p in enumerate(init)) if \
        isinstance(init, tuple) else tg.Tensor(np.full(init.shape, 0.5))
    out, state = Recurrent(cell, return_state=True, reverse=reverse)(x, initial_state=init,
                                                                     mask=mask)
    for got, given in zip(_parts(state), _parts(init)):
        np.testing.assert_array_equal(got[2], given[2])
    np.testing.assert_array_equal(out.data[2], _parts(init)[0][2])


def test_an_all_false_batch_has_zero_outputs_and_zero_gradients():
    cell, x = _cell("lstm"), _x()
    xt = tg.Tensor(x, requires_grad=True)
    out = Recurrent(cell, return_sequences=True)(xt, mask=np.zeros((3, 5), bool))
    assert not out.data.any()
    out.sum().backward()
    assert not xt.grad.any()
    assert all(p.grad is None or not p.grad.any() for p in cell.parameters())


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_an_all_false_row_in_a_stack_keeps_hx(cls):
    np.random.seed(0)
    net = cls(3, 4, num_layers=2, batch_first=True, bidirectional=True).to(np.float64)
    mask = np.ones((3, 5), bool)
    mask[0] = False
    h0 = np.random.default_rng(2).standard_normal((4, 3, 4))
    hx = (h0, h0 * 2) if cls is LSTM else h0
    out, h_n = net(_x(), hx, mask=mask)
    assert not out.data[0].any()
    for got, given in zip(_parts(h_n), [h0, h0 * 2] if cls is LSTM else [h0]):
        np.testing.assert_array_equal(got[:, 0], given[:, 0])


def test_an_all_false_row_in_a_bidirectional_keeps_both_initial_states():
    np.random.seed(0)
    bi = Bidirectional(Recurrent(GRUCell(3, 4), return_sequences=True, return_state=True))
    bi.to(np.float64)
    mask = np.ones((3, 5), bool)
    mask[1] = False
    hf, hb = np.full((3, 4), 0.25), np.full((3, 4), -0.75)
    out, (f, b) = bi(_x(), initial_state=(hf, hb), mask=mask)
    assert not out.data[1].any()
    np.testing.assert_array_equal(f.data[1], hf[1])
    np.testing.assert_array_equal(b.data[1], hb[1])


# ---- masks with an initial state ------------------------------------------------------------
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_a_mask_with_an_initial_state_starts_each_row_from_its_own(kind, pattern):
    cell, x = _cell(kind), _x()
    mask = np.array(PATTERNS[pattern], bool)
    rng = np.random.default_rng(3)
    init = cell.initial_state(3)
    init = tuple(tg.Tensor(rng.standard_normal(p.shape)) for p in init) if \
        isinstance(init, tuple) else tg.Tensor(rng.standard_normal(init.shape))
    out, state = Recurrent(cell, return_sequences=True, return_state=True)(
        x, initial_state=init, mask=mask)
    for i, keep in enumerate(mask):
        row_init = tuple(p[i:i + 1] for p in init) if isinstance(init, tuple) else init[i:i + 1]
        outs, final = _alone(cell, x[i, keep], False, row_init)
        np.testing.assert_allclose(out.data[i, keep], outs, atol=1e-12)
        for got, want in zip(_parts(state), final):
            np.testing.assert_allclose(got[i], want[0], atol=1e-12)


def test_the_initial_state_gets_its_gradient_through_masked_steps():
    cell, x = _cell("gru"), _x()
    mask = np.array(PATTERNS["leading"], bool)
    h0 = tg.Tensor(np.zeros((3, 4)), requires_grad=True)
    Recurrent(cell)(x, initial_state=h0, mask=mask).sum().backward()
    ref = tg.Tensor(np.zeros((1, 4)), requires_grad=True)
    Recurrent(cell)(x[2:3, mask[2]], initial_state=ref).sum().backward()
    np.testing.assert_allclose(h0.grad[2], ref.grad[0], atol=1e-12)


# ---- Bidirectional and the stacks ------------------------------------------------------------
@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_masked_positions_are_zero_in_every_merge_mode(merge):
    np.random.seed(0)
    bi = Bidirectional(Recurrent(LSTMCell(3, 4), return_sequences=True), merge)
    mask = np.array(PATTERNS["holes"], bool)
    out = bi(_x(), mask=mask)
    for part in (out if merge is None else [out]):
        assert not part.data[~mask].any() and np.abs(part.data[mask]).min() > 0


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bidirectional_directions_equal_each_direction_on_the_kept_steps(kind):
    np.random.seed(0)
    bi = Bidirectional(Recurrent(CELLS[kind](3, 4), return_sequences=True, return_state=True),
                       None).to(np.float64)
    x, mask = _x(), np.array(PATTERNS["holes"], bool)
    (fwd, bwd), (f_state, b_state) = bi(x, mask=mask)
    for i, keep in enumerate(mask):
        f_out, f_fin = _alone(bi.forward_layer.cell, x[i, keep], False)
        b_out, b_fin = _alone(bi.backward_layer.cell, x[i, keep], True)
        np.testing.assert_allclose(fwd.data[i, keep], f_out, atol=1e-12)
        np.testing.assert_allclose(bwd.data[i, keep], b_out, atol=1e-12)
        np.testing.assert_allclose(_parts(f_state)[0][i], f_fin[0][0], atol=1e-12)
        np.testing.assert_allclose(_parts(b_state)[0][i], b_fin[0][0], atol=1e-12)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_a_stack_takes_the_same_batch_first_mask_in_either_layout(cls, batch_first):
    np.random.seed(0)
    net = cls(3, 4, batch_first=batch_first).to(np.float64)
    x, mask = _x(), np.array(PATTERNS["holes"], bool)
    out, _ = net(x if batch_first else x.transpose(1, 0, 2), mask=mask)
    out = out.data if batch_first else out.data.transpose(1, 0, 2)
    assert out.shape == (3, 5, 4)
    assert not out[~mask].any() and np.abs(out[mask]).min() > 0


# ---- masks from Embedding(mask_zero=True) ----------------------------------------------------
IDS = np.array([[4, 0, 2, 0, 5], [0, 0, 3, 1, 1], [2, 2, 2, 2, 2]])


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_embedding_mask_zero_propagates_to_recurrent(kind):
    np.random.seed(0)
    emb = Embedding(6, 3, mask_zero=True).to(np.float64)
    cell = CELLS[kind](3, 4).to(np.float64)
    out = Recurrent(cell, return_sequences=True)(emb(IDS), mask=emb.compute_mask(IDS))
    for i, row in enumerate(IDS):
        alone = Recurrent(cell, return_sequences=True)(emb(row[row != 0][None]))
        np.testing.assert_allclose(out.data[i, row != 0], alone.data[0], atol=1e-12)
        assert not out.data[i, row == 0].any()


def test_embedding_mask_feeds_a_time_first_stack_batch_first():
    np.random.seed(0)
    emb, net = Embedding(6, 3, mask_zero=True), GRU(3, 4)
    out, h_n = net(emb(IDS.T), mask=emb.compute_mask(IDS))  # input (T, B), mask (B, T)
    ref = GRU(3, 4, batch_first=True)
    ref.load_state_dict(net.state_dict())
    ref_out, ref_h = ref(emb(IDS), mask=emb.compute_mask(IDS))
    np.testing.assert_allclose(out.data.transpose(1, 0, 2), ref_out.data, atol=1e-6)
    np.testing.assert_allclose(h_n.data, ref_h.data, atol=1e-6)


def test_embedding_mask_zero_trains_no_padding_row_through_a_masked_layer():
    np.random.seed(0)
    emb = Embedding(6, 3, mask_zero=True)
    Recurrent(LSTMCell(3, 4))(emb(IDS), mask=emb.compute_mask(IDS)).sum().backward()
    assert not emb.weight.grad[0].any()  # zeros are embedded but never read
    assert emb.weight.grad[2].any()


# ---- how masks may be given, and what is refused -----------------------------------------------
@pytest.mark.parametrize("as_given", [
    lambda m: m, lambda m: m.tolist(), lambda m: tg.Tensor(m), lambda m: np.asfortranarray(m),
    lambda m: m.view(np.bool_)], ids=["ndarray", "list", "Tensor", "fortran", "view"])
def test_a_boolean_mask_may_come_in_any_array_form(as_given):
    cell, x = _cell("gru"), _x()
    mask = np.array(PATTERNS["holes"], bool)
    want = Recurrent(cell, return_sequences=True)(x, mask=mask).data
    got = Recurrent(cell, return_sequences=True)(x, mask=as_given(mask.copy())).data
    np.testing.assert_array_equal(got, want)


def test_the_callers_mask_is_never_written():
    mask = np.array(PATTERNS["holes"], bool)
    before = mask.copy()
    Recurrent(_cell("lstm"), return_sequences=True)(_x(), mask=mask).sum().backward()
    np.testing.assert_array_equal(mask, before)


def test_a_mask_gives_the_same_values_in_eval_mode_and_under_no_grad():
    cell, x = _cell("lstm"), _x()
    mask = np.array(PATTERNS["holes"], bool)
    layer = Recurrent(cell, return_sequences=True)
    want = layer(x, mask=mask).data
    layer.eval()
    with tg.no_grad():
        np.testing.assert_array_equal(layer(x, mask=mask).data, want)


BAD = [
    (np.ones((3, 5), np.int64), TypeError, r"mask must be a boolean \(B, T\).*int64"),
    (np.ones((3, 5), np.float32), TypeError, r"mask must be a boolean.*float32"),
    (np.ones((3, 5), np.uint8), TypeError, r"mask must be a boolean.*uint8"),
    (tg.Tensor(np.ones((3, 5))), TypeError, r"mask must be a boolean.*float64"),
    ("TTFFT", TypeError, r"mask must be a boolean"),
    (np.ones((3, 5, 1), bool), ValueError, r"mask must have shape \(B, T\).*got \(3, 5, 1\)"),
    (np.ones((5, 3), bool), ValueError, r"mask must have shape \(B, T\) = \(3, 5\).*got \(5, 3\)"),
    (np.ones(5, bool), ValueError, r"mask must have shape.*got \(5,\)"),
    (True, ValueError, r"mask must have shape.*got \(\)"),
    (np.ones((3, 4), bool), ValueError, r"mask must have shape.*got \(3, 4\)"),
]


@pytest.mark.parametrize("mask, error, message", BAD,
                         ids=["int", "float32", "uint8", "float tensor", "string", "3-D",
                              "time-first", "1-D", "scalar", "short"])
@pytest.mark.parametrize("who", ["Recurrent", "Bidirectional", "GRU"])
def test_a_bad_mask_is_refused_naming_mask_and_the_stateful_state_stays(who, mask, error,
                                                                        message):
    if who == "GRU":
        layer, name = GRU(3, 4, batch_first=True), "GRU"
    else:
        layer = Recurrent(GRUCell(3, 4), stateful=True)
        layer = Bidirectional(layer) if who == "Bidirectional" else layer
        name = "Recurrent"
    x = _x().astype(np.float32)
    layer(x)
    kept = [s.data.copy() for s in _stateful_parts(layer)]
    with pytest.raises(error, match=f"{name}: {message}"):
        layer(x, mask=mask)
    for s, k in zip(_stateful_parts(layer), kept):
        np.testing.assert_array_equal(s.data, k)


def _stateful_parts(layer) -> list[tg.Tensor]:
    if isinstance(layer, Bidirectional):
        return [layer.forward_layer.states, layer.backward_layer.states]
    return [layer.states] if isinstance(layer, Recurrent) else []


# ---- compute_mask: passing a mask on (Keras' RNN.compute_mask) ---------------------------------
@pytest.mark.parametrize("return_sequences, return_state", [(True, False), (False, False),
                                                            (True, True), (False, True)])
def test_recurrent_compute_mask_passes_the_mask_on_only_with_sequences(return_sequences,
                                                                      return_state):
    layer = Recurrent(GRUCell(3, 4), return_sequences=return_sequences,
                      return_state=return_state)
    mask = np.array(PATTERNS["holes"], bool)
    out = mask if return_sequences else None
    got = layer.compute_mask(_x(), mask)
    if return_state:
        assert got[0] is out and got[1] is None
    else:
        assert got is out
    assert layer.compute_mask(_x(), None) in (None, (None, None))


@pytest.mark.parametrize("merge", ["concat", None])
def test_bidirectional_compute_mask_follows_keras(merge):
    mask = np.array(PATTERNS["holes"], bool)
    seqs = Bidirectional(Recurrent(GRUCell(3, 4), return_sequences=True), merge)
    got = seqs.compute_mask(_x(), mask)
    if merge is None:
        assert isinstance(got, list) and len(got) == 2 and got[0] is mask and got[1] is mask
    else:
        assert got is mask
    last = Bidirectional(Recurrent(GRUCell(3, 4), return_state=True), merge)
    got, states = last.compute_mask(_x(), mask)
    assert (got == [None, None] if merge is None else got is None) and states == (None, None)


def test_a_masked_two_layer_stack_built_with_compute_mask_equals_the_kept_steps():
    np.random.seed(0)
    l1 = Recurrent(LSTMCell(3, 4).to(np.float64), return_sequences=True)
    l2 = Recurrent(GRUCell(4, 5).to(np.float64))
    x, mask = _x(), np.array(PATTERNS["holes"], bool)
    out = l2(l1(x, mask=mask), mask=l1.compute_mask(x, mask))
    for i, keep in enumerate(mask):
        alone = l2(l1(x[i:i + 1, keep]))
        np.testing.assert_allclose(out.data[i], alone.data[0], atol=1e-12)
