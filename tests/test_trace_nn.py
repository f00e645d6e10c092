"""Issue 16: the recurrent layers' lengths, masks, packing and dropout masks are traceable.

A trace lists every primitive call of a forward with each input array named by where it came
from (an argument, an earlier call's output, or a constant with its values). Two calls with
different values and patterns (all-valid vs padded, other orders, other draws) must give the
same trace: then nothing value-dependent froze, and a replay (jit.py) is right.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_same_trace, trace_calls

from tinygrad_rnn import Tensor, nn
from tinygrad_rnn.nn.sequence_ops import LengthsMask
from tinygrad_rnn.nn.utils.rnn import pack_padded_sequence
from tinygrad_rnn.tensor import _wrap, apply

B, T, I, H = 4, 6, 3, 5


def _assert_same_trace(fn, first: tuple, second: tuple) -> list:
    """The calls of fn on `first`, asserted equal to those on `second` (helpers.py)."""
    return assert_same_trace(fn, first, second)[0].calls


def _x(seed: int, shape=(B, T, I)) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _stack(kind: str, batch_first: bool = True, **kw):
    extra = {"proj_size": 2} if kind == "LSTM" else {}
    layer = getattr(nn, kind)(I, H, num_layers=2, bidirectional=True, batch_first=batch_first,
                              dropout=0.3, recurrent_dropout=0.2, rng=np.random.default_rng(5),
                              **extra, **kw)
    return layer.train()


def _labels(value) -> list[tuple]:
    """Every ("arg", ...) label inside a recorded call's inputs or kwargs."""
    if isinstance(value, tuple) and value[:1] == ("arg",):
        return [value]
    if isinstance(value, dict):
        value = tuple(value.values())
    if isinstance(value, (tuple, list)):
        return [label for part in value for label in _labels(part)]
    return []


def _ops(trace: list) -> list[str]:
    return [c[0] for c in trace]


FULL = np.full(B, T)
PADDED = np.array([6, 2, 4, 1])
ALL = np.ones((B, T), bool)
HOLES = np.array([[1, 1, 0, 1, 1, 1], [1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]],
                 bool)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_a_stack_with_lengths_traces_alike_for_full_and_padded_batches(kind, batch_first):
    layer = _stack(kind, batch_first)
    shape = (B, T, I) if batch_first else (T, B, I)
    trace = _assert_same_trace(lambda x, lengths: layer(x, lengths=lengths),
                               (_x(1, shape), FULL), (_x(2, shape), PADDED))
    masks = [c for c in trace if c[0] == "lengths_mask"]
    assert [c[1] for c in masks] == [[("arg", 1)]]  # the caller's lengths, by identity
    assert _ops(trace).count("where") >= 2 * 2 * T  # every step of each layer and direction
    assert _ops(trace).count("dropout_mask") == 1 + 4  # between layers; a mask per cell


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_a_stack_with_a_keras_mask_traces_alike_for_any_pattern(kind):
    layer = _stack(kind)
    trace = _assert_same_trace(lambda x, mask: layer(x, mask=mask), (_x(1), ALL),
                               (_x(2), HOLES))
    first_reader = next(c for c in trace if ("arg", 1) in c[1])
    assert first_reader[0] == "reshape"  # the mask itself, never a copy made outside a primitive


def test_an_unbatched_stack_takes_its_time_mask_by_identity():
    layer = _stack("GRU")
    mask_a, mask_b = np.ones(T, bool), np.array([1, 0, 1, 1, 0, 1], bool)
    trace = _assert_same_trace(lambda x, mask: layer(x, mask=mask), (_x(1, (T, I)), mask_a),
                               (_x(2, (T, I)), mask_b))
    assert any(("arg", 1) in c[1] for c in trace)


