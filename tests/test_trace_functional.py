"""Issue 16: the functional composites and the simple layers are traceable. Two calls with
different values (all targets valid vs some ignored, different indices, ...) record the same
primitive calls with the same constants, and the first recording, replayed on the second
call's arrays (the recorded forwards alone, as jit.py replays), gives the second eager result.
Checks that guard a replay (class targets, embedding indices) raise from inside a primitive.
"""

import copy

import numpy as np
import pytest
from helpers import assert_same_trace, trace_calls

import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn
from tinygrad_rnn.functional import ClassIndexError

R = np.random.default_rng(0)


def logits(*shape, dtype=np.float32):
    return tg.Tensor((R.standard_normal(shape) * 3).astype(dtype), requires_grad=True)


def replays_equal(fn, first, second):
    """Same recording for both calls, and the first replayed on the second's arrays equals
    the second eager result bit for bit."""
    a, b = assert_same_trace(fn, first, second)
    np.testing.assert_array_equal(a.replay(*second), b.result.numpy())
    return a


# ---- softmax, log_softmax: the max shift is a primitive ---------------------------------------

@pytest.mark.parametrize("fn", [F.log_softmax, F.softmax, lambda x: F.log_softmax(x, 0),
                                lambda x: x.softmax(-1)])
def test_softmax_shift_is_recomputed_at_replay(fn):
    a = replays_equal(fn, (logits(4, 5),), (logits(4, 5) * 10.0,))
    assert a.uses(0) and "max" in [c[0] for c in a.calls]


def test_log_softmax_of_an_ndarray_binds_it():
    a = replays_equal(F.log_softmax, (R.standard_normal((3, 4)),), (R.standard_normal((3, 4)),))
    assert a.uses(0)


# ---- cross_entropy, nll_loss with class indices ---------------------------------------------

VALID = np.array([0, 4, 2, 1, 3, 3])
PADDED = np.array([1, -100, -100, 4, 0, -100])
IGNORED = np.full(6, -100)


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"label_smoothing": 0.2},
                                    {"ignore_index": 3}])
def test_cross_entropy_traces_the_same_for_valid_padded_and_all_ignored_targets(kwargs):
    def fn(x, t):
        return F.cross_entropy(x, t, **kwargs)
    x, ignore = logits(6, 5), kwargs.get("ignore_index", -100)
    padded, ignored = (np.where(t == -100, ignore, t) for t in (PADDED, IGNORED))
    replays_equal(fn, (x, VALID), (x, padded))
    replays_equal(fn, (x, padded), (x, VALID))
    a = replays_equal(fn, (x, VALID), (x, ignored))
    assert a.uses(1)


def test_all_ignored_is_nan_with_zero_gradient_at_replay_too():
    x = logits(6, 5)
    a = trace_calls(F.cross_entropy, x, VALID)
    assert np.isnan(a.replay(x, IGNORED))
    loss = F.cross_entropy(x, IGNORED)
    loss.backward()
    assert np.isnan(loss.item()) and not x.grad.any()


def test_cross_entropy_with_a_weight_argument_binds_it():
    def fn(x, t, w):
        return F.cross_entropy(x, t, weight=w, label_smoothing=0.1)
    x = logits(6, 5)
    a = replays_equal(fn, (x, VALID, R.random(5)), (x, PADDED, R.random(5)))
    assert a.uses(2)
    # every target weighted 0: NaN, as all ignored
    assert np.isnan(a.replay(x, VALID, np.zeros(5)))


def test_sequence_targets_and_tensor_targets_are_bound():
    def fn(x, t):
        return F.cross_entropy(x, t, reduction="none")
    x = logits(2, 3, 5)
    replays_equal(fn, (x, VALID.reshape(2, 3)), (x, PADDED.reshape(2, 3)))
    replays_equal(fn, (x, tg.Tensor(VALID.reshape(2, 3))), (x, tg.Tensor(PADDED.reshape(2, 3))))


def test_nll_loss_traces_the_same():
    def fn(logp, t, w):
        return F.nll_loss(logp, t, weight=w)
    logp = F.log_softmax(logits(6, 5)).detach()
    replays_equal(fn, (logp, VALID, R.random(5)), (logp, PADDED, R.random(5)))


@pytest.mark.parametrize(("target", "culprit"), [(np.array([0, 4, 7, 1, 3, 3]), "7"),
                                                 (np.array([0, -1, 2, 1, 3, 3]), "-1")])
