"""Anything saved for backward that changes in place before backward makes backward raise a
RuntimeError naming the op; a change before the forward, or of an input no op saved, is fine."""

import numpy as np
import pytest

from tinygrad_rnn import Tensor, no_grad
from tinygrad_rnn.nn import LSTM, Linear
from tinygrad_rnn.optim import SGD, Adam

X = np.arange(6.0).reshape(3, 2)


def weight():
    return Tensor(np.ones((2, 2)), requires_grad=True)


def write_item(t):
    t.data[0, 0] = 5.0


def write_iadd(t):
    t.data += 1.0


def write_assign(t):
    t.data = np.zeros((2, 2))


def write_slice(t):
    t.data[:] = 3.0


def write_numpy(t):
    t.numpy()[1] = -1.0


def write_inplace_operator(t):
    with no_grad():
        t += 1.0


def write_inplace_mul(t):
    with no_grad():
        t *= 2.0


WRITES = [write_item, write_iadd, write_assign, write_slice, write_numpy,
          write_inplace_operator, write_inplace_mul]


@pytest.mark.parametrize("write", WRITES)
def test_a_change_after_the_forward_makes_backward_raise(write):
    w = weight()
    loss = (Tensor(X) @ w).sum()
    write(w)
    with pytest.raises(RuntimeError, match="matmul.*changed in place"):
        loss.backward()
    assert w.grad is None  # nothing was accumulated


@pytest.mark.parametrize("write", WRITES)
def test_a_change_before_the_forward_is_fine(write):
    w = weight()
    _ = w.data  # handed out before the change: the next forward sees the new values
    write(w)
    loss = (Tensor(X) @ w).sum()
    loss.backward()
    np.testing.assert_allclose(w.grad, np.repeat(X.sum(0)[:, None], 2, axis=1))


@pytest.mark.parametrize("write", WRITES)
def test_a_change_through_an_array_held_from_before_the_forward_is_seen(write):
    w = weight()
    held = w.data
    loss = (Tensor(X) @ w).sum()
    held[1, 1] = 7.0
    with pytest.raises(RuntimeError, match="matmul"):
        loss.backward()


def test_a_change_between_two_uses_in_one_forward_is_seen():
    w = weight()
    x = Tensor(X)
    first = x @ w
    with no_grad():
        w += 1.0
    loss = (first + x @ w).sum()
    with pytest.raises(RuntimeError, match="matmul"):
        loss.backward()


def test_an_input_no_op_saved_may_change_as_in_torch():
    w = Tensor(np.ones(3), requires_grad=True)
    loss = (w + 1.0).sum()  # add saves nothing
    with no_grad():
        w += 1.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, np.ones(3))


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_an_optimizer_step_between_forward_and_backward_raises(opt_cls):
    lin = Linear(2, 2)
    opt = opt_cls(lin.parameters(), lr=0.1)
    lin(Tensor(X)).sum().backward()
    opt.step()
    loss = lin(Tensor(X)).sum()
    opt.step()
    with pytest.raises(RuntimeError, match="changed in place"):
        loss.backward()


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_an_ordinary_training_loop_never_raises(opt_cls):
    lstm, fc = LSTM(2, 4, batch_first=True), Linear(4, 1)
    opt = opt_cls([*lstm.parameters(), *fc.parameters()], lr=0.01)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5, 2)))
    for _ in range(4):
        opt.zero_grad()
        out, _ = lstm(x)
        loss = (fc(out[:, -1]) ** 2).mean()
        loss.backward()
        opt.step()
    assert all(p.grad is not None for p in lstm.parameters())


def test_a_from_numpy_buffer_written_after_the_forward_raises():
    buf = X.copy()
    x = Tensor.from_numpy(buf)
    loss = (x @ weight()).sum()
    buf[0, 0] = 100.0
    with pytest.raises(RuntimeError, match="leaf tensor of shape \\(3, 2\\)"):
        loss.backward()


