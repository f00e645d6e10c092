"""tg.jit (issue 16): replayed steps equal eager ones (losses, returns, gradients of
parameters and of Tensor arguments), the cache key, every fallback with its warning,
check=True, and errors raised at replay. The recurrent layers are in test_jit_layers.py.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from test_jit_layers import assert_close, assert_same_grads, assert_same_result, train_twins

import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn
from tinygrad_rnn import tensor as tensor_mod

Fallback = tg.ReplayFallbackWarning


def batches(n, *shapes_and_kinds, seed=0):
    """n tuples of fresh arrays: ("f", shape) float32 normal, ("i", shape, high) integers."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        row = []
        for spec in shapes_and_kinds:
            if spec[0] == "f":
                row.append(rng.standard_normal(spec[1]).astype(np.float32))
            else:
                row.append(rng.integers(0, spec[2], spec[1]))
        out.append(tuple(row))
    return out


class MLP(nn.Module):
    def __init__(self, i=4, h=6, o=3):
        super().__init__()
        self.a, self.b = nn.Linear(i, h), nn.Linear(h, o)

    def forward(self, x):
        return self.b(self.a(x).tanh())


# ---- 1. a replay equals the eager step -----------------------------------------------------

class EmbedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)
        self.head = nn.Linear(4, 5)

    def forward(self, idx):
        return self.head(self.emb(idx))


def test_embedding_cross_entropy_with_ignore_index():
    def step(model, idx, y):
        model.zero_grad()
        loss = F.cross_entropy(model(idx), y, ignore_index=3)  # targets 3 count for nothing
        loss.backward()
        return loss

    np.random.seed(0)
    data = batches(5, ("i", 12, 10), ("i", 12, 5))
    assert any((y == 3).any() for _, y in data)
    train_twins(EmbedModel(), step, data)


@pytest.mark.parametrize("loss_fn", [
    lambda out, y: F.binary_cross_entropy(out.sigmoid(), y),
    lambda out, y: F.binary_cross_entropy_with_logits(out, y),
    lambda out, y: F.mse_loss(out, y),
    lambda out, y: F.mse_loss(out, y, reduction="sum"),
], ids=["bce", "bce_with_logits", "mse", "mse_sum"])
def test_float_target_losses(loss_fn):
    def step(model, x, y):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    np.random.seed(0)
    rng = np.random.default_rng(1)
    data = [(x, (rng.random((8, 3)) > 0.5).astype(np.float32))
            for (x,) in batches(5, ("f", (8, 4)))]
    train_twins(MLP(), step, data)


def test_linear_only_model():
    def step(model, x, y):
        model.zero_grad()
        loss = F.mse_loss(model(x), y) + (model(x) - tg.Tensor.from_numpy(y)).abs().mean()
        loss.backward()
        return loss

    np.random.seed(0)
    train_twins(nn.Linear(4, 2), step, batches(5, ("f", (6, 4)), ("f", (6, 2))))


def test_arithmetic_with_an_argument_array_reads_it_afresh():
    def step(model, x, y):
        model.zero_grad()
        loss = ((model(x) - y) ** 2).mean()  # y: a numpy argument, lifted by the operator
        loss.backward()
        return loss

    np.random.seed(0)
    train_twins(nn.Linear(4, 2), step, batches(5, ("f", (6, 4)), ("f", (6, 2))))


def test_returned_tuples_lists_and_dicts():
    def step(model, x, y):
        model.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        return {"loss": loss, "parts": (logits, [logits.sum(), loss * 2])}

    np.random.seed(0)
    train_twins(MLP(), step, batches(5, ("f", (5, 4)), ("i", 5, 3)))


def test_forward_only_under_no_grad():
    def predict(model, x):
        return model(x).tanh(), model(x).sum()

    np.random.seed(0)
    model = MLP()
    jitted = tg.jit(predict)
    for (x,) in batches(4, ("f", (5, 4))):
        with tg.no_grad():
            got, want = jitted(model, x), predict(model, x)
        assert_same_result(got, want)
        assert all(not t.requires_grad for t in got)
    assert jitted.recordings == 1
    assert all(p.grad is None for p in model.parameters())