@pytest.mark.parametrize("batch_first", [True, False])
def test_a_packed_batch_traces_alike_for_other_orders_of_the_same_batch_sizes(batch_first):
    layer = _stack("LSTM", batch_first)

    def packed(seed, lengths):
        shape = (B, T, I) if batch_first else (T, B, I)
        return pack_padded_sequence(_x(seed, shape), lengths, batch_first=batch_first,
                                    enforce_sorted=False)

    # the same batch_sizes (6, 5, 4, 4, 2, 2) from lengths in other orders
    first, second = packed(1, [6, 2, 4, 5]), packed(2, [4, 5, 6, 2])
    assert np.array_equal(first.batch_sizes.data, second.batch_sizes.data)
    assert not np.array_equal(first.sorted_indices.data, second.sorted_indices.data)
    trace = _assert_same_trace(lambda p: layer(p)[0].data, (first,), (second,))
    gathers = {label for c in trace if c[0] == "getitem" for label in _labels(c[1:])}
    assert {("arg", 0, 2), ("arg", 0, 3)} <= gathers  # sorted_indices, unsorted_indices


@pytest.mark.parametrize("cell", [nn.RNNCell, nn.LSTMCell, nn.GRUCell])
def test_a_bidirectional_recurrent_with_dropout_traces_alike(cell):
    make = cell(I, H, dropout=0.25, recurrent_dropout=0.4, rng=np.random.default_rng(3))
    layer = nn.Bidirectional(nn.Recurrent(make, return_sequences=True)).train()
    _assert_same_trace(lambda x, lengths: layer(x, lengths=lengths), (_x(1), FULL),
                       (_x(2), PADDED))
    trace = _assert_same_trace(lambda x, mask: layer(x, mask=mask), (_x(3), ALL),
                               (_x(4), HOLES))
    assert _ops(trace).count("dropout_mask") == 4  # input and recurrent, per direction


def test_no_lengths_and_no_mask_run_no_masking_op():
    layer = _stack("LSTM").eval()
    trace = trace_calls(lambda x: layer(x), _x(1)).calls
    assert not {"lengths_mask", "where", "dropout_mask"} & set(_ops(trace))


