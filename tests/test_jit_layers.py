"""tg.jit over the recurrent layers (issue 16): a replayed training step equals the eager one.

Each case trains a model and a deep-copied twin side by side for several steps on changing
data, the jitted step on one and the plain step on the other, an optimizer updating both
between steps: the returned values and every parameter's .grad must agree at every step (the
contract: float32 to 1e-6 relative). Random draws (dropout) come from per-model generators
that the deep copy duplicates, so both twins draw the same masks step by step.
"""

from __future__ import annotations

import copy
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn
from tinygrad_rnn import tensor as tensor_mod

STEPS = 5


# ---- the twin harness --------------------------------------------------------------------

def assert_close(got, want, what=""):
    """float: 1e-6 relative to the array's scale; anything else exactly."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, what
    if want.dtype.kind == "f":
        scale = float(np.max(np.abs(want), initial=0.0))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def assert_same_result(got, want, what="result"):
    """The same structure of Tensors (tuples, lists, dicts), equal values."""
    if isinstance(want, tg.Tensor):
        assert isinstance(got, tg.Tensor), what
        assert_close(got.numpy(), want.numpy(), what)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), what
        for k in want:
            assert_same_result(got[k], want[k], f"{what}[{k!r}]")
    else:
        assert type(got) is type(want) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_result(g, w, f"{what}[{i}]")


def assert_same_grads(model, twin):
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        if q.grad is None:
            assert p.grad is None, name
        else:
            assert p.grad is not None, name
            assert_close(p.grad, q.grad, f"grad of {name}")


def train_twins(model, step, batches, *, lr=0.05, recordings=1):
    """Jitted step on `model`, eager step on a deep copy, Adam on both between steps."""
    twin = copy.deepcopy(model)
    jitted = tg.jit(step)
    opt_j = tg.optim.Adam(model.parameters(), lr=lr)
    opt_e = tg.optim.Adam(twin.parameters(), lr=lr)
    start = [p.numpy().copy() for p in model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("error", tg.ReplayFallbackWarning)  # a fallback would hide replay
        for i, args in enumerate(batches):
            got, want = jitted(model, *args), step(twin, *args)
            assert_same_result(got, want, f"step {i}")
            assert_same_grads(model, twin)
            opt_j.step()
            opt_e.step()
    assert jitted.recordings == recordings
    assert tensor_mod._TRACE is None
    moved = [not np.array_equal(p.numpy(), s) for p, s in zip(model.parameters(), start)]
    assert any(moved)  # the replays saw parameters that an optimizer updated
    return jitted


def ce_step(model, x, y, *extra):
    """Cross-entropy over every position; y is flat (B*T,) so no numpy reshape of an argument
    happens inside the step (that would be frozen: the caller's contract)."""
    model.zero_grad()
    logits = model(x, *extra)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y)
    loss.backward()
    return loss


# ---- torch-style stacks ------------------------------------------------------------------

class StackModel(nn.Module):
    def __init__(self, kind, **kw):
        super().__init__()
        self.rnn = getattr(nn, kind)(3, 5, **kw)
        width = (kw.get("proj_size") or 5) * (2 if kw.get("bidirectional") else 1)
        self.head = nn.Linear(width, 4)

    def forward(self, x, lengths=None, mask=None):
        out, _ = self.rnn(x, lengths=lengths, mask=mask)
        return self.head(out)


def stack_batches(batch_first, *, lengths=False, mask=False, seed=1, B=3, T=6):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(STEPS):
        x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3)).astype(np.float32)
        y = rng.integers(0, 4, B * T)
        if lengths:  # varies per batch; one batch full length
            lens = np.full(B, T) if i == 0 else rng.integers(1, T + 1, B)
            out.append((x, y, lens))
        elif mask:  # (B, T) bool, batch first in both layouts; a different pattern each time
            m = np.ones((B, T), bool) if i == 0 else rng.random((B, T)) > 0.4
            out.append((x, y, None, m))
        else:
            out.append((x, y))
    return out