def accumulate_step(model, x, y):
    loss = F.cross_entropy(model(x), y)  # no zero_grad: gradients add up over calls
    loss.backward()
    return loss


def test_gradients_accumulate_as_eager_without_zero_grad():
    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    jitted = tg.jit(accumulate_step)
    for x, y in batches(4, ("f", (5, 4)), ("i", 5, 3)):
        assert_same_result(jitted(model, x, y), accumulate_step(twin, x, y))
        assert_same_grads(model, twin)
    assert jitted.recordings == 1


@pytest.mark.parametrize("where", ["module", "optimizer"])
def test_zero_grad_inside_fn_is_replayed(where):
    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    opts = {id(m): tg.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)}

    def step(m, x, y):
        (m if where == "module" else opts[id(m)]).zero_grad()
        return accumulate_step(m, x, y)

    jitted = tg.jit(step)
    for x, y in batches(4, ("f", (5, 4)), ("i", 5, 3)):
        assert_same_result(jitted(model, x, y), step(twin, x, y))
        assert_same_grads(model, twin)  # one step's gradient, not a running sum
    assert jitted.recordings == 1


def test_two_backward_calls_with_retain_graph():
    def step(model, x, y):
        model.zero_grad()
        hidden = model.a(x).tanh()
        loss = F.cross_entropy(model.b(hidden), y)
        loss.backward(retain_graph=True)
        (hidden ** 2).mean().backward(retain_graph=True)
        loss.backward()  # through the retained graph again
        return loss

    np.random.seed(0)
    train_twins(MLP(), step, batches(5, ("f", (5, 4)), ("i", 5, 3)))


def test_tensor_argument_that_requires_grad_gets_its_grad():
    def step(model, x, y):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    jitted = tg.jit(step)
    for arr, y in batches(4, ("f", (5, 4)), ("i", 5, 3)):
        x_j, x_e = tg.Tensor(arr, requires_grad=True), tg.Tensor(arr, requires_grad=True)
        assert_same_result(jitted(model, x_j, y), step(twin, x_e, y))
        assert x_j.grad is not None
        assert_close(x_j.grad, x_e.grad, "x.grad")
        assert_same_grads(model, twin)
    assert jitted.recordings == 1


# ---- 2. the key: what records again --------------------------------------------------------

def plain_step(model, x):
    model.zero_grad()
    loss = (model(x) ** 2).mean()
    loss.backward()
    return loss


def test_a_new_shape_records_again_and_the_old_one_still_replays():
    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    jitted = tg.jit(plain_step)
    rng = np.random.default_rng(0)
    for count, batch in [(1, 3), (1, 3), (2, 5), (2, 5), (2, 3), (3, 1), (3, 5)]:
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        assert_same_result(jitted(model, x), plain_step(twin, x))
        assert_same_grads(model, twin)
        assert jitted.recordings == count


def test_a_new_dtype_records_again():
    def step(x, w):
        loss = (w * x).sum()
        loss.backward()
        return loss

    w_j = tg.Tensor(np.ones(3, np.float64), requires_grad=True)
    w_e = tg.Tensor(np.ones(3, np.float64), requires_grad=True)
    jitted = tg.jit(step)
    for count, dtype in [(1, np.float64), (1, np.float64), (2, np.float32), (2, np.float32),
                         (2, np.float64)]:
        x = tg.Tensor(np.arange(3, dtype=dtype) + count)
        assert_same_result(jitted(x, w_j), step(x, w_e))
        assert_close(w_j.grad, w_e.grad)
        assert jitted.recordings == count


def test_grad_mode_is_part_of_the_key():
    def forward(model, x):
        return model(x).sum()

    np.random.seed(0)
    model = MLP()
    jitted = tg.jit(forward)
    x = np.ones((2, 4), np.float32)
    with_grad = jitted(model, x)
    with tg.no_grad():
        without = jitted(model, x)
        again = jitted(model, x)
    assert jitted.recordings == 2
    assert with_grad.requires_grad and not without.requires_grad and not again.requires_grad
    assert_close(without.numpy(), with_grad.numpy())
    assert_close(again.numpy(), with_grad.numpy())