def test_a_cells_masks_are_primitive_outputs_held_as_tensors():
    cell = nn.GRUCell(I, H, dropout=0.5, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    layer = nn.Recurrent(cell).train()
    trace = trace_calls(lambda x: layer(x), _x(1)).calls
    drawn = [i for i, c in enumerate(trace) if c[0] == "dropout_mask"]
    assert len(drawn) == 2
    used = {label for c in trace for label in c[1]}
    assert {("out", i) for i in drawn} <= used  # the drawn arrays themselves are read
    held = cell._input_mask  # what the steps multiply by: the primitive's output Tensor
    assert isinstance(held, Tensor) and held.shape == (B, I)
    copy = cell.dropout_mask  # the public property hands out a copy of it
    assert np.array_equal(copy, held.data) and not np.shares_memory(copy, held.data)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_full_lengths_and_an_all_true_mask_give_the_unmasked_outputs(kind):
    layer = _stack(kind).eval()
    x = _x(7)
    plain = layer(x)[0].data
    assert np.array_equal(layer(x, lengths=FULL)[0].data, plain)
    assert np.array_equal(layer(x, mask=ALL)[0].data, plain)


def test_writing_the_mask_after_the_forward_never_reaches_backward():
    layer = _stack("GRU").eval()
    x = Tensor(_x(1).data, requires_grad=True)
    grads = []
    for write in (False, True):
        mask = HOLES.copy()
        out, _ = layer(x, mask=mask)
        if write:
            mask[:] = True  # the caller reuses its array before backward
        (out * out).sum().backward()
        grads.append(x.grad.copy())
        x.grad = None
        layer.zero_grad()
    assert np.array_equal(grads[0], grads[1])


@pytest.mark.parametrize("lengths, match", [
    ([0, 3], r"LSTM: lengths must be in \[1, T=3\], got \[0\]"),
    ([4, 3], r"LSTM: lengths must be in \[1, T=3\], got \[4\]"),
    ([-1, 2], r"LSTM: lengths must be in \[1, T=3\], got \[-1\]"),
])
def test_the_lengths_mask_primitive_checks_the_values_it_is_given(lengths, match):
    """What a replay runs: the primitive alone still refuses lengths numpy would wrap."""
    with pytest.raises(ValueError, match=match):
        apply(LengthsMask, _wrap(np.array(lengths)), steps=3, who="LSTM")


def test_the_lengths_mask_primitive_refuses_float_lengths():
    with pytest.raises(TypeError, match=r"LSTM: lengths must be a 1-D array of integers"):
        apply(LengthsMask, _wrap(np.array([2.0, 1.0])), steps=3, who="LSTM")


def test_bad_lengths_name_the_layer_and_change_no_kept_state():
    layer = nn.Recurrent(nn.LSTMCell(I, H), stateful=True)
    layer(_x(1))
    kept = [s.data.copy() for s in layer.states]
    with pytest.raises(ValueError, match=r"Recurrent: lengths must be in \[1, T=6\], got \[7\]"):
        layer(_x(2), lengths=np.array([6, 7, 1, 2]))
    assert all(np.array_equal(k, s.data) for k, s in zip(kept, layer.states))


# ---- replays (jit.py): equal to eager steps over changing data -------------------------------

def _replays_equal_eager(make, call, batches) -> None:
    """A jitted step (forward and backward) of one copy of a module against eager steps of
    another, over `batches` of arguments: same losses, same gradients, every step."""
    import copy
    import warnings

    from tinygrad_rnn import jit
    eager_model = make()
    jit_model = copy.deepcopy(eager_model)  # same weights, generators in the same state

    def step(model, *args):
        model.zero_grad()
        out = call(model, *args)
        loss = (out * out).sum()
        loss.backward()
        return loss

    jitted = jit(lambda *args: step(jit_model, *args))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to eager would hide a missing replay
        for args in batches:
            want, got = step(eager_model, *args), jitted(*args)
            np.testing.assert_allclose(got.data, want.data, rtol=1e-6)
            for (name, p), q in zip(eager_model.named_parameters(), jit_model.parameters()):
                np.testing.assert_allclose(q.grad, p.grad, rtol=1e-5, atol=1e-6, err_msg=name)
    assert jitted.recordings == 1


def _lengths(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, T + 1, B)


def _mask(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((B, T)) < 0.7


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_a_jitted_stack_step_with_lengths_and_dropout_replays_as_eager(kind):
    batches = [(_x(s), FULL if s == 0 else _lengths(s)) for s in range(4)]
    _replays_equal_eager(lambda: _stack(kind), lambda m, x, n: m(x, lengths=n)[0], batches)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_jitted_stack_step_with_a_keras_mask_replays_as_eager(kind):
    batches = [(_x(s), ALL if s == 0 else _mask(s)) for s in range(4)]
    _replays_equal_eager(lambda: _stack(kind, batch_first=False),
                         lambda m, x, k: m(x.transpose(1, 0, 2), mask=k)[0], batches)


def test_a_jitted_packed_step_replays_as_eager_for_other_orders():
    orders = [[6, 2, 4, 5], [4, 5, 6, 2], [2, 6, 5, 4]]  # one batch_sizes: one recording
    packed = [pack_padded_sequence(_x(s), n, batch_first=True, enforce_sorted=False)
              for s, n in enumerate(orders)]
    # a PackedSequence argument: its batch_sizes key the recording, its sort order is read
    _replays_equal_eager(lambda: _stack("LSTM"), lambda m, p: m(p)[0].data,
                         [(p,) for p in packed])


@pytest.mark.parametrize("cell", [nn.LSTMCell, nn.GRUCell])
def test_a_jitted_bidirectional_recurrent_with_dropout_replays_as_eager(cell):
    def make():
        inner = cell(I, H, dropout=0.25, recurrent_dropout=0.4, rng=np.random.default_rng(3))
        return nn.Bidirectional(nn.Recurrent(inner, return_sequences=True)).train()

    batches = [(_x(s), ALL if s == 0 else _mask(s)) for s in range(4)]
    _replays_equal_eager(make, lambda m, x, k: m(x, mask=k), batches)


def test_a_replay_refuses_bad_lengths_as_the_eager_call_does():
    from tinygrad_rnn import jit
    layer = _stack("GRU").eval()
    jitted = jit(lambda x, n: layer(x, lengths=n)[0].sum())
    jitted(_x(1), PADDED)  # records
    with pytest.raises(ValueError, match=r"GRU: lengths must be in \[1, T=6\], got \[0\]"):
        jitted(_x(2), np.array([6, 0, 3, 2]))
