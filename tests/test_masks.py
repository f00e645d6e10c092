"""Keras masks (`mask=`, any pattern): each sequence behaves as if its masked steps were
deleted (zero output there), for every cell, Bidirectional and the stacks; mask_zero end to
end; bad masks are refused naming `mask` before anything changes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Cell,
    Embedding,
    GRUCell,
    LSTMCell,
    Module,
    Parameter,
    Recurrent,
    RNNCell,
)

# holes anywhere: leading, inside, trailing; one full row, one single kept step
MASK = np.array([[1, 0, 1, 1, 0, 1],
                 [0, 0, 1, 0, 1, 0],
                 [1, 1, 1, 1, 1, 1],
                 [0, 0, 0, 1, 0, 0]], bool)


def _x(features: int, seed: int = 0) -> np.ndarray:
    """(B, T, features) float64, large values at the masked steps (they must not matter)."""
    x = np.random.default_rng(seed).standard_normal(MASK.shape + (features,))
    x[~MASK] = 1e3
    return x


def _flat(state) -> list[tg.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def check_as_if_deleted(model: Module, run: Callable, x: np.ndarray, mask=MASK) -> None:
    """run(x, mask) -> [outputs (B, T, F), *final states (B, ...)], all batch first.

    Each sequence alone, with only its kept steps, gives the same outputs (zero at the holes),
    final states, input gradients (zero at the holes) and parameter gradients (summed)."""
    rng = np.random.default_rng(1)
    xb = tg.Tensor(x, requires_grad=True)
    results = run(xb, mask)
    weights = [rng.standard_normal(r.shape) for r in results]
    sum((r * w).sum() for r, w in zip(results, weights)).backward()
    batch_grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    for i, keep in enumerate(mask):
        xi = tg.Tensor(x[i:i + 1, keep].copy(), requires_grad=True)
        alone = run(xi, None)
        np.testing.assert_allclose(results[0].data[i, keep], alone[0].data[0], atol=1e-12)
        assert not results[0].data[i, ~keep].any()  # zero output at a masked step
        for r, a in zip(results[1:], alone[1:]):
            np.testing.assert_allclose(r.data[i], a.data[0], atol=1e-12)
        loss = (alone[0] * weights[0][i:i + 1, keep]).sum()
        sum(((a * w[i:i + 1]).sum() for a, w in zip(alone[1:], weights[1:])), loss).backward()
        np.testing.assert_allclose(xb.grad[i, keep], xi.grad[0], atol=1e-12)
        assert not xb.grad[i, ~keep].any()  # masked inputs get no gradient
    for name, p in model.named_parameters():
        np.testing.assert_allclose(batch_grads[name], p.grad, atol=1e-10, err_msg=name)


class MinimalRNN(Cell):
    """A user cell with one state: h' = tanh([x, h] W)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.w = Parameter(np.random.randn(input_size + hidden_size, hidden_size) * 0.5)

    def forward(self, x, h):
        return (tg.cat([x, h], axis=1) @ self.w).tanh()


class SumCell(Cell):
    """A user cell with a tuple state (h, s): s accumulates h, h' = tanh(x W + s U)."""

    state_names = ("h", "s")

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.w = Parameter(np.random.randn(input_size, hidden_size) * 0.5)
        self.u = Parameter(np.random.randn(hidden_size, hidden_size) * 0.5)

    def initial_state(self, batch_size):
        z = np.zeros((batch_size, self.hidden_size))
        return tg.Tensor(z), tg.Tensor(z.copy())

    def forward(self, x, state):
        h, s = state
        h = (x @ self.w + s @ self.u).tanh()
        return h, s + h


CELLS = {"rnn": lambda: RNNCell(3, 4), "lstm": lambda: LSTMCell(3, 4),
         "gru": lambda: GRUCell(3, 4), "custom": lambda: MinimalRNN(3, 4),
         "custom tuple state": lambda: SumCell(3, 4)}


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_recurrent_mask_with_holes_is_as_if_the_steps_were_deleted(kind, reverse):
    np.random.seed(0)
    layer = Recurrent(CELLS[kind]().to(np.float64), return_sequences=True, return_state=True,
                      reverse=reverse)

    def run(x, mask):
        out, state = layer(x, mask=mask)
        return [out, *_flat(state)]
    check_as_if_deleted(layer, run, _x(3))


@pytest.mark.parametrize("reverse", [False, True])
def test_last_output_is_the_state_after_the_last_kept_step(reverse):
    np.random.seed(0)
    layer = Recurrent(LSTMCell(3, 4).to(np.float64), reverse=reverse)
    x = _x(3)
    last = layer(x, mask=MASK)
    for i, keep in enumerate(MASK):
        np.testing.assert_allclose(last.data[i], layer(x[i:i + 1, keep]).data[0], atol=1e-12)


