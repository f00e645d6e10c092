"""An adversarial review of tg.jit (issue 16): what a reasonable user might try.

Each case runs a jitted step on a model and the plain step on a deep-copied twin, call after
call with changing data, and asks for the same returned values and `.grad` (a fallback with
its warning is a fine answer too, a silently different one is not). The `test_fixed_` cases
are bugs this review found (each a minimal reproduction), fixed since: aliased arguments,
a parameter's own array as an argument, backward(grad) with an argument grad, clip_grad_*_
inside the step, a replaced layer or Parameter, a cell's settings, packing inside the step,
an argument with an outside graph, a NaN scalar argument.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from test_jit_layers import assert_close, assert_same_grads, assert_same_result

import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn
from tinygrad_rnn import tensor as tensor_mod
from tinygrad_rnn.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

Fallback = tg.ReplayFallbackWarning


def run_twins(model, step, calls, *, replay_only=True, **jit_kw):
    """`calls`: argument tuples (after the model). The jitted step on `model`, the eager step
    on a deep copy, compared at every call; replay_only: a fallback warning fails the test."""
    twin = copy.deepcopy(model)
    jitted = tg.jit(step, **jit_kw)
    with warnings.catch_warnings():
        if replay_only:
            warnings.simplefilter("error", Fallback)
        for i, args in enumerate(calls):
            got, want = jitted(model, *args), step(twin, *args)
            assert_same_result(got, want, f"call {i}")
            assert_same_grads(model, twin)
    assert tensor_mod._TRACE is None
    return jitted


def floats(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def loss_step(model, x):
    model.zero_grad()
    out = model(x)
    loss = (out * out).sum()
    loss.backward()
    return loss


# ---- what works ------------------------------------------------------------------------------

class Odd(nn.Module):
    """Arguments in nested structures, 0-d arrays, numpy and Python scalars."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, batch, scale, shift):
        x = tg.Tensor.from_numpy(batch["x"][0])
        return self.lin(x * scale + batch["x"][1]) * batch["w"] + shift


def odd_step(model, batch, scale, shift):
    model.zero_grad()
    out = model(batch, scale, shift)
    loss = (out * out).mean()
    loss.backward()
    return {"loss": loss, "out": [out]}


def test_nested_arguments_0d_arrays_scalars_and_strided_arrays_replay_equal_eager():
    rng = np.random.default_rng(0)
    calls = []
    for i in range(5):
        wide = floats(rng, 3, 6)
        x = wide[:2, ::2] if i % 2 else np.asfortranarray(wide[:2, :3])  # strided
        w = np.asarray(rng.standard_normal(), np.float32)  # 0-d array, read afresh
        calls.append(({"x": (x, tg.Tensor(floats(rng, 2, 3))), "w": w}, np.float32(2.0), 0.5))
    jitted = run_twins(Odd(), odd_step, calls)
    assert jitted.recordings == 1


def two_input_step(model, a, b):
    model.zero_grad()
    loss = (model(a) * 2.0 + model(b)).sum()
    loss.backward()
    return loss


def test_one_array_passed_twice_is_its_own_recording_and_equals_eager():
    """Arrays bind by identity, so the aliasing pattern is part of the key."""
    rng = np.random.default_rng(1)
    same = floats(rng, 2, 3)
    calls = [(floats(rng, 2, 3), floats(rng, 2, 3)), (same, same), (same, floats(rng, 2, 3)),
             (floats(rng, 2, 3), floats(rng, 2, 3))]
    assert run_twins(nn.Linear(3, 2), two_input_step, calls).recordings == 2


def test_backward_twice_without_retain_graph_raises_as_eager_and_caches_nothing():
    def twice(model, x):
        loss = (model(x) ** 2).sum()
        loss.backward()
        loss.backward()
        return loss

    model, x = nn.Linear(3, 2), np.ones((2, 3), np.float32)
    jitted = tg.jit(twice)
    with pytest.raises(RuntimeError) as eager:
        twice(copy.deepcopy(model), x)
    for _ in range(2):  # each call records again and raises the same error
        with pytest.raises(RuntimeError, match="backward through a graph a second time") as got:
            jitted(model, x)
        assert str(got.value) == str(eager.value)
    assert jitted.recordings == 0 and tensor_mod._TRACE is None


def test_an_exception_on_the_first_call_caches_nothing_and_later_calls_replay():
    calls = {"n": 0}

    def flaky(model, x):
        calls["n"] += 1
        loss = loss_step(model, x)
        if calls["n"] == 1:
            raise KeyError("the step's own error")
        return loss

    model = nn.Linear(3, 2)
    jitted = tg.jit(flaky)
    with pytest.raises(KeyError, match="the step's own error"):
        jitted(model, np.ones((2, 3), np.float32))
    assert jitted.recordings == 0 and tensor_mod._TRACE is None
    rng = np.random.default_rng(2)
    twin = copy.deepcopy(model)
    for _ in range(3):
        x = floats(rng, 2, 3)
        assert_same_result(jitted(model, x), loss_step(twin, x))
        assert_same_grads(model, twin)
    assert jitted.recordings == 1