def test_python_scalar_arguments_are_keyed_by_value():
    def step(x, scale, w):
        loss = (w * x * scale).sum()
        loss.backward()
        return loss

    jitted = tg.jit(step)
    x = np.arange(3, dtype=np.float32)
    for count, scale in [(1, 2.0), (1, 2.0), (2, 3.0), (2, 3.0), (2, 2.0), (3, 5)]:
        w = tg.Tensor(np.ones(3, np.float32), requires_grad=True)  # a fresh .grad each call
        loss = jitted(tg.Tensor(x), scale, w)
        assert jitted.recordings == count
        np.testing.assert_array_equal(loss.numpy(), np.float32(3.0 * scale))
        np.testing.assert_array_equal(w.grad, x * np.float32(scale))


def test_training_flag_is_part_of_the_key():
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5, rng=np.random.default_rng(0)))
    jitted = tg.jit(lambda m, x: m(x))
    x = np.ones((3, 4), np.float32)
    with tg.no_grad():
        jitted(model, x)
        model.eval()
        first, second = jitted(model, x), jitted(model, x)
        want = model(x)
    assert jitted.recordings == 2
    assert_close(first.numpy(), want.numpy())
    assert_close(second.numpy(), want.numpy())


# ---- 3. what cannot be replayed runs eagerly, with a warning naming why --------------------

def fallback_twins(model, step, data, match, *, recordings=1):
    """Every call warns with `match`, and its result and gradients are the eager twin's."""
    twin = copy.deepcopy(model)
    jitted = tg.jit(step)
    for args in data:
        with pytest.warns(Fallback, match=match):
            got = jitted(model, *args)
        assert_same_result(got, step(twin, *args))
        assert_same_grads(model, twin)
    assert jitted.recordings == recordings
    assert tensor_mod._TRACE is None
    return twin


XY = batches(3, ("f", (5, 4)), ("i", 5, 3))


def test_retain_grad_falls_back():
    def step(model, x, y):
        model.zero_grad()
        hidden = model.a(x)
        hidden.retain_grad()
        loss = F.cross_entropy(model.b(hidden.tanh()), y)
        loss.backward()
        return loss

    np.random.seed(0)
    fallback_twins(MLP(), step, XY, "retain_grad")


class RNNModel(nn.Module):
    def __init__(self, stateful=False):
        super().__init__()
        self.rnn = nn.Recurrent(nn.GRUCell(4, 3), stateful=stateful)
        self.head = nn.Linear(3, 3)

    def forward(self, x):
        return self.head(self.rnn(x))


SEQ = batches(3, ("f", (5, 6, 4)), ("i", 5, 3))