def test_time_first_recurrent_takes_a_batch_first_mask():
    np.random.seed(0)
    cell = GRUCell(3, 4).to(np.float64)
    x = _x(3)
    bf = Recurrent(cell, return_sequences=True)(x, mask=MASK)
    tf = Recurrent(cell, return_sequences=True, batch_first=False)(x.transpose(1, 0, 2),
                                                                     mask=MASK)
    np.testing.assert_array_equal(tf.data.transpose(1, 0, 2), bf.data)


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_mask_is_as_if_the_steps_were_deleted(merge):
    np.random.seed(1)
    bi = Bidirectional(Recurrent(LSTMCell(3, 4), return_sequences=True, return_state=True),
                       merge).to(np.float64)

    def run(x, mask):
        out, (fwd, bwd) = bi(x, mask=mask)
        return [out, *fwd, *bwd]
    check_as_if_deleted(bi, run, _x(3))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_stack_mask_is_as_if_the_steps_were_deleted(cls, batch_first, bidirectional):
    np.random.seed(2)
    net = cls(3, 4, num_layers=2, batch_first=batch_first,
              bidirectional=bidirectional).to(np.float64)

    def run(x, mask):  # the mask is (B, T) in both layouts
        out, h_n = net(x if batch_first else x.transpose(1, 0, 2), mask=mask)
        out = out if batch_first else out.transpose(1, 0, 2)
        return [out] + [h.transpose(1, 0, 2) for h in _flat(h_n)]
    check_as_if_deleted(net, run, _x(3))


def test_prefix_mask_equals_lengths():
    np.random.seed(3)
    net = LSTM(3, 4, batch_first=True, bidirectional=True).to(np.float64)
    x, lengths = _x(3), [6, 2, 4, 1]
    prefix = np.arange(6)[None, :] < np.array(lengths)[:, None]
    by_mask, (h_m, c_m) = net(x, mask=prefix)
    by_lengths, (h_l, c_l) = net(x, lengths=lengths)
    np.testing.assert_array_equal(by_mask.data, by_lengths.data)
    np.testing.assert_array_equal(h_m.data, h_l.data)
    np.testing.assert_array_equal(c_m.data, c_l.data)


def test_all_true_mask_equals_no_mask():
    layer = Recurrent(GRUCell(3, 4), return_sequences=True)
    x = _x(3)
    np.testing.assert_array_equal(layer(x, mask=np.ones((4, 6), bool)).data, layer(x).data)


def test_a_fully_masked_sequence_keeps_its_initial_state_and_outputs_zeros():
    layer = Recurrent(LSTMCell(3, 4).to(np.float64), return_sequences=True, return_state=True)
    mask = MASK.copy()
    mask[1] = False
    h0, c0 = np.full((4, 4), 0.5), np.full((4, 4), -0.25)
    out, (h, c) = layer(_x(3), initial_state=(h0, c0), mask=mask)
    assert not out.data[1].any()
    np.testing.assert_array_equal(h.data[1], h0[1])
    np.testing.assert_array_equal(c.data[1], c0[1])


def test_mask_may_be_a_bool_tensor_or_a_list():
    layer = Recurrent(RNNCell(3, 4))
    x = _x(3)
    expected = layer(x, mask=MASK).data
    np.testing.assert_array_equal(layer(x, mask=tg.Tensor(MASK)).data, expected)
    np.testing.assert_array_equal(layer(x, mask=MASK.tolist()).data, expected)


def test_a_later_write_into_the_mask_does_not_change_the_gradient():
    layer = Recurrent(GRUCell(3, 4).to(np.float64), return_sequences=True)
    x = tg.Tensor(_x(3), requires_grad=True)
    mask = MASK.copy()
    out = layer(x, mask=mask)
    mask[:] = True  # after the forward: the recorded mask is the layer's own copy
    out.sum().backward()
    assert not x.grad[~MASK].any()


def test_unbatched_stack_takes_a_1d_mask():
    np.random.seed(4)
    net = GRU(3, 4).to(np.float64)
    x = _x(3)[0]  # (T, I)
    out, h = net(x, mask=MASK[0])
    batched, hb = net(x[:, None], mask=MASK[:1])
    np.testing.assert_array_equal(out.data, batched.data[:, 0])
    np.testing.assert_array_equal(h.data, hb.data[:, 0])


