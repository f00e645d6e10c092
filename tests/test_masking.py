"""Padded batches with `lengths`: every sequence behaves exactly as if it were run alone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import GRU, LSTM, Bidirectional, GRUCell, LSTMCell, Module, Recurrent, RNNCell

LENGTHS = [5, 2, 4, 1]


def _padded_batch(features: int, seed: int = 0) -> np.ndarray:
    """(B, T, features) float64 with garbage (large values) in the padded steps."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(LENGTHS), max(LENGTHS), features))
    for i, n in enumerate(LENGTHS):
        x[i, n:] = 1e3
    return x


def check_as_if_alone(model: Module, run: Callable, x: np.ndarray) -> None:
    """run(x, lengths) -> [outputs (B, T, F), *final states (B, ...)], all batch first.

    Compares outputs (zero past each length), final states, input gradients (zero at padded
    steps) and the parameters' gradients with sequence-by-sequence runs at their own length.
    """
    rng = np.random.default_rng(1)
    xb = tg.Tensor(x, requires_grad=True)
    results = run(xb, LENGTHS)
    weights = [rng.standard_normal(r.shape) for r in results]
    sum((r * w).sum() for r, w in zip(results, weights)).backward()
    batch_grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    for i, n in enumerate(LENGTHS):
        xi = tg.Tensor(x[i:i + 1, :n].copy(), requires_grad=True)
        alone = run(xi, None)
        np.testing.assert_allclose(results[0].data[i, :n], alone[0].data[0], atol=1e-12)
        assert not results[0].data[i, n:].any()
        for r, a in zip(results[1:], alone[1:]):
            np.testing.assert_allclose(r.data[i], a.data[0], atol=1e-12)
        loss = (alone[0] * weights[0][i:i + 1, :n]).sum()
        sum(((a * w[i:i + 1]).sum() for a, w in zip(alone[1:], weights[1:])), loss).backward()
        np.testing.assert_allclose(xb.grad[i, :n], xi.grad[0], atol=1e-12)
        assert not xb.grad[i, n:].any()  # padded inputs get no gradient
    for name, p in model.named_parameters():  # accumulated over the runs alone
        np.testing.assert_allclose(batch_grads[name], p.grad, atol=1e-10, err_msg=name)


def _flat(state) -> list[tg.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


CELLS = [lambda: RNNCell(3, 4), lambda: LSTMCell(3, 4), lambda: GRUCell(3, 4)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("make", CELLS)
def test_recurrent_with_lengths_matches_runs_alone(make, reverse):
    np.random.seed(0)
    layer = Recurrent(make().to(np.float64), return_sequences=True, return_state=True,
                      reverse=reverse)

    def run(x, lengths):
        out, state = layer(x, lengths=lengths)
        return [out, *_flat(state)]
    check_as_if_alone(layer, run, _padded_batch(3))


@pytest.mark.parametrize("reverse", [False, True])
def test_last_output_is_each_sequences_true_last_step(reverse):
    layer = Recurrent(GRUCell(3, 4).to(np.float64), reverse=reverse)
    x = _padded_batch(3)
    last = layer(x, lengths=LENGTHS)
    for i, n in enumerate(LENGTHS):
        np.testing.assert_allclose(last.data[i], layer(x[i:i + 1, :n]).data[0], atol=1e-12)


def test_bidirectional_with_lengths_matches_runs_alone():
    np.random.seed(1)
    bi = Bidirectional(Recurrent(LSTMCell(3, 4), return_sequences=True, return_state=True))
    bi.to(np.float64)

    def run(x, lengths):
        out, (fwd, bwd) = bi(x, lengths=lengths)
        return [out, *fwd, *bwd]
    check_as_if_alone(bi, run, _padded_batch(3))


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_stack_with_lengths_matches_runs_alone(cls):
    np.random.seed(2)
    net = cls(3, 4, num_layers=2, bidirectional=True).to(np.float64)  # time-major, as torch

    def run(x, lengths):
        out, h_n = net(x.transpose(1, 0, 2), lengths=lengths)
        return [out.transpose(1, 0, 2)] + [h.transpose(1, 0, 2) for h in _flat(h_n)]
    check_as_if_alone(net, run, _padded_batch(3))


def test_lengths_all_full_equals_no_lengths():
    layer = Recurrent(LSTMCell(3, 4), return_sequences=True)
    x = _padded_batch(3)[:, :2]
    np.testing.assert_array_equal(layer(x, lengths=[2, 2, 2, 2]).data, layer(x).data)