def test_an_out_of_range_target_raises_at_replay_as_it_does_eagerly(target, culprit):
    """A negative target would wrap silently in numpy: class_pick checks it at every call."""
    x = logits(6, 5)
    message = (rf"^cross_entropy: target {culprit} is out of range for 5 classes \(input shape "
               rf"\(6, 5\), ignore_index=-100\)$")
    with pytest.raises(ClassIndexError, match=message):
        F.cross_entropy(x, target)
    a = trace_calls(F.cross_entropy, x, VALID)
    with pytest.raises(ClassIndexError, match=message):
        a.replay(x, target)
    with pytest.raises(ClassIndexError, match=r"^nll_loss: target"):
        trace_calls(F.nll_loss, x, VALID).replay(x, target)
    assert x.grad is None  # a failed call changes nothing


def test_class_probability_targets_are_bound():
    def fn(x, p):
        return F.cross_entropy(x, p, label_smoothing=0.1)
    p1, p2 = R.random((6, 5)), R.random((6, 5))
    a = replays_equal(fn, (logits(6, 5), p1 / p1.sum(-1, keepdims=True)),
                      (logits(6, 5), p2 / p2.sum(-1, keepdims=True)))
    assert a.uses(1)


# ---- float targets ----------------------------------------------------------------------

def targets(*shape, dtype=np.float64):
    return (R.random(shape) > 0.5).astype(dtype)


@pytest.mark.parametrize("loss", [F.mse_loss, F.binary_cross_entropy_with_logits])
def test_float_targets_are_cast_by_a_primitive(loss):
    a = replays_equal(loss, (logits(4, 3), targets(4, 3)), (logits(4, 3), targets(4, 3)))
    assert a.uses(1) and "astype" in [c[0] for c in a.calls]


def test_bce_with_logits_weights_are_bound():
    def fn(x, t, w, pw):
        return F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw)
    a = replays_equal(fn, (logits(4, 3), targets(4, 3), R.random(3), R.random(3) + 1),
                      (logits(4, 3), targets(4, 3), R.random(3), R.random(3) + 1))
    assert a.uses(2) and a.uses(3)


def test_bce_clamped_log_has_no_branch_on_values():
    """Probabilities away from 0 and 1 vs exactly 0, 1 and tiny: one recording for both."""
    def fn(p, t):
        return F.binary_cross_entropy(p, t)
    inner = tg.Tensor(np.full((2, 3), 0.5, np.float32), requires_grad=True)
    edge = tg.Tensor(np.array([[0.0, 1.0, 1e-14], [1 - 1e-8, 0.3, 0.0]], np.float32),
                     requires_grad=True)
    replays_equal(fn, (inner, targets(2, 3, dtype=np.float32)),
                  (edge, targets(2, 3, dtype=np.float32)))


# ---- dropout ----------------------------------------------------------------------------

def test_dropout_mask_is_a_primitive_drawn_afresh_at_replay():
    def fn(x, rng):
        return F.dropout(x, 0.4, rng=rng)
    x = logits(5, 6)
    a, _ = assert_same_trace(fn, (x, np.random.default_rng(1)), (x, np.random.default_rng(2)))
    assert [c[0] for c in a.calls] == ["dropout_mask", "mul"]
    rng = np.random.default_rng(7)
    twin = copy.deepcopy(rng)
    np.testing.assert_array_equal(a.replay(x, rng), fn(x, twin).numpy())
    assert rng.random() == twin.random()  # the same draws consumed


def test_dropout_draws_as_before():
    """The mask is (draw.random(shape) >= p) / (1 - p) in x's dtype, one draw per call."""
    x = logits(5, 6)
    rng, mine = np.random.default_rng(3), np.random.default_rng(3)
    out = F.dropout(x, 0.25, rng=rng)
    expected = x.numpy() * ((mine.random(x.shape) >= 0.25) / 0.75).astype(np.float32)
    np.testing.assert_array_equal(out.numpy(), expected)
    assert rng.random() == mine.random()


def test_nn_dropout_reads_its_generator_at_every_replay():
    drop = nn.Dropout(0.5, rng=np.random.default_rng(4))
    x = logits(3, 8)
    a, _ = assert_same_trace(drop, (x,), (x * 2.0,))
    twin = copy.deepcopy(drop.rng)
    replayed = a.replay(x)
    drop.rng = twin
    np.testing.assert_array_equal(replayed, drop(x).numpy())


# ---- embedding, Linear ------------------------------------------------------------------------

def test_embedding_indices_are_bound_and_checked_at_replay():
    emb = nn.Embedding(5, 3, padding_idx=0)
    a = replays_equal(emb, (np.array([[1, 2], [0, 4]]),), (np.array([[3, 3], [4, 0]]),))
    assert a.uses(0)
    with pytest.raises(IndexError, match=r"^index 7 is out of range for a table of 5 rows"):
        a.replay(np.array([[1, 7], [0, 4]]))
    with pytest.raises(IndexError, match=r"^index -1 is out of range for a table of 5 rows"):
        a.replay(np.array([[1, -1], [0, 4]]))
    with pytest.raises(IndexError, match=r"^embedding: index 7 is out of range for a table "
                                         r"of 5 rows \(indices shape \(2, 2\)"):
        emb(np.array([[1, 7], [0, 4]]))