def seq_step(model, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss


def test_step_observers_fall_back_whether_added_before_or_after_recording():
    np.random.seed(0)
    model = RNNModel()
    twin = copy.deepcopy(model)
    jitted = tg.jit(seq_step)
    jitted(model, *SEQ[0])  # recorded without observers
    seq_step(twin, *SEQ[0])
    for x, y in SEQ[1:]:
        with tg.diagnostics.record(model) as rec, pytest.warns(Fallback, match="step observers"):
            got = jitted(model, x, y)
        with tg.diagnostics.record(twin) as rec_twin:
            want = seq_step(twin, x, y)
        assert_same_result(got, want)
        assert_same_grads(model, twin)
        assert rec.grad_norms()  # the observers saw the eager step
        norms, twin_norms = rec.grad_norms(), rec_twin.grad_norms()
        assert list(norms) == list(twin_norms)
        for name in norms:
            for key in twin_norms[name]:
                assert_close(norms[name][key], twin_norms[name][key], f"{name} {key}")

    fresh = tg.jit(seq_step)  # observers present while it records
    with tg.diagnostics.record(model), pytest.warns(Fallback, match="step observers"):
        assert_same_result(fresh(model, x, y), seq_step(twin, x, y))


def test_stateful_layer_falls_back_and_carries_its_state():
    np.random.seed(0)
    twin = fallback_twins(RNNModel(stateful=True), seq_step, SEQ, "stateful")
    assert twin.rnn.states is not None


def test_autograd_grad_with_create_graph_falls_back():
    def step(model, x, y):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        (g,) = tg.grad(loss, [model.a.weight], create_graph=True)
        (loss + (g * g).sum()).backward()
        return loss

    np.random.seed(0)
    fallback_twins(MLP(), step, XY, "autograd.grad")


def test_autograd_grad_alone_falls_back():
    def step(model, x, y):
        loss = F.cross_entropy(model(x), y)
        return tg.grad(loss, [model.b.bias])[0]

    np.random.seed(0)
    fallback_twins(MLP(), step, XY, "autograd.grad")


def checkpointed_step(model, x, y):
    model.zero_grad()
    hidden = tg.autograd.checkpoint(lambda t: model.a(t).tanh(), tg.Tensor(x))
    loss = F.cross_entropy(model.b(hidden), y)
    loss.backward()
    return loss


def test_checkpoint_falls_back():
    np.random.seed(0)
    fallback_twins(MLP(), checkpointed_step, XY, "runs eagerly")


@pytest.mark.filterwarnings("ignore::tinygrad_rnn.jit.ReplayFallbackWarning")  # today's words
def test_checkpoint_fallback_warning_names_checkpoint():
    np.random.seed(0)
    fallback_twins(MLP(), checkpointed_step, XY, "checkpoint")


def test_optimizer_step_inside_fn_falls_back():
    np.random.seed(0)
    model = MLP()
    opts = {}

    def step(m, x, y):
        opt = opts.setdefault(id(m), tg.optim.SGD(m.parameters(), lr=0.5))
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss

    twin = fallback_twins(model, step, XY, "optimizer")
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())  # both updated three times


def test_in_place_write_on_a_no_grad_tensor_falls_back():
    np.random.seed(0)
    counters = {}

    def step(model, x, y):
        count = counters.setdefault(id(model), tg.Tensor(np.zeros(1, np.float32)))
        count += 1
        model.zero_grad()
        loss = F.cross_entropy(model(x), y) * count.sum()
        loss.backward()
        return loss

    model = MLP()
    twin = fallback_twins(model, step, XY, "in-place")
    np.testing.assert_array_equal(counters[id(model)].numpy(), [3.0])
    np.testing.assert_array_equal(counters[id(twin)].numpy(), [3.0])


def test_returning_a_float_falls_back():
    def step(model, x, y):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.item()

    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    jitted = tg.jit(step)
    for x, y in XY:
        with pytest.warns(Fallback, match="returned a float"):
            got = jitted(model, x, y)
        assert isinstance(got, float) and got == step(twin, x, y)
        assert_same_grads(model, twin)


def test_an_argument_carrying_an_outside_graph_falls_back():
    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    jitted = tg.jit(plain_step)
    for (x,) in batches(3, ("f", (2, 4))):
        h_j = model.a(tg.Tensor(x))  # computed with grad before the call
        h_e = twin.a(tg.Tensor(x))
        with pytest.warns(Fallback, match="outside"):
            got = jitted(model.b, h_j)
        assert_same_result(got, plain_step(twin.b, h_e))
        assert_same_grads(model, twin)


def test_more_than_eight_recordings_fall_back():
    np.random.seed(0)
    model = MLP()
    twin = copy.deepcopy(model)
    jitted = tg.jit(plain_step)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Fallback)
        for batch in range(1, 9):
            x = rng.standard_normal((batch, 4)).astype(np.float32)
            assert_same_result(jitted(model, x), plain_step(twin, x))
    assert jitted.recordings == 8
    x = rng.standard_normal((9, 4)).astype(np.float32)
    with pytest.warns(Fallback, match="8 recordings"):
        got = jitted(model, x)
    assert_same_result(got, plain_step(twin, x))
    assert_same_grads(model, twin)
    assert jitted.recordings == 8
    with warnings.catch_warnings():  # the recorded shapes still replay, silently
        warnings.simplefilter("error", Fallback)
        x = rng.standard_normal((3, 4)).astype(np.float32)
        assert_same_result(jitted(model, x), plain_step(twin, x))