def test_grad_mode_changes_inside_the_step_and_returning_arguments_and_parameters():
    def step(model, x, xt):
        model.zero_grad()
        with tg.no_grad():
            frozen = model(x)
        tg.set_grad_enabled(False)
        frozen = frozen + model(x)
        tg.set_grad_enabled(True)
        loss = (model(x) * frozen).sum()
        loss.backward()
        return loss, xt, model.weight, frozen

    rng = np.random.default_rng(3)
    calls = [(x, tg.Tensor(x)) for x in (floats(rng, 2, 3) for _ in range(4))]
    assert run_twins(nn.Linear(3, 3), step, calls).recordings == 1


def test_requires_grad_of_an_argument_flipping_records_each_way_once():
    rng = np.random.default_rng(4)
    model, x = nn.Linear(3, 2), floats(rng, 2, 3)
    twin, jitted = copy.deepcopy(model), tg.jit(loss_step)
    for flag in (True, True, False, True, False):
        a, b = tg.Tensor(x, requires_grad=flag), tg.Tensor(x, requires_grad=flag)
        assert_same_result(jitted(model, a), loss_step(twin, b))
        assert (a.grad is None) == (not flag)
        if flag:
            assert_close(a.grad, b.grad)
    assert jitted.recordings == 2


class LengthsMasks(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(2, 3, num_layers=2, bidirectional=True)

    def forward(self, x, lengths, mask):
        out, (h, c) = self.rnn(x, lengths=lengths, mask=mask)
        return out.sum() + (h * c).sum()


@pytest.mark.parametrize("as_tensor", [False, True], ids=["arrays", "tensors"])
def test_bidirectional_lengths_all_full_then_short_and_masks_as_tensors(as_tensor):
    rng = np.random.default_rng(5)
    wrap = tg.Tensor if as_tensor else np.asarray
    lens = [[5, 5, 5], [5, 5, 5], [5, 2, 1], [1, 4, 5]]  # all T first, then short ones
    len_calls = [(floats(rng, 5, 3, 2), wrap(np.array(v)), None) for v in lens]
    mask_calls = [(floats(rng, 5, 3, 2), None, wrap(rng.random((3, 5)) > 0.3)) for _ in lens]
    assert run_twins(LengthsMasks(), loss_step_3, len_calls).recordings == 1
    assert run_twins(LengthsMasks(), loss_step_3, mask_calls).recordings == 1


def loss_step_3(model, x, lengths, mask):
    model.zero_grad()
    loss = model(x, lengths, mask)
    loss.backward()
    return loss


class TiedLM(nn.Module):
    """Embedding with padding_idx, a GRU, and the output head tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4, padding_idx=0)
        self.rnn = nn.RNN(4, 4, batch_first=True, nonlinearity="relu")

    def forward(self, idx):
        return self.rnn(self.emb(idx))[0] @ self.emb.weight.T


def tied_step(model, idx, y):
    model.zero_grad()
    loss = F.cross_entropy(model(idx).reshape(-1, 7), y)
    loss.backward()
    return loss


def test_embedding_padding_idx_int32_indices_and_tied_weights_replay_equal_eager():
    rng = np.random.default_rng(6)
    calls = [(rng.integers(0, 7, (2, 3)).astype(np.int32), rng.integers(0, 7, 6).astype(np.int32))
             for _ in range(4)]
    model = TiedLM()
    run_twins(model, tied_step, calls)


def test_float64_default_dtype_with_float32_data():
    rng = np.random.default_rng(7)
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    try:
        model = nn.GRU(2, 3)
        calls = [(floats(rng, 4, 2, 2),) for _ in range(4)]
        assert run_twins(model, gru_step, calls).recordings == 1
    finally:
        tg.set_default_dtype(previous)


def gru_step(model, x):
    model.zero_grad()
    out, h = model(x)
    loss = (out * out).sum() + h.sum()
    loss.backward()
    return loss


class ValueGate(nn.Cell):
    """A user's cell: a branch on a hyperparameter (fine), one on a value when `peek`."""

    def __init__(self, clamp, peek=False):
        super().__init__()
        self.hidden_size, self.clamp, self.peek = 3, clamp, peek
        init = np.random.default_rng(8)
        self.w = nn.Parameter(init.uniform(-0.5, 0.5, (2, 3)).astype(np.float32))
        self.u = nn.Parameter(init.uniform(-0.5, 0.5, (3, 3)).astype(np.float32))

    def forward(self, x, h):
        z = x @ self.w + h @ self.u
        if self.clamp:
            z = z.clip(-1.0, 1.0)
        if self.peek and z.sum().item() > 0:  # the caller's contract: check=True catches it
            z = z * 2.0
        return z.tanh()


@pytest.mark.parametrize("clamp", [True, False])
def test_check_passes_a_cell_branching_on_a_hyperparameter(clamp):
    rng = np.random.default_rng(9)
    model = nn.Recurrent(ValueGate(clamp), return_sequences=True)
    run_twins(model, loss_step, [(floats(rng, 2, 4, 2),) for _ in range(3)], check=True)


def test_check_catches_a_cell_branching_on_a_value():
    model = nn.Recurrent(ValueGate(clamp=False, peek=True), return_sequences=True)
    jitted = tg.jit(loss_step, check=True)
    up, down = np.full((2, 4, 2), 0.5, np.float32), np.full((2, 4, 2), -0.5, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bool() warning while recording
        jitted(model, up)
        jitted(model, up)
        with pytest.raises(tg.ReplayMismatchError, match="Python branch on a tensor's value"):
            jitted(model, down)


class DropSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.drop = nn.Dropout(0.4, rng=np.random.default_rng(10))

    def forward(self, x):
        a, b, c = self.drop(self.lin(x)).split(2, axis=-1)
        return a * b.sigmoid() + c


def test_check_passes_dropout_and_a_multi_output_op():
    rng = np.random.default_rng(11)
    run_twins(DropSplit(), loss_step, [(floats(rng, 3, 4),) for _ in range(4)], check=True)


def test_a_long_unroll_replays_equal_eager():
    rng = np.random.default_rng(12)
    model = nn.RNN(2, 3)
    calls = [(floats(rng, 400, 2, 2),) for _ in range(3)]
    assert run_twins(model, gru_step, calls).recordings == 1


# ---- bugs: a replay silently differs from the eager step --------------------------------------

# ---- bugs: a replay silently differs from the eager step --------------------------------------
# jit.py keys a call on its arguments' shapes, dtypes and Python values, and recording.py binds
# arrays to slots by identity; the cases below slip through one or the other.

def two_arrays(a, b):
    return tg.Tensor.from_numpy(a) * 2.0 + tg.Tensor.from_numpy(b)


def test_fixed_the_same_array_twice_at_record_then_two_arrays():
    jitted = tg.jit(two_arrays)
    zeros = np.zeros(3, np.float32)
    jitted(zeros, zeros)
    a, b = np.ones(3, np.float32), np.full(3, 10.0, np.float32)
    assert_close(jitted(a, b).numpy(), two_arrays(a, b).numpy())  # 12, replay gives 30


def lstm_state_step(model, x, h, c):
    model.zero_grad()
    out, (h_n, c_n) = model(x, (h, c))
    loss = (out * out).sum()
    loss.backward()
    return loss, h_n.detach(), c_n.detach()


def test_fixed_lstm_first_state_h_and_c_one_zeros_array():
    rng = np.random.default_rng(20)
    model = nn.LSTM(2, 3)
    twin, jitted = copy.deepcopy(model), tg.jit(lstm_state_step)
    h = c = np.zeros((1, 2, 3), np.float32)
    for i in range(3):
        x = floats(rng, 4, 2, 2)
        got, want = jitted(model, x, h, c), lstm_state_step(twin, x, h, c)
        assert_same_result(got, want, f"call {i}")
        assert_same_grads(model, twin)
        h, c = want[1].numpy(), want[2].numpy()


def test_fixed_an_argument_that_is_a_parameters_array_at_record():
    def step(model, w, x):
        model.zero_grad()
        loss = (model(x) * (tg.Tensor.from_numpy(w) @ x.T).sum()).sum()
        loss.backward()
        return loss

    rng = np.random.default_rng(21)
    model, x = nn.Linear(3, 3), floats(rng, 2, 3)
    twin, jitted = copy.deepcopy(model), tg.jit(step)
    jitted(model, model.weight.numpy(), x)
    step(twin, twin.weight.numpy(), x)
    other = floats(rng, 3, 3)
    assert_same_result(jitted(model, other, x), step(twin, other, x))


def vjp_step(model, x, g):
    model.zero_grad()
    out = model(x)
    out.backward(g)
    return out


@pytest.mark.parametrize("wrap", [np.asarray, tg.Tensor.from_numpy], ids=["array", "tensor"])
def test_fixed_backward_with_an_argument_grad(wrap):
    rng = np.random.default_rng(22)
    calls = [(floats(rng, 4, 3), wrap(floats(rng, 4, 2))) for _ in range(3)]
    run_twins(nn.Linear(3, 2), vjp_step, calls, replay_only=False)


def test_fixed_clip_grad_norm_inside_the_step():
    def step(model, x):
        model.zero_grad()
        loss = (model(x) ** 2).sum() * 100.0
        loss.backward()
        tg.optim.clip_grad_norm_(model.parameters(), 0.1)
        return loss

    rng = np.random.default_rng(23)
    run_twins(nn.Linear(3, 2), step, [(floats(rng, 4, 3),) for _ in range(3)],
              replay_only=False)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x).tanh())