# ---- Embedding(mask_zero=True) ------------------------------------------------------------
def test_compute_mask_is_indices_not_zero_and_none_without_mask_zero():
    ids = np.array([[5, 0, 3], [0, 0, 1]])
    mask = Embedding(6, 2, mask_zero=True).compute_mask(ids)
    assert isinstance(mask, tg.Tensor) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask.data, ids != 0)
    np.testing.assert_array_equal(
        Embedding(6, 2, mask_zero=True).compute_mask(tg.Tensor(ids)).data, ids != 0)
    assert Embedding(6, 2).compute_mask(ids) is None  # Keras: no mask_zero, no mask
    assert "mask_zero=True" in repr(Embedding(6, 2, mask_zero=True))
    assert Embedding.from_pretrained(np.eye(3), mask_zero=True).mask_zero


class Classifier(Module):
    """Embedding(mask_zero) -> Bidirectional LSTM (masked) -> sum of the last outputs."""

    def __init__(self):
        super().__init__()
        self.embed = Embedding(7, 3, mask_zero=True)
        self.rnn = Bidirectional(Recurrent(LSTMCell(3, 4)))

    def forward(self, ids):
        return self.rnn(self.embed(ids), mask=self.embed.compute_mask(ids))


def test_mask_zero_end_to_end_equals_the_reviews_without_their_zeros():
    np.random.seed(5)
    model = Classifier().to(np.float64)
    ids = np.array([[0, 0, 4, 2, 6], [3, 0, 5, 0, 1], [2, 2, 2, 2, 2]])
    out = model(ids)
    out.sum().backward()
    batch_grad = model.embed.weight.grad.copy()
    assert not batch_grad[0].any()  # the zeros were never read
    model.zero_grad()
    for i, row in enumerate(ids):
        alone = model(row[row != 0][None])
        np.testing.assert_allclose(out.data[i], alone.data[0], atol=1e-12)
        alone.sum().backward()
    np.testing.assert_allclose(batch_grad, model.embed.weight.grad, atol=1e-12)


# ---- refused ------------------------------------------------------------------------------
def _layers():
    return [("Recurrent", Recurrent(GRUCell(3, 4), return_state=True)),
            ("Recurrent", Bidirectional(Recurrent(GRUCell(3, 4), return_state=True))),
            ("LSTM", LSTM(3, 4, batch_first=True))]


BAD_MASKS = [
    (np.ones((4, 5), bool), ValueError, r"mask must have shape \(B, T\) = \(4, 6\).*got \(4, 5\)"),
    (np.ones((6, 4), bool), ValueError, r"mask must have shape \(B, T\) = \(4, 6\)"),
    (np.ones(6, bool), ValueError, r"mask must have shape"),
    (np.ones((4, 6), int), TypeError, r"mask must be a boolean \(B, T\).*got dtype int64"),
    (np.ones((4, 6)), TypeError, r"mask must be a boolean.*float64"),
    ([[True, False], [True]], TypeError, r"mask must be a boolean.*ragged"),
]


@pytest.mark.parametrize("mask, error, message", BAD_MASKS)
def test_bad_mask_is_refused_naming_mask(mask, error, message):
    for name, layer in _layers():
        with pytest.raises(error, match=f"{name}: {message}"):
            layer(_x(3), mask=mask)


def test_lengths_and_mask_together_are_refused_naming_both():
    for name, layer in _layers():
        with pytest.raises(ValueError, match=f"{name}: pass lengths or mask, not both"):
            layer(_x(3), lengths=[6, 6, 6, 6], mask=MASK)


def test_unbatched_stack_needs_a_1d_mask():
    with pytest.raises(ValueError, match=r"GRU: mask must have shape \(T,\) = \(6,\)"):
        GRU(3, 4)(_x(3)[0], mask=MASK[:1])


def test_a_refused_mask_leaves_a_stateful_layer_as_it_was():
    layer = Recurrent(GRUCell(3, 4), stateful=True)
    bi = Bidirectional(Recurrent(GRUCell(3, 4), stateful=True))
    layer(_x(3))
    bi(_x(3))
    kept = layer.states.data.copy()
    kept_bi = [bi.forward_layer.states.data.copy(), bi.backward_layer.states.data.copy()]
    with pytest.raises(TypeError, match="mask"):
        layer(_x(3), mask=np.ones((4, 6), int))
    with pytest.raises(ValueError, match="mask"):
        bi(_x(3), mask=np.ones((4, 5), bool))
    np.testing.assert_array_equal(layer.states.data, kept)
    np.testing.assert_array_equal(bi.forward_layer.states.data, kept_bi[0])
    np.testing.assert_array_equal(bi.backward_layer.states.data, kept_bi[1])


def test_compute_mask_refuses_float_indices_and_mask_zero_must_be_a_bool():
    with pytest.raises(IndexError, match=r"Embedding.compute_mask: indices must be integers"):
        Embedding(4, 2, mask_zero=True).compute_mask(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"Embedding: mask_zero must be a bool, got int"):
        Embedding(4, 2, mask_zero=1)