# ---- 4. check=True -------------------------------------------------------------------------

def test_check_passes_on_a_correct_step_and_keeps_the_eager_results():
    np.random.seed(0)
    model = nn.Sequential(MLP(), nn.Dropout(0.3, rng=np.random.default_rng(2)))
    twin = copy.deepcopy(model)
    jitted = tg.jit(seq_step_flat, check=True)
    opt_j, opt_e = (tg.optim.Adam(m.parameters(), lr=0.01) for m in (model, twin))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Fallback)
        for x, y in batches(5, ("f", (6, 4)), ("i", 6, 3)):
            got, want = jitted(model, x, y), seq_step_flat(twin, x, y)
            assert_same_result(got, want)
            assert_same_grads(model, twin)  # once, not replay + eager
            assert model[1].rng.bit_generator.state == twin[1].rng.bit_generator.state
            opt_j.step()
            opt_e.step()
    assert jitted.recordings == 1


def seq_step_flat(model, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss


def branchy_step(model, x):
    model.zero_grad()
    h = model(x)
    y = h * 2 if h.sum().item() > 0 else h * 3  # a Python branch on a value
    loss = (y ** 2).mean()
    loss.backward()
    return loss


def test_check_catches_a_value_dependent_branch_and_leaves_the_eager_step():
    np.random.seed(0)
    model = nn.Linear(3, 2)
    twin = copy.deepcopy(model)
    jitted = tg.jit(branchy_step, check=True)
    sign = np.sign(model(np.ones((4, 3), np.float32)).sum().item())
    pos = sign * np.ones((4, 3), np.float32)
    for _ in range(2):
        assert_same_result(jitted(model, pos), branchy_step(twin, pos))
    with pytest.raises(tg.ReplayMismatchError, match=r"op 'mul' \(scope"):
        jitted(model, -pos)
    branchy_step(twin, -pos)
    assert_same_grads(model, twin)  # the eager run's gradients, not the replay's

    unchecked = tg.jit(branchy_step)  # without check, the replay silently follows the record
    unchecked(model, pos)
    unchecked(model, pos)
    wrong = unchecked(model, -pos)
    assert not np.allclose(wrong.numpy(), branchy_step(twin, -pos).numpy())


def test_check_catches_a_numpy_computation_on_an_argument():
    def step(model, x, y):
        model.zero_grad()
        loss = ((model(x) - tg.Tensor(y * 2.0)) ** 2).mean()  # frozen at recording
        loss.backward()
        return loss

    np.random.seed(0)
    model = nn.Linear(3, 2)
    twin = copy.deepcopy(model)
    jitted = tg.jit(step, check=True)
    x, y = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    jitted(model, x, y)
    jitted(model, x, y)
    with pytest.raises(tg.ReplayMismatchError, match=r"differs .*op '\w+'"):
        jitted(model, x, y + 1)
    step(twin, x, y + 1)
    assert_same_grads(model, twin)


# ---- 5. errors -----------------------------------------------------------------------------

def test_out_of_range_embedding_index_at_replay_raises_index_error_naming_the_op():
    def step(model, idx):  # no zero_grad: a failed call must leave .grad as it was
        loss = model(idx).sum()
        loss.backward()
        return loss

    np.random.seed(0)
    model = nn.Embedding(5, 3)
    jitted = tg.jit(step)
    good = np.array([1, 2, 4])
    for _ in range(3):  # record, replay, generated replay
        jitted(model, good)
        before = model.weight.grad.copy()
        with pytest.raises(IndexError, match="embedding.*index 7"):
            jitted(model, np.array([1, 7, 2]))
        np.testing.assert_array_equal(model.weight.grad, before)
    with pytest.raises(IndexError, match="embedding.*index -6"):
        jitted(model, np.array([1, -6, 2]))
    np.testing.assert_array_equal(model.weight.grad, before)
    jitted(model, good)  # still usable after an error
    assert jitted.recordings == 1


def test_jit_argument_errors():
    with pytest.raises(TypeError, match="jit: fn must be callable"):
        tg.jit(3)
    with pytest.raises(TypeError, match="jit: check must be a bool"):
        tg.jit(plain_step, check=1)


# ---- what a recording read from modules and parameters: a change records again ----------

def _dropout_step(model):
    def step(x):
        model.zero_grad()
        out, _ = model(x)
        loss = (out * out).sum()
        loss.backward()
        return loss
    return step


def test_a_new_dropout_rate_or_generator_records_again_and_equals_eager():
    np.random.seed(0)
    model = nn.LSTM(3, 4, num_layers=2, dropout=0.5, batch_first=True,
                    rng=np.random.default_rng(0))
    model.dropout_rng = np.random.default_rng(1)
    twin = copy.deepcopy(model)
    jitted, eager = tg.jit(_dropout_step(model)), _dropout_step(twin)
    x = tg.Tensor(np.random.default_rng(2).random((2, 5, 3)).astype(np.float32))
    changes = [None, None, ("dropout", 0.1), None, ("dropout_rng", 7), None]
    for change in changes:
        if change is not None:
            name, value = change
            for m in (model, twin):
                setattr(m, name, np.random.default_rng(value) if name == "dropout_rng"
                        else value)
        np.testing.assert_array_equal(jitted(x).numpy(), eager(x).numpy())
        for p, q in zip(model.parameters(), twin.parameters()):
            np.testing.assert_array_equal(p.grad, q.grad)
    assert jitted.recordings == 3


def test_freezing_a_parameter_records_again():
    np.random.seed(0)
    lin = nn.Linear(3, 2)

    def step(x):
        lin.zero_grad()
        loss = (lin(x) * lin(x)).sum()
        loss.backward()
        return loss
    jitted = tg.jit(step)
    x = tg.Tensor(np.ones((4, 3), np.float32))
    jitted(x)
    jitted(x)
    lin.bias.requires_grad = False
    jitted(x)
    assert jitted.recordings == 2 and lin.bias.grad is None and lin.weight.grad is not None


def test_a_jitted_method_binds_its_instance():
    class Trainer:
        def __init__(self):
            self.lin = nn.Linear(3, 1)

        @tg.jit
        def step(self, x):
            self.lin.zero_grad()
            loss = self.lin(x).sum()
            loss.backward()
            return loss

    np.random.seed(0)
    t = Trainer()
    x = tg.Tensor(np.ones((2, 3), np.float32))
    first, second = t.step(x), t.step(x)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    np.testing.assert_array_equal(t.lin.weight.grad, np.full((1, 3), 2.0, np.float32))


def test_the_first_replay_asks_glibc_to_keep_freed_memory_unless_turned_off(monkeypatch):
    from tinygrad_rnn import jit as jit_module  # the function; its module is in sys.modules
    module = __import__("sys").modules["tinygrad_rnn.jit"]
    assert jit_module is module.jit
    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))

    monkeypatch.setattr(module, "_HEAP_KEPT", [])
    monkeypatch.setattr(module.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setenv("TINYGRAD_RNN_KEEP_HEAP", "0")
    module._keep_heap()
    assert calls == [] and module._HEAP_KEPT == [True]
    monkeypatch.setattr(module, "_HEAP_KEPT", [])
    monkeypatch.delenv("TINYGRAD_RNN_KEEP_HEAP")
    step = tg.jit(lambda x: (x * 2.0).sum())
    x = tg.Tensor(np.ones(3, np.float32))
    step(x)
    assert calls == []  # recording is not replaying
    step(x)
    step(x)
    assert calls == [(-1, 256 << 20), (-3, 32 << 20)]  # trim and mmap thresholds, once