@pytest.mark.parametrize("swap", ["submodule", "parameter"])
def test_fixed_a_new_submodule_or_parameter_between_calls(swap):
    rng = np.random.default_rng(24)
    model, jitted = Head(), tg.jit(loss_step)
    for _ in range(2):
        jitted(model, floats(rng, 2, 3))
    if swap == "submodule":
        model.head = nn.Linear(4, 2)
    else:
        model.head.weight = nn.Parameter(np.ones((2, 4), np.float32))
    twin, x = copy.deepcopy(model), floats(rng, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Fallback)
        assert_same_result(jitted(model, x), loss_step(twin, x))
    assert_same_grads(model, twin)


class Scaled(nn.Cell):
    def __init__(self, scale):
        super().__init__()
        self.hidden_size, self.scale = 3, scale
        init = np.random.default_rng(25)
        self.w = nn.Parameter(init.uniform(-0.5, 0.5, (2, 3)).astype(np.float32))
        self.u = nn.Parameter(init.uniform(-0.5, 0.5, (3, 3)).astype(np.float32))

    def forward(self, x, h):
        return ((x @ self.w + h @ self.u) * self.scale).tanh()


@pytest.mark.parametrize("cell, setting, value", [
    pytest.param(lambda: Scaled(1.0), "scale", 3.0, id="custom-cell-scale"),
    pytest.param(lambda: nn.GRUCell(2, 3, dropout=0.5, rng=np.random.default_rng(26)),
                 "dropout", 0.0, id="GRUCell-dropout"),
])
def test_fixed_a_cell_setting_changed_between_calls(cell, setting, value):
    rng = np.random.default_rng(27)
    model, jitted = nn.Recurrent(cell(), return_sequences=True), tg.jit(loss_step)
    x = floats(rng, 2, 4, 2)
    jitted(model, x)
    jitted(model, x)
    setattr(model.cell, setting, value)
    twin = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Fallback)
        assert_same_result(jitted(model, x), loss_step(twin, x))