BIDIR, BATCH_FIRST = {"num_layers": 2, "bidirectional": True}, {"num_layers": 2, "batch_first": True}
STACK_CONFIGS = [
    pytest.param("RNN", BIDIR, id="rnn-2layer-bidir"),
    pytest.param("RNN", {**BATCH_FIRST, "nonlinearity": "relu"}, id="rnn-relu-batch_first"),
    pytest.param("LSTM", BIDIR, id="lstm-2layer-bidir"),
    pytest.param("LSTM", BATCH_FIRST, id="lstm-batch_first"),
    pytest.param("LSTM", {**BIDIR, **BATCH_FIRST, "proj_size": 2}, id="lstm-proj-bidir"),
    pytest.param("GRU", BIDIR, id="gru-2layer-bidir"),
    pytest.param("GRU", BATCH_FIRST, id="gru-batch_first"),
]


@pytest.mark.parametrize("kind, kw", STACK_CONFIGS)
def test_stack_replays_equal_eager_over_steps(kind, kw):
    np.random.seed(0)
    train_twins(StackModel(kind, **kw), ce_step, stack_batches(kw.get("batch_first", False)))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_stack_dropout_between_layers_replays_equal_eager(kind):
    np.random.seed(0)
    model = StackModel(kind, num_layers=2, dropout=0.4, rng=np.random.default_rng(7))
    train_twins(model, ce_step, stack_batches(False))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_stack_recurrent_dropout_replays_equal_eager(kind):
    np.random.seed(0)
    model = StackModel(kind, num_layers=2, bidirectional=True, recurrent_dropout=0.3,
                       rng=np.random.default_rng(8))
    train_twins(model, ce_step, stack_batches(True))


@pytest.mark.parametrize("kind, kw", STACK_CONFIGS)
def test_stack_with_lengths_replays_equal_eager(kind, kw):
    np.random.seed(0)
    batches = stack_batches(kw.get("batch_first", False), lengths=True)
    train_twins(StackModel(kind, **kw), ce_step, batches)


@pytest.mark.parametrize("kind, kw", STACK_CONFIGS)
def test_stack_with_masks_replays_equal_eager(kind, kw):
    np.random.seed(0)
    batches = stack_batches(kw.get("batch_first", False), mask=True)
    train_twins(StackModel(kind, **kw), ce_step, batches)


def test_lengths_as_a_python_list_are_keyed_by_value():
    np.random.seed(0)
    model = StackModel("GRU", batch_first=True)
    twin = copy.deepcopy(model)
    jitted = tg.jit(ce_step)
    rng = np.random.default_rng(3)
    for count, lens in [(1, [6, 3, 2]), (1, [6, 3, 2]), (2, [5, 5, 1]), (2, [6, 3, 2]),
                        (2, [5, 5, 1])]:
        x = rng.standard_normal((3, 6, 3)).astype(np.float32)
        y = rng.integers(0, 4, 18)
        assert_same_result(jitted(model, x, y, lens), ce_step(twin, x, y, lens))
        assert_same_grads(model, twin)
        assert jitted.recordings == count


# ---- Recurrent over every cell, and a user-written one -----------------------------------

