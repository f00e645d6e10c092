"""The primitives a generated replay writes out as lines (tinygrad_rnn/replay_kernels.py):
each gives bit-identical values and gradients to the eager step, in every form its eager
forward can take (in place or not, broadcasting, dtypes, unused pieces), and its Op's methods
are really not called at replay."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import ops, replay_kernels, shape_ops
from tinygrad_rnn.tensor import addcmul, addmm

WRITTEN_OUT = (ops.Add, ops.Sub, ops.Mul, ops.Tanh, ops.Sigmoid, ops.AddMM, ops.AddCMul,
               shape_ops.Split)


def test_the_kernels_are_these():
    assert set(replay_kernels.KERNELS) == set(WRITTEN_OUT)


def _leaves(specs, seed):
    rng = np.random.default_rng(seed)
    return [tg.Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=grad)
            for shape, dtype, grad in specs]


def _step(fn):
    def step(*xs):
        out = fn(*xs)
        out.sum().backward()
        return out
    return step


def _forward_calls(jitted, args):
    """The classes of WRITTEN_OUT whose forward or backward ran in one call of `jitted`."""
    ran = set()
    codes = {}
    for cls in WRITTEN_OUT:
        codes[cls.forward.__code__] = cls
        codes[cls.backward.__code__] = cls

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            ran.add(codes[frame.f_code])

    sys.setprofile(profile)
    try:
        jitted(*args)
    finally:
        sys.setprofile(None)
    return ran


def assert_replay_is_eager(fn, specs, *, calls=4, inlined=()):
    """Replays of `fn` (recorded on the first call) on new data equal eager runs bit for bit:
    the output and every leaf's gradient; the Ops in `inlined` never run at replay."""
    jitted = tg.jit(_step(fn))
    for n in range(calls):
        args = _leaves(specs, seed=n)
        twins = [tg.Tensor(a.numpy().copy(), requires_grad=a.requires_grad) for a in args]
        got = jitted(*args)
        want = _step(fn)(*twins)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        for k, (a, b) in enumerate(zip(args, twins)):
            if b.grad is None:
                assert a.grad is None, k
            else:
                assert a.grad.dtype == b.grad.dtype, k
                np.testing.assert_array_equal(a.grad, b.grad, err_msg=f"leaf {k}")
    assert jitted.recordings == 1
    ran = _forward_calls(jitted, _leaves(specs, seed=9))
    assert not ran & set(inlined), ran


F32, F64 = np.float32, np.float64


@pytest.mark.parametrize("fn, specs, inlined", [
    (lambda x, y: x + y, [((3, 4), F32, True), ((4,), F32, True)], [ops.Add]),
    (lambda x, y: x - y, [((3, 4), F64, False), ((3, 1), F64, True)], [ops.Sub]),
    (lambda x, y: x * y, [((2, 3), F32, True), ((2, 3), F32, True)], [ops.Mul]),
    (lambda x, y: x * x * y, [((2, 3), F64, True), ((3,), F64, False)], [ops.Mul]),
    (lambda x, y: (x * y).tanh(), [((5, 2), F32, True), ((5, 2), F64, True)],
     [ops.Mul, ops.Tanh]),
], ids=["add-broadcast", "sub-second-only", "mul", "mul-same-input-twice", "mul-promotes"])
def test_elementwise_kernels(fn, specs, inlined):
    assert_replay_is_eager(fn, specs, inlined=inlined)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_tanh_and_sigmoid_kernels(dtype):
    assert_replay_is_eager(lambda x: x.tanh().sigmoid() * x.sigmoid(), [((4, 3), dtype, True)],
                           inlined=[ops.Tanh, ops.Sigmoid])


def test_sigmoid_of_a_0d_tensor_runs_its_op():
    """A 0-d input takes the op's own path (a ufunc gives a numpy scalar there)."""
    assert_replay_is_eager(lambda x: x.sigmoid().tanh(), [((), F32, True)])


@pytest.mark.parametrize("c_spec", [((6,), F32), ((4, 6), F32), ((1, 6), F32), ((6,), F64)],
                         ids=["bias-into", "full-into", "broadcast-row", "wider-dtype"])
def test_addmm_kernel(c_spec):
    """c + a @ b: added into the product (c of its dtype and trailing shape) or not."""
    specs = [(c_spec[0], c_spec[1], True), ((4, 5), F32, True), ((5, 6), F32, True)]
    assert_replay_is_eager(lambda c, a, b: addmm(c, a, b), specs, inlined=[ops.AddMM])


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((4,), (3, 1), (1, 4)),
                                    ((3, 4), (4,), (4,))],
                         ids=["same", "into-broadcast-product", "c-wider-than-product"])