def test_a_from_numpy_buffer_refilled_between_steps_is_fine():
    buf, w = X.copy(), weight()
    x = Tensor.from_numpy(buf)
    for k in range(3):
        buf[:] = X * k  # the usual refill, before each forward
        w.grad = None
        (x @ w).sum().backward()
        np.testing.assert_allclose(w.grad, np.repeat((X * k).sum(0)[:, None], 2, axis=1))


def test_an_intermediate_written_through_data_raises():
    w = weight()
    h = (Tensor(X) @ w).tanh()
    loss = (h * h).sum()
    h.data[0] = 0.0
    with pytest.raises(RuntimeError, match="output of tanh"):
        loss.backward()


def test_reading_data_between_forward_and_backward_is_fine():
    w = weight()
    h = (Tensor(X) @ w).tanh()
    loss = h.sum()
    _ = (w.data.sum(), h.data.max(), loss.data, w.numpy().mean())
    loss.backward()
    assert w.grad is not None


def test_a_detached_copy_shares_and_is_watched():
    w = weight()
    d = w.detach()
    assert np.shares_memory(d.data, w.data)
    loss = (Tensor(X) @ w).sum()
    d.data[0, 1] = 9.0
    with pytest.raises(RuntimeError, match="matmul"):
        loss.backward()


def test_a_leaf_that_requires_grad_cannot_change_in_place_while_recording():
    w = weight()
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w += 1.0
    np.testing.assert_array_equal(w.data, np.ones((2, 2)))


def test_an_in_place_operator_on_a_recorded_result_makes_a_new_node():
    w = weight()
    y = Tensor(X) @ w
    z = y
    z += 1.0  # out of place while recording: y keeps its values
    assert z is not y
    z.sum().backward()
    np.testing.assert_allclose(w.grad, np.repeat(X.sum(0)[:, None], 2, axis=1))


@pytest.mark.parametrize("other, err", [(np.ones((2, 3)), ValueError), (np.ones(5), ValueError)])
def test_an_in_place_operator_keeps_the_shape(other, err):
    t = Tensor(np.ones((2, 2)))
    with pytest.raises(err, match="add.*shape"):
        t += other
    np.testing.assert_array_equal(t.data, np.ones((2, 2)))


def test_an_in_place_operator_keeps_the_dtype():
    t = Tensor(np.arange(3))  # integer indices
    with pytest.raises(TypeError, match="mul.*float64.*int64"):
        t *= 1.5
    np.testing.assert_array_equal(t.data, [0, 1, 2])


def test_retain_graph_backward_twice_after_a_change_raises_the_second_time():
    w = weight()
    loss = (Tensor(X) @ w).sum()
    loss.backward(retain_graph=True)
    with no_grad():
        w -= 0.5
    with pytest.raises(RuntimeError, match="matmul"):
        loss.backward()


def test_library_swaps_leave_nothing_watched():
    """gradcheck_module, load_state_dict and to() swap arrays themselves: no parameter is left
    holding a watched copy, which would cost comparisons at every later step."""
    from tinygrad_rnn import gradcheck_module
    lin = Linear(2, 2)
    x = Tensor(X)
    assert gradcheck_module(lin, lambda: (lin(x) ** 2).sum())
    lin.load_state_dict(lin.state_dict())
    lin.to(np.float64)
    for p in lin.parameters():
        assert p._guard is None or p._guard.copy is None


def test_an_array_replaced_by_the_library_stops_being_watched():
    w = weight()
    old = w.data  # handed out
    with no_grad():
        w.data = np.zeros((2, 2))
    w._assign(np.ones((2, 2)))  # the library replaces it: `old` is no longer w's
    loss = (Tensor(X) @ w).sum()
    old[0, 0] = 5.0  # a write into an array w no longer holds
    loss.backward()
    np.testing.assert_allclose(w.grad, np.repeat(X.sum(0)[:, None], 2, axis=1))