def test_embedding_mask_zero_compares_by_a_primitive():
    emb = nn.Embedding(5, 3, mask_zero=True)
    a = replays_equal(emb.compute_mask, (np.array([[1, 2], [0, 4]]),),
                      (np.array([[3, 0], [0, 0]]),))
    assert a.uses(0) and [c[0] for c in a.calls] == ["compare"]
    assert a.replay(np.array([[0, 2], [1, 0]])).tolist() == [[False, True], [True, False]]


def test_linear_binds_an_ndarray_input_and_copies_it():
    lin = nn.Linear(4, 3)
    a = replays_equal(lin, (R.standard_normal((2, 4)).astype(np.float32),),
                      (R.standard_normal((2, 4)).astype(np.float32),))
    assert a.uses(0)
    x = np.ones((2, 4), np.float32)
    out = lin(x)
    x[:] = 5.0  # the layer copied its input: a later write reaches neither output nor grad
    out.sum().backward()
    np.testing.assert_array_equal(lin.weight.grad, np.full((3, 4), 2.0, np.float32))


def test_a_whole_step_traces_the_same_for_two_batches():
    np.random.seed(0)
    emb, lin, drop = nn.Embedding(7, 4, mask_zero=True), nn.Linear(4, 5), nn.Dropout(0.3)

    def step(ids, target):
        return F.cross_entropy(drop(lin(emb(ids))), target)
    first = (np.array([[1, 2, 0], [6, 6, 3]]), np.array([[0, 1, -100], [2, 2, 4]]))
    second = (np.array([[5, 0, 0], [1, 3, 2]]), np.array([[-100, -100, -100], [0, 1, 3]]))
    a, _ = assert_same_trace(step, first, second)
    state = np.random.get_state()
    replayed = a.replay(*second)
    np.random.set_state(state)
    np.testing.assert_array_equal(replayed, step(*second).numpy())


# ---- tinygrad_rnn.jit replays these composites as eager runs them -----------------------------

def test_jit_replays_a_step_of_these_composites_equal_to_eager():
    """Embedding (mask_zero, padding) -> Linear -> Dropout -> cross_entropy and a weighted BCE:
    five steps of new ids, targets (some all ignored) and weights, against a twin run eagerly
    with the same generator state."""
    def build():
        np.random.seed(1)
        return (nn.Embedding(9, 4, padding_idx=0, mask_zero=True), nn.Linear(4, 5),
                nn.Dropout(0.3, rng=np.random.default_rng(5)))

    def make_step(emb, lin, drop):
        def step(ids, target, w, y):
            h = drop(lin(emb(ids)))
            mask = emb.compute_mask(ids)
            loss = F.cross_entropy(h, target, weight=w, label_smoothing=0.1)
            loss = loss + F.binary_cross_entropy_with_logits(h[..., 0], y, weight=mask)
            loss.backward()
            return loss
        return step

    mine, twin = build(), build()
    jitted, eager = tg.jit(make_step(*mine)), make_step(*twin)
    rng = np.random.default_rng(9)
    for k in range(5):
        ids = rng.integers(0, 9, (3, 4))
        target = rng.integers(0, 5, (3, 4))
        target[rng.random((3, 4)) < 0.3] = -100
        if k == 3:
            target[:] = -100  # every target ignored: NaN, zero gradient, same recording
        args = (ids, target, rng.random(5), (rng.random((3, 4)) > 0.5).astype(np.float32))
        for m in (*mine, *twin):
            m.zero_grad()
        got, want = jitted(*args), eager(*args)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
        for p, q in zip([p for m in mine for p in m.parameters()],
                        [q for m in twin for q in m.parameters()]):
            np.testing.assert_allclose(p.grad, q.grad, rtol=1e-6, atol=1e-7)


def test_jit_replay_raises_on_an_out_of_range_target():
    x = tg.Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    step = tg.jit(lambda t: F.cross_entropy(x, t))
    step(np.array([0, 1, 2]))
    step(np.array([3, -100, 1]))
    # the replayed class_pick raises the eager call's ClassIndexError, naming the op
    with pytest.raises(ClassIndexError, match=r"^class_pick: cross_entropy: target -2 is out "
                       r"of range for 4 .*replayed by jit"):
        step(np.array([3, -2, 1]))
