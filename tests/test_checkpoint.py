"""checkpoint (torch.utils.checkpoint.checkpoint, non-reentrant): gradients equal the plain
run's, fn's intermediates are not kept, numpy's RNG is replayed, bad input is refused."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest
from helpers import built_in_float64

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor, nn
from tinygrad_rnn.autograd import grad
from tinygrad_rnn.checkpoint import checkpoint
from tinygrad_rnn.functional import dropout


def leaf(*shape, seed=0, requires_grad=True):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


def grads_of(run, tensors):
    """Gradients left in `.grad` by run().backward() for each tensor (cleared first)."""
    for t in tensors:
        t.grad = None
    run().backward()
    return [None if t.grad is None else t.grad.copy() for t in tensors]


def assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def mlp(x, w, y, scale=1.0):
    return ((x @ w).tanh() * y).sigmoid() * scale


# ---- gradients equal the plain run's -------------------------------------------------------

def test_several_arguments_and_a_plain_number():
    x, w, y = leaf(3, 4, seed=1), leaf(4, 5, seed=2), leaf(3, 5, seed=3)
    ts = [x, w, y]
    got = grads_of(lambda: (checkpoint(mlp, x, w, y, 2.0) ** 2).sum(), ts)
    want = grads_of(lambda: (mlp(x, w, y, 2.0) ** 2).sum(), ts)
    assert_same(got, want)


def test_keyword_arguments_reach_the_function():
    x, w, y = leaf(3, 4, seed=1), leaf(4, 5, seed=2), leaf(3, 5, seed=3)
    ts = [x, w, y]
    got = grads_of(lambda: checkpoint(mlp, x, w, y=y, scale=3.0).sum(), ts)
    want = grads_of(lambda: mlp(x, w, y, scale=3.0).sum(), ts)
    assert_same(got, want)


def test_a_tuple_return_passes_other_items_through():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    const = Tensor(np.ones(2))

    def f(x):
        h = (x @ w).tanh()
        return h, "label", (h * x).sum(axis=1), const, 7

    out = checkpoint(f, x)
    assert out[1] == "label" and out[4] == 7 and out[3] is const
    node = out[0]._op.node  # one checkpoint node, a Port per output that requires grad
    assert node.name == "checkpoint" and out[2]._op.node is node and node.n_out == 2

    def loss(o):
        return (o[0] ** 2).sum() + o[2].sum()

    got = grads_of(lambda: loss(checkpoint(f, x)), [x, w])
    want = grads_of(lambda: loss(f(x)), [x, w])
    assert_same(got, want)


def test_only_some_outputs_used_downstream():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)

    def f(x):
        return (x @ w).tanh(), (x * x).sum()

    got = grads_of(lambda: checkpoint(f, x)[1], [x, w])
    want = grads_of(lambda: f(x)[1], [x, w])
    assert_same(got, want)
    assert got[1] is None  # w never reached the used output


def test_captured_parameters_get_gradients_when_no_argument_requires_grad():
    lin = built_in_float64(lambda: nn.Linear(4, 3))
    x = leaf(5, 4, requires_grad=False)
    params = list(lin.parameters())

    def f(x):
        return lin(x).tanh()

    out = checkpoint(f, x)
    assert out.requires_grad and set(out._op._parents) == set(params)
    got = grads_of(lambda: checkpoint(f, x).sum(), params)
    want = grads_of(lambda: f(x).sum(), params)
    assert_same(got, want)
    assert x.grad is None


def test_an_outer_intermediate_and_a_split_piece_as_arguments():
    x, w = leaf(4, 6, seed=1), leaf(3, 3, seed=2)

    def run(wrap):
        a, b = (x * 2.0).split(3, axis=1)  # Port parents: one output of a multi-output op
        out = wrap(lambda a, b: (a @ w).tanh() * b, a, b)
        return (out ** 2).sum() + (a * b).sum()

    got = grads_of(lambda: run(checkpoint), [x, w])
    want = grads_of(lambda: run(lambda f, *a: f(*a)), [x, w])
    assert_same(got, want)


def test_an_argument_returned_as_it_is_and_a_dict():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)

    def f(x):
        return {"same": x, "h": [(x @ w).tanh()]}

    def loss(o):
        return (o["same"] * o["h"][0]).sum()

    got = grads_of(lambda: loss(checkpoint(f, x)), [x, w])
    want = grads_of(lambda: loss(f(x)), [x, w])
    assert_same(got, want)


def test_lstm_cell_unrolled_in_checkpointed_chunks():
    cell = built_in_float64(lambda: nn.LSTMCell(3, 5))
    xs = leaf(12, 2, 3, seed=4)
    params = [*cell.parameters(), xs]

    def chunk(x, h, c):
        outs = []
        for t in range(x.shape[0]):
            h, c = cell(x[t], (h, c))
            outs.append(h)
        return tg.stack(outs), h, c

    def run(size):
        h = c = Tensor(np.zeros((2, 5)))
        total = Tensor(np.zeros(()))
        for s in range(0, 12, size):
            if size == 12:
                outs, h, c = chunk(xs[s:s + size], h, c)
            else:
                outs, h, c = checkpoint(chunk, xs[s:s + size], h, c)
            total = total + (outs ** 2).sum()
        return total + c.sum()

    assert_same(grads_of(lambda: run(4), params), grads_of(lambda: run(12), params))


def test_nn_lstm_with_a_carried_state_in_checkpointed_chunks():
    lstm = built_in_float64(lambda: nn.LSTM(3, 4, num_layers=2))
    xs = leaf(10, 2, 3, seed=5)
    params = [*lstm.parameters(), xs]

    def run(chunked):
        if not chunked:
            out, (h, _) = lstm(xs)
            return (out ** 2).sum() + h.sum()
        state, total = None, Tensor(np.zeros(()))
        for s in range(0, 10, 4):  # chunks of 4, 4, 2
            out, state = checkpoint(lstm, xs[s:s + 4], state)
            total = total + (out ** 2).sum()
        return total + state[0].sum()

    assert_same(grads_of(lambda: run(True), params), grads_of(lambda: run(False), params))


def test_nested_checkpoints():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    calls = []

    def inner(h):
        calls.append("inner")
        return (h @ w).sigmoid()

    def outer(h, wrap):
        calls.append("outer")
        return wrap(inner, (h @ w).tanh()) * h

    got = grads_of(lambda: checkpoint(outer, x, checkpoint).sum(), [x, w])
    # forward: outer, inner; backward: outer again (which checkpoints inner), then inner
    assert calls == ["outer", "inner", "outer", "inner", "inner"]
    want = grads_of(lambda: outer(x, lambda f, *a: f(*a)).sum(), [x, w])
    assert_same(got, want)


def test_backward_twice_with_retain_graph():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    out = checkpoint(lambda x: (x @ w).tanh(), x).sum()
    out.backward(retain_graph=True)
    first = w.grad.copy()
    out.backward()
    np.testing.assert_allclose(w.grad, 2 * first, rtol=1e-12)


def test_a_second_backward_through_a_freed_checkpoint_is_an_error():
    x = leaf(4, 3, seed=1)
    a, b = checkpoint(lambda x: tuple((x * 2.0).chunk(2)), x)
    (a * 2.0).sum().backward()
    first = x.grad.copy()
    with pytest.raises(RuntimeError, match="backward through a graph a second time"):
        (b * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, first)


def test_autograd_grad_leaves_dot_grad_alone():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    out = checkpoint(lambda x: (x @ w).tanh(), x).sum()
    gx, gw = grad(out, [x, w])
    want = grad((x @ w).tanh().sum(), [x, w])
    assert x.grad is None and w.grad is None
    assert_same([gx._data, gw._data], [want[0]._data, want[1]._data])


def test_grad_of_grad_through_a_checkpoint():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)

    def f(x):
        return (x @ w).tanh() * x

    def hvp_like(run):
        gx, gw = grad((run(x) ** 3).sum(), [x, w], create_graph=True)
        return grad((gx * gx).sum() + (gw ** 2).sum(), [x, w])

    got = hvp_like(lambda x: checkpoint(f, x))
    want = hvp_like(f)
    assert_same([g._data for g in got], [g._data for g in want])


def test_the_gradient_of_a_checkpoint_is_scoped_under_grad():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    with tg.graph_scope("t=0"):
        out = checkpoint(lambda x: (x @ w).tanh(), x)
    assert out._op._scope == ("t=0",)
    gw, = grad(out.sum(), [w], create_graph=True)
    assert gw._op._scope[:2] == ("grad", "t=0")


# ---- dropout: the same masks, numpy's RNG after backward as without the checkpoint --------

def drop_fn(x, w):
    return dropout((x @ w).tanh(), 0.5) * 3.0


def test_dropout_draws_the_same_masks_when_recomputed():
    x, w = leaf(6, 8, seed=1), leaf(8, 8, seed=2)

    def run(wrap, seed):
        np.random.seed(seed)
        return (wrap(drop_fn, x, w) ** 2).sum()

    got = grads_of(lambda: run(checkpoint, 7), [x, w])
    after_ckpt = np.random.random_sample(3)
    want = grads_of(lambda: run(lambda f, *a: f(*a), 7), [x, w])
    after_plain = np.random.random_sample(3)
    assert_same(got, want)
    np.testing.assert_array_equal(after_ckpt, after_plain)  # as torch: state forked, restored


def test_without_preserve_rng_state_the_masks_are_drawn_again():
    x, w = leaf(6, 8, seed=1), leaf(8, 8, seed=2)
    np.random.seed(7)
    out = checkpoint(drop_fn, x, w, preserve_rng_state=False)
    forward_zeros = out._data == 0
    seen = []

    def watch(x, w):
        out = drop_fn(x, w)
        seen.append(out._data == 0)
        return out

    np.random.seed(7)
    checkpoint(watch, x, w, preserve_rng_state=False).sum().backward()
    assert len(seen) == 2 and not np.array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(forward_zeros, seen[0])


# ---- what is kept, what is recorded ----------------------------------------------------------

def test_intermediates_are_dropped_after_the_forward():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    kept = []

    def f(x):
        a = x @ w
        kept.append(weakref.ref(a))
        b = a.tanh()
        kept.append(weakref.ref(b))
        return b.sigmoid() * x

    out = checkpoint(f, x)
    gc.collect()
    assert all(r() is None for r in kept)
    assert out._op.name == "checkpoint" and set(out._op._parents) == {x, w}
    assert not hasattr(out._op, "a")  # nothing of fn's graph is held by the node
    out.sum().backward()
    assert w.grad is not None and len(kept) == 4


def test_function_runs_once_forward_and_once_in_backward():
    x = leaf(3, seed=1)
    calls = []

    def f(x):
        calls.append(1)
        return x.tanh()

    out = checkpoint(f, x).sum()
    assert len(calls) == 1
    out.backward()
    assert len(calls) == 2


def test_under_no_grad_nothing_is_recorded():
    x = leaf(3, seed=1)
    calls = []

    def f(x):
        calls.append(1)
        return x.tanh()

    with tg.no_grad():
        out = checkpoint(f, x)
    assert out._op is None and not out.requires_grad and len(calls) == 1


def test_outputs_that_need_no_grad_are_returned_as_they_are():
    x = leaf(3, requires_grad=False)
    out = checkpoint(lambda x: x * 2.0, x)
    assert out._op is None and not out.requires_grad
    assert checkpoint(lambda: 5) == 5


def test_context_fn_wraps_the_forward_and_the_recomputation():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    seen = []

    @contextlib.contextmanager
    def label(name):
        seen.append(name)
        yield

    def f(x):
        seen.append("fn")
        return (x @ w).tanh()

    out = checkpoint(f, x, context_fn=lambda: (label("forward"), label("recompute")),
                     debug=True, early_stop=False)
    assert seen == ["forward", "fn"]
    out.sum().backward()
    assert seen == ["forward", "fn", "recompute", "fn"]


# ---- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", [None, True, False])
def test_use_reentrant_either_way_gives_the_same_gradients(flag):
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    got = grads_of(lambda: checkpoint(lambda x: (x @ w).tanh(), x, use_reentrant=flag).sum(),
                   [x, w])
    want = grads_of(lambda: (x @ w).tanh().sum(), [x, w])
    assert_same(got, want)


@pytest.mark.parametrize(("kwargs", "kind", "match"), [
    ({"use_reentrant": "no"}, TypeError, "checkpoint: use_reentrant must be a bool or None"),
    ({"preserve_rng_state": 1}, TypeError, "checkpoint: preserve_rng_state must be a bool"),
    ({"determinism_check": "strict"}, ValueError, "checkpoint: determinism_check must be"),
    ({"determinism_check": None}, TypeError, "checkpoint: determinism_check must be a str"),
    ({"debug": "yes"}, TypeError, "checkpoint: debug must be a bool"),
    ({"early_stop": 0}, TypeError, "checkpoint: early_stop must be a bool"),
    ({"context_fn": 3}, TypeError, "checkpoint: context_fn must be callable or None"),
    ({"context_fn": lambda: None}, TypeError, "checkpoint: context_fn must return a tuple"),
])
def test_bad_flags_are_refused_before_the_function_runs(kwargs, kind, match):
    calls = []
    x = leaf(3, seed=1)
    state = np.random.get_state()[1].copy()
    with pytest.raises(kind, match=match):
        checkpoint(lambda x: calls.append(1) or x.tanh(), x, **kwargs)
    assert calls == [] and x.grad is None
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("fn", [None, 3, "tanh", leaf(2)])
def test_a_function_that_is_not_callable(fn):
    with pytest.raises(TypeError, match="checkpoint: function must be callable"):
        checkpoint(fn, leaf(2))


def test_a_recomputation_of_another_shape_is_an_error():
    x = leaf(4, seed=1)
    sizes = iter([4, 2])
    out = checkpoint(lambda x: x[:next(sizes)].tanh(), x)
    with pytest.raises(RuntimeError, match=r"checkpoint: output 0 of the recomputation has "
                                           r"shape \(2,\)"):
        out.sum().backward()
    assert x.grad is None


def test_determinism_check_none_skips_the_shape_check():
    x = leaf(4, seed=1)
    sizes = iter([4, 4])
    out = checkpoint(lambda x: x[:next(sizes)].tanh(), x, determinism_check="none")
    out.sum().backward()
    np.testing.assert_allclose(x.grad, 1 - np.tanh(x._data) ** 2)


def test_a_recomputation_with_another_number_of_tensors_is_an_error():
    x = leaf(4, seed=1)
    counts = iter([2, 1])

    def f(x):
        return tuple(x.tanh() for _ in range(next(counts)))

    out = checkpoint(f, x)
    with pytest.raises(RuntimeError, match="checkpoint: the recomputation of the function "
                                           "returned 1 tensors, the forward 2"):
        (out[0] + out[1]).sum().backward()


def test_a_recomputation_that_uses_another_tensor_is_an_error():
    x = leaf(3, seed=1)
    box = {"w": leaf(3, seed=2)}
    out = checkpoint(lambda x: x * box["w"], x)
    box["w"] = leaf(3, seed=3)
    with pytest.raises(RuntimeError, match="checkpoint: the recomputation used a tensor that "
                                           "requires grad"):
        out.sum().backward()
    assert x.grad is None


def test_an_input_changed_in_place_before_backward_is_an_error():
    x, w = leaf(3, 4, seed=1), leaf(4, 4, seed=2)
    out = checkpoint(lambda x: (x @ w).tanh(), x).sum()
    with tg.no_grad():
        w += 1.0
    with pytest.raises(RuntimeError, match="saved by checkpoint for backward"):
        out.backward()
    assert w.grad is None and x.grad is None


def test_the_benchmark_runs_in_its_quick_form():
    """A smoke test of benchmarks/bench_checkpoint.py (tiny sizes; its timings are not read)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "bench_checkpoint.py"),
                           "--quick"], capture_output=True, text=True, check=False, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint / plain: peak" in proc.stdout