def test_addcmul_kernel(shapes):
    specs = [(s, F64, True) for s in shapes]
    assert_replay_is_eager(lambda c, a, b: addcmul(c, a, b), specs, inlined=[ops.AddCMul])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_split_kernel_with_an_unused_piece(axis):
    """The pieces are views; a piece no gradient reaches gets zeros in the backward."""
    def fn(x):
        a, _, c = x.split([1, 2, 1], axis=axis)
        return a.tanh() * 2.0 + c.sum()
    assert_replay_is_eager(fn, [((4, 4), F32, True)], inlined=[shape_ops.Split, ops.Tanh])


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([((2, 3), (3,)), ((2, 1), (1, 3)), ((1,), (2, 2)), ((3,), (3,))]),
       st.sampled_from([F32, F64]), st.booleans())
def test_broadcast_pairs(shapes, dtype, grad_second):
    specs = [(shapes[0], dtype, True), (shapes[1], dtype, grad_second)]
    assert_replay_is_eager(lambda x, y: (x * y + x - y) * y.sigmoid(), specs, calls=2,
                           inlined=[ops.Add, ops.Sub, ops.Mul, ops.Sigmoid])


def test_lstm_step_is_written_out_entirely():
    """An LSTM training step's per-time-step primitives all come from kernels."""
    from tinygrad_rnn import functional as F
    from tinygrad_rnn import nn

    lstm, fc = nn.LSTM(3, 5, batch_first=True), nn.Linear(5, 2)

    @tg.jit
    def step(x, y):
        _, (h, _) = lstm(x)
        loss = F.cross_entropy(fc(h[-1]), y)
        loss.backward()
        return loss

    x, y = tg.Tensor(np.random.default_rng(0).standard_normal((2, 6, 3))), np.array([0, 1])
    for _ in range(3):
        step(x, y)
    ran = _forward_calls(step, (x, y))
    assert not ran, ran


def test_two_backwards_through_written_out_primitives():
    """A retained graph read by a second backward: the kernels' saved locals live until the
    last backward line that reads them."""
    def fn(x, w):
        h = addmm(x, x, w).sigmoid()
        (h * h).sum().backward(retain_graph=True)
        return (h.tanh() - x).split([1, 2], axis=1)[1]
    assert_replay_is_eager(fn, [((3, 3), F64, True), ((3, 3), F64, True)],
                           inlined=WRITTEN_OUT)


def test_check_mode_replays_the_written_out_primitives():
    def step(x, w):
        out = addcmul(x, x, w).sigmoid().tanh()
        out.sum().backward()
        return out

    jitted = tg.jit(step, check=True)
    for n in range(3):
        x, w = _leaves([((2, 3), F32, True), ((3,), F32, True)], seed=n)
        x2, w2 = (tg.Tensor(t.numpy().copy(), requires_grad=True) for t in (x, w))
        np.testing.assert_array_equal(jitted(x, w).numpy(), step(x2, w2).numpy())
        np.testing.assert_array_equal(x.grad, x2.grad)
        np.testing.assert_array_equal(w.grad, w2.grad)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layer", ["LSTM", "GRU", "RNN"])
def test_layer_steps_equal_eager_bit_for_bit(layer, batch_first):
    """A layer's whole training step, replayed, is the eager one bit for bit."""
    import copy

    from tinygrad_rnn import functional as F
    from tinygrad_rnn import nn

    np.random.seed(0)
    rnn, fc = getattr(nn, layer)(3, 5, batch_first=batch_first), nn.Linear(5, 2)
    twins = copy.deepcopy((rnn, fc))

    def step(modules, x, y):
        r, f = modules
        for m in modules:
            m.zero_grad()
        out, _ = r(x)
        loss = F.cross_entropy(f(out[:, -1] if batch_first else out[-1]), y)
        loss.backward()
        return loss

    jitted = tg.jit(step)
    rng = np.random.default_rng(1)
    for _ in range(4):
        shape = (4, 6, 3) if batch_first else (6, 4, 3)
        x, y = tg.Tensor(rng.standard_normal(shape).astype(F32)), rng.integers(0, 2, 4)
        np.testing.assert_array_equal(jitted((rnn, fc), x, y).numpy(),
                                      step(twins, x, y).numpy())
        for (name, p), q in zip([*rnn.named_parameters(), *fc.named_parameters()],
                                [*twins[0].parameters(), *twins[1].parameters()]):
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    assert jitted.recordings == 1
