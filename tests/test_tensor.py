"""Tensor construction, dtype rules, the backward engine and its errors."""

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor, no_grad


def test_dtype_rules():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32
    assert Tensor(np.zeros(2, np.float64)).dtype == np.float64
    assert Tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert Tensor(np.arange(3)).dtype.kind == "i"
    assert (Tensor(np.zeros(2, np.float32)) + Tensor(np.zeros(2))).dtype == np.float64
    assert (Tensor(np.zeros(2, np.float32)) * 2.0).dtype == np.float32
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64


def test_set_default_dtype_takes_dtype_or_name():
    try:
        tg.set_default_dtype("float64")
        assert Tensor([1.0]).dtype == np.float64 and tg.get_default_dtype() == np.float64
        tg.set_default_dtype(np.float32)
        assert Tensor([1.0]).dtype == np.float32
    finally:
        tg.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="floating"):
        tg.set_default_dtype(np.int32)


def test_requires_grad_on_integers_is_an_error():
    with pytest.raises(TypeError, match="int"):
        Tensor(np.arange(3), requires_grad=True)


def test_attributes():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.T.shape == (3, 2)
    assert isinstance(x.numpy(), np.ndarray) and x.grad is None
    assert Tensor([[2.5]]).item() == 2.5
    d = x.detach()
    assert not d.requires_grad and d.data is x.data


@pytest.mark.parametrize("left", [np.ones((2, 3)), 2.0, 3])
def test_ndarray_or_number_on_the_left_gives_a_tensor(left):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    for out in (left + x, left - x, left * x, left / x, left ** x):
        assert isinstance(out, Tensor) and out.shape == (2, 3)
    assert isinstance(np.ones((4, 2)) @ x, Tensor)


def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    (x * 3).sum().backward()  # a second backward adds into .grad
    np.testing.assert_allclose(x.grad, 2 * x.data + 4)


def test_grad_has_the_shape_and_dtype_of_data():
    w = Tensor(np.ones((3,), np.float32), requires_grad=True)
    (w * np.ones((2, 3))).sum().backward()  # float64 product, float32 leaf
    assert w.grad.dtype == np.float32 and w.grad.shape == (3,)
    np.testing.assert_allclose(w.grad, [2, 2, 2])


def test_no_grad_records_nothing():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    assert (x * 2).requires_grad


def test_backward_on_non_scalar_needs_a_grad():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(2, 3\)"):
        (x * 2).backward()
    (x * 2).backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad, 2)


def test_second_backward_through_a_freed_graph_is_an_error():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.e)


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    h = (x * 3).retain_grad()
    u = x * 5
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert u.grad is None


def test_a_long_chain_backpropagates_without_recursion_error():
    x = Tensor(np.array([0.5]), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_chunk_matches_torch_sizes():
    x = Tensor(np.arange(20.0).reshape(2, 10))
    assert [c.shape[1] for c in x.chunk(4, axis=1)] == [3, 3, 3, 1]
    assert [c.shape[0] for c in x.chunk(3, axis=0)] == [1, 1]


def test_max_shares_the_gradient_among_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])


def test_getitem_with_repeated_integer_indices_accumulates():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 3])].sum().backward()
    np.testing.assert_allclose(x.grad, [0, 2, 0, 1])


def test_reshape_and_transpose_accept_tuples():
    x = Tensor(np.zeros((2, 3, 4)))
    assert x.reshape(6, 4).shape == x.reshape((6, 4)).shape == (6, 4)
    assert x.transpose(2, 0, 1).shape == x.transpose((2, 0, 1)).shape == (4, 2, 3)
    assert x.transpose().shape == (4, 3, 2)


def test_sum_mean_max_axes():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(a)
    np.testing.assert_allclose(x.sum(axis=(0, 2)).data, a.sum(axis=(0, 2)))
    np.testing.assert_allclose(x.mean(axis=1, keepdims=True).data, a.mean(1, keepdims=True))
    np.testing.assert_allclose(x.max(axis=-1).data, a.max(-1))


def test_cat_stack_where():
    a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.zeros((2, 3)))
    assert tg.cat([a, b], axis=1).shape == (2, 6)
    assert tg.stack([a, b], axis=1).shape == (2, 2, 3)
    out = tg.where(np.array([True, False, True]), a, 5.0)
    np.testing.assert_allclose(out.data, [[1, 5, 1]] * 2)
    out.sum().backward()
    np.testing.assert_allclose(a.grad, [[1, 0, 1]] * 2)


# ---- errors name the op and the shapes -------------------------------------------------------

def test_matmul_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"matmul: inner dims differ, \(2, 3\) @ \(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: .*\(2, 3\), \(4,\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))


def test_float_arrays_as_indices_are_an_error():
    with pytest.raises(IndexError, match="float64 array"):
        Tensor(np.ones(4))[np.array([0.0, 1.0])]


def test_clip_needs_a_bound():
    with pytest.raises(ValueError, match="clip"):
        Tensor(np.ones(2)).clip()


def test_an_untracked_result_can_become_a_leaf():
    with no_grad():
        h = Tensor(np.ones(2), requires_grad=True) * 3
    h.requires_grad = True
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, [6.0, 6.0])


def test_retained_grads_of_chained_nodes_do_not_share_a_buffer():
    x = Tensor(np.ones(2), requires_grad=True)
    a = (x * 1.0).retain_grad()
    b = (a + 0.0).retain_grad()
    (b * 2).sum().backward(retain_graph=True)
    (b * 2).sum().backward()
    np.testing.assert_allclose(a.grad, [4.0, 4.0])
    np.testing.assert_allclose(b.grad, [4.0, 4.0])
    np.testing.assert_allclose(x.grad, [4.0, 4.0])