def packed_step(model, x, lengths, enforce_sorted=True):
    model.zero_grad()
    out, h = model(pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted))
    padded, _ = pad_packed_sequence(out)
    loss = (padded * padded).sum() + (h * h).sum()
    loss.backward()
    return loss


def test_fixed_pack_padded_sequence_inside_the_step_freezes_an_array_input():
    rng = np.random.default_rng(28)
    lengths = np.array([4, 3, 2])
    calls = [(floats(rng, 4, 3, 2), lengths) for _ in range(3)]
    with pytest.warns(Fallback, match="pack_padded_sequence inside the step"):
        run_twins(nn.GRU(2, 3), packed_step, calls, replay_only=False)


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_fixed_pack_padded_sequence_inside_the_step_with_new_lengths(enforce_sorted):
    rng = np.random.default_rng(29)
    lens = [[4, 3, 2], [4, 2, 2], [3, 3, 3]]
    calls = [(tg.Tensor(floats(rng, 4, 3, 2)),
              np.array(v if enforce_sorted else v[::-1]), enforce_sorted) for v in lens]
    with pytest.warns(Fallback, match="pack before the call and pass the PackedSequence"):
        run_twins(nn.GRU(2, 3), packed_step, calls, replay_only=False)


def test_fixed_an_argument_with_an_outside_graph_after_a_leaf_recording():
    rng = np.random.default_rng(30)
    head, encoder, x = nn.Linear(3, 2), nn.Linear(3, 3), floats(rng, 2, 3)
    jitted = tg.jit(loss_step)
    for _ in range(2):
        jitted(head, tg.Tensor(x, requires_grad=True))
    twin_head, twin_encoder = copy.deepcopy(head), copy.deepcopy(encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Fallback)
        jitted(head, encoder(x))
    loss_step(twin_head, twin_encoder(x))
    assert_same_grads(encoder, twin_encoder)


def test_fixed_a_nan_scalar_argument_records_once():
    def step(model, x, scale):
        model.zero_grad()
        loss = (model(x) * scale).sum()
        loss.backward()
        return loss

    model, x = nn.Linear(3, 2), np.ones((2, 3), np.float32)
    jitted = tg.jit(step)
    for _ in range(3):
        jitted(model, x, float("nan"))
    assert jitted.recordings == 1