class MGU(nn.Cell):
    """A user's cell (as examples/custom_cell.py): minimal gated unit; (B, I), (B, H) -> (B, H)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        init = np.random.default_rng(3)
        self.w = nn.Parameter(init.uniform(-0.5, 0.5, (input_size, 2 * hidden_size))
                              .astype(np.float32))
        self.b = nn.Parameter(np.zeros(2 * hidden_size, np.float32))
        self.u_f = nn.Parameter(init.uniform(-0.5, 0.5, (hidden_size, hidden_size))
                                .astype(np.float32))
        self.u_n = nn.Parameter(init.uniform(-0.5, 0.5, (hidden_size, hidden_size))
                                .astype(np.float32))

    def initial_state(self, batch_size):
        return tg.Tensor(np.zeros((batch_size, self.hidden_size), np.float32))

    def forward(self, x, h):
        xf, xn = (x @ self.w + self.b).chunk(2, axis=1)
        f = (xf + h @ self.u_f).sigmoid()
        return h + f * ((xn + (f * h) @ self.u_n).tanh() - h)


CELLS = {
    "RNNCell": lambda: nn.RNNCell(3, 4),
    "RNNCell-relu": lambda: nn.RNNCell(3, 4, nonlinearity="relu"),
    "LSTMCell": lambda: nn.LSTMCell(3, 4),
    "LSTMCell-proj": lambda: nn.LSTMCell(3, 4, proj_size=2),
    "GRUCell": lambda: nn.GRUCell(3, 4),
    "MGU": lambda: MGU(3, 4),
}


class CellModel(nn.Module):
    def __init__(self, cell, bidirectional=False, reverse=False):
        super().__init__()
        width = getattr(cell, "proj_size", 0) or cell.hidden_size
        layer = nn.Recurrent(cell, return_sequences=True, reverse=reverse)
        self.rnn = nn.Bidirectional(layer) if bidirectional else layer
        self.head = nn.Linear(width * (2 if bidirectional else 1), 1)

    def forward(self, x, lengths=None, mask=None):
        return self.head(self.rnn(x, lengths=lengths, mask=mask))


def mse_step(model, x, y, *extra):
    model.zero_grad()
    loss = F.mse_loss(model(x, *extra), y)
    loss.backward()
    return loss


def cell_batches(*, lengths=False, mask=False, B=3, T=5):
    rng = np.random.default_rng(2)
    out = []
    for _ in range(STEPS):
        x = rng.standard_normal((B, T, 3)).astype(np.float32)
        y = rng.standard_normal((B, T, 1)).astype(np.float32)
        if lengths:
            out.append((x, y, rng.integers(1, T + 1, B)))
        elif mask:
            out.append((x, y, None, rng.random((B, T)) > 0.4))
        else:
            out.append((x, y))
    return out


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("bidirectional, reverse", [(False, False), (False, True), (True, False)],
                         ids=["forward", "reverse", "bidirectional"])
def test_recurrent_over_cell_replays_equal_eager(name, bidirectional, reverse):
    np.random.seed(0)
    train_twins(CellModel(CELLS[name](), bidirectional, reverse), mse_step, cell_batches())


@pytest.mark.parametrize("name", list(CELLS))
def test_recurrent_over_cell_with_lengths_and_masks(name):
    np.random.seed(0)
    train_twins(CellModel(CELLS[name](), bidirectional=True), mse_step,
                cell_batches(lengths=True))
    train_twins(CellModel(CELLS[name]()), mse_step, cell_batches(mask=True))


@pytest.mark.parametrize("cls", [nn.RNNCell, nn.LSTMCell, nn.GRUCell])
def test_recurrent_cell_dropouts_replay_equal_eager(cls):
    np.random.seed(0)
    cell = cls(3, 4, dropout=0.3, recurrent_dropout=0.3, rng=np.random.default_rng(4))
    train_twins(CellModel(cell), mse_step, cell_batches())


# ---- random draws ----------------------------------------------------------------------

class DropModel(nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.drop = nn.Dropout(0.5, rng=rng)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.drop(self.lin(x).tanh()))


def drop_step(model, x, y):
    model.zero_grad()
    hidden = model.drop(model.lin(x).tanh())
    loss = F.cross_entropy(model.out(hidden), y)
    loss.backward()
    return loss, hidden  # hidden shows the mask: zeros where it dropped


def test_dropout_masks_at_replay_equal_eager_draws_step_by_step():
    np.random.seed(0)
    model = DropModel(np.random.default_rng(11))
    rng = np.random.default_rng(5)
    batches = [(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 2, 8))
               for _ in range(STEPS)]
    twin = copy.deepcopy(model)
    jitted = tg.jit(drop_step)
    masks = []
    for x, y in batches:
        (loss_j, h_j), (loss_e, h_e) = jitted(model, x, y), drop_step(twin, x, y)
        np.testing.assert_array_equal(h_j.numpy() == 0, h_e.numpy() == 0)
        assert_close(h_j.numpy(), h_e.numpy())
        assert_close(loss_j.numpy(), loss_e.numpy())
        assert_same_grads(model, twin)
        # the same draws consumed: the generators stay in step
        assert model.drop.rng.bit_generator.state == twin.drop.rng.bit_generator.state
        masks.append(h_j.numpy() == 0)
    assert jitted.recordings == 1
    assert not all(np.array_equal(masks[0], m) for m in masks[1:])  # drawn afresh each step


def test_dropout_from_numpy_global_rng_matches_eager_after_the_same_seed():
    np.random.seed(0)
    model = DropModel(None)
    twin = copy.deepcopy(model)
    jitted = tg.jit(drop_step)
    rng = np.random.default_rng(6)
    for seed in range(STEPS):
        x, y = rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 2, 8)
        np.random.seed(100 + seed)
        loss_j, h_j = jitted(model, x, y)
        after_j = np.random.get_state()[1].copy()
        np.random.seed(100 + seed)
        loss_e, h_e = drop_step(twin, x, y)
        np.testing.assert_array_equal(np.random.get_state()[1], after_j)
        assert_close(h_j.numpy(), h_e.numpy())
        assert_close(loss_j.numpy(), loss_e.numpy())
        assert_same_grads(model, twin)


def test_eval_mode_replays_without_masks():
    np.random.seed(0)
    model = DropModel(np.random.default_rng(1))
    jitted = tg.jit(drop_step)
    x, y = np.ones((4, 6), np.float32), np.array([0, 1, 0, 1])
    jitted(model, x, y)
    model.eval()
    state = model.drop.rng.bit_generator.state
    for _ in range(3):
        _, hidden = jitted(model, x, y)
        with tg.no_grad():
            want = model.lin(tg.Tensor(x)).tanh()
        assert_close(hidden.numpy(), want.numpy())  # nothing dropped, nothing scaled
    assert model.drop.rng.bit_generator.state == state  # eval draws nothing
    assert jitted.recordings == 2  # train and eval are two recordings


# ---- memory and bookkeeping at replay ----------------------------------------------------

class LSTMModel(nn.Module):
    def __init__(self, H=64):
        super().__init__()
        self.rnn = nn.LSTM(8, H, batch_first=True)
        self.head = nn.Linear(H, 8)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_replayed_step_peak_memory_at_most_eager():
    """tracemalloc peak (numpy reports its buffers) of a steady-state replay (3rd call on) vs
    an eager step of the same model; not a timing test."""
    np.random.seed(0)
    model = LSTMModel()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64, 8)).astype(np.float32)
    y = rng.integers(0, 8, 16 * 64)
    jitted = tg.jit(ce_step)

    def peak(call):
        tracemalloc.start()
        try:
            call()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    ce_step(model, x, y)  # warm: .grad buffers exist in both measurements
    eager = peak(lambda: ce_step(model, x, y))
    for _ in range(3):  # record, interpretive replay, generated replay
        jitted(model, x, y)
    replay = peak(lambda: jitted(model, x, y))
    assert replay <= 1.05 * eager, (replay, eager)


def test_replay_makes_no_tensors_or_graph_per_op():
    """At steady state a replay builds no Tensor per op (only the returned one), goes through
    none of the Tensor-level entry points (apply, apply_multi, the routed path, which build
    graph nodes) and leaves no recorder installed. Watched with a profile hook: every Python
    call of those functions or of Tensor.__init__, and every explicit object.__new__."""
    np.random.seed(0)
    model = LSTMModel(H=6)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 8)).astype(np.float32)
    y = rng.integers(0, 8, 14)
    jitted = tg.jit(ce_step)
    for _ in range(3):
        jitted(model, x, y)
    watched = {f.__code__: f.__name__ for f in (tensor_mod.apply, tensor_mod.apply_multi,
                                                tensor_mod._apply_routed, tg.Tensor.__init__)}
    seen, wraps, news = [], [], []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in watched:
            seen.append(watched[frame.f_code])
        elif event == "call" and frame.f_code is tensor_mod._wrap.__code__:
            wraps.append(frame.f_back.f_code.co_name)
        elif event == "c_call" and arg is object.__new__:
            news.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        loss = jitted(model, x, y)
    finally:
        sys.setprofile(None)
    assert seen == []
    assert len(wraps) == 1 and news == ["_wrap"], (wraps, news)  # the loss only
    assert isinstance(loss, tg.Tensor) and loss._op is None and not loss.requires_grad
    assert tensor_mod._TRACE is None
    want = ce_step(copy.deepcopy(model), x, y)
    assert_close(loss.numpy(), want.numpy())
