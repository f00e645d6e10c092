"""autograd.grad: torch.autograd.grad's semantics, checked against closed forms (torch itself is
the oracle in tests/parity/test_torch_autograd.py)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor
from tinygrad_rnn.autograd import GradArgumentError, UnusedInputError, grad

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4))
B = RNG.standard_normal((4, 2))


def _leaf(a: np.ndarray, dtype=np.float64) -> Tensor:
    return Tensor(np.asarray(a, dtype), requires_grad=True)


def test_top_level_name_and_module():
    assert tg.grad is grad
    assert tg.autograd.grad is grad


def test_returns_a_tuple_with_one_tensor_per_input_of_its_shape():
    x, w = _leaf(A), _leaf(B)
    loss = ((x @ w) ** 2).sum()
    gx, gw = grad(loss, [x, w])
    np.testing.assert_allclose(gx.numpy(), 2 * (A @ B) @ B.T, rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), A.T @ (2 * (A @ B)), rtol=1e-12)
    single = grad((x * x).sum(), x)
    assert isinstance(single, tuple) and len(single) == 1
    assert single[0].shape == x.shape and single[0].dtype == np.float64


def test_grad_never_touches_dot_grad_of_leaves_or_retained_tensors():
    x = _leaf(A)
    h = (x * 3).tanh().retain_grad()
    loss = (h * h).sum()
    before = np.full(A.shape, 7.0)
    x.grad = before.copy()
    grad(loss, [x, h])
    np.testing.assert_array_equal(x.grad, before)
    assert h.grad is None


def test_unused_input_is_an_error_naming_it_and_frees_nothing():
    x, unused = _leaf(A), _leaf(B)
    loss = (x * x).sum()
    with pytest.raises(UnusedInputError, match=r"grad: input 1 \(shape \(4, 2\)\) was not used"):
        grad(loss, [x, unused])
    assert issubclass(UnusedInputError, ValueError) and issubclass(UnusedInputError, RuntimeError)
    gx, none = grad(loss, [x, unused], allow_unused=True)  # the graph is still whole
    np.testing.assert_allclose(gx.numpy(), 2 * A)
    assert none is None


def test_materialize_grads_gives_zeros_that_require_grad_only_with_create_graph():
    x, unused = _leaf(A), _leaf(B)
    _, zeros = grad((x * x).sum(), [x, unused], materialize_grads=True, retain_graph=True)
    np.testing.assert_array_equal(zeros.numpy(), np.zeros(B.shape))
    assert not zeros.requires_grad
    _, zeros = grad((x * x).sum(), [x, unused], materialize_grads=True, create_graph=True)
    assert zeros.requires_grad and zeros.dtype == unused.dtype
    with pytest.raises(ValueError, match="allow_unused=False contradicts materialize_grads"):
        grad((x * x).sum(), [x, unused], materialize_grads=True, allow_unused=False)


def test_inputs_may_be_intermediate_tensors():
    x = _leaf(A)
    h = x.tanh()
    loss = (h * h * h).sum()
    gh, gx = grad(loss, [h, x])
    np.testing.assert_allclose(gh.numpy(), 3 * np.tanh(A) ** 2, rtol=1e-12)
    np.testing.assert_allclose(gx.numpy(), 3 * np.tanh(A) ** 2 * (1 - np.tanh(A) ** 2),
                               rtol=1e-12)


def test_inputs_may_be_outputs_of_chunk_and_split():
    x = _leaf(A)
    left, right = x.chunk(2, axis=1)
    first, rest = x.split([1, 2], axis=0)
    loss = (left * left).sum() + 3 * right.sum() + (first * rest[:1]).sum()
    g_left, g_right, g_first, g_rest = grad(loss, [left, right, first, rest])
    np.testing.assert_allclose(g_left.numpy(), 2 * A[:, :2])
    np.testing.assert_allclose(g_right.numpy(), np.full((3, 2), 3.0))
    np.testing.assert_allclose(g_first.numpy(), A[1:2])
    np.testing.assert_allclose(g_rest.numpy(), np.concatenate([A[:1], np.zeros((1, 4))]))


def test_unused_output_of_a_chunk_is_unused():
    x = _leaf(A)
    left, right = x.chunk(2, axis=1)
    with pytest.raises(UnusedInputError, match="input 1"):
        grad(left.sum(), [left, right], retain_graph=True)
    assert grad(left.sum(), [left, right], allow_unused=True)[1] is None


def test_a_second_grad_through_a_freed_graph_is_a_runtime_error():
    x = _leaf(A)
    loss = (x * x).sum()
    grad(loss, x)
    with pytest.raises(RuntimeError, match="second time"):
        grad(loss, x)
    with pytest.raises(RuntimeError, match="second time"):
        grad(loss, x, allow_unused=True)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_retain_graph_defaults_to_create_graph():
    x = _leaf(A)
    loss = (x * x * x).sum()
    grad(loss, x, retain_graph=True)
    grad(loss, x, create_graph=True)  # retains by default
    (gx,) = grad(loss, x)
    np.testing.assert_allclose(gx.numpy(), 3 * A * A)
    with pytest.raises(RuntimeError, match="second time"):
        grad(loss, x)


def test_grad_outputs_forms():
    x = _leaf(A)
    y = x * x
    v = RNG.standard_normal(A.shape)
    expected = 2 * A * v
    for given in (Tensor(v), v, [v], (Tensor(v),), [v.tolist()]):
        (gx,) = grad(y, x, grad_outputs=given, retain_graph=True)
        np.testing.assert_allclose(gx.numpy(), expected)
    (gs,) = grad([y.sum(), y], x, grad_outputs=[None, v], retain_graph=True)
    np.testing.assert_allclose(gs.numpy(), 2 * A + expected)
    (g32,) = grad(y, x, grad_outputs=v.astype(np.float32), retain_graph=True)
    assert g32.dtype == np.float64


def test_grad_outputs_checks_name_the_entry():
    x = _leaf(A)
    y = x * x
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs; "
                                           r"output 0 has shape \(3, 4\)"):
        grad(y, x)
    with pytest.raises(GradArgumentError, match=r"grad_outputs\[0\] has shape \(4, 3\); "
                                                r"expected \(3, 4\)"):
        grad(y, x, grad_outputs=np.ones((4, 3)))
    with pytest.raises(GradArgumentError, match="grad_outputs has 2 entries for 1 outputs"):
        grad(y, x, grad_outputs=[np.ones(A.shape), np.ones(A.shape)])
    with pytest.raises(TypeError, match=r"grad_outputs\[0\] must be a Tensor, an array or None"):
        grad(y, x, grad_outputs=["abc"])
    with pytest.raises(TypeError, match=r"grad_outputs\[0\] must be a Tensor, an array"):
        grad(y, x, grad_outputs=[object()])
    (gx,) = grad(y, x, grad_outputs=np.ones(A.shape))  # nothing above freed the graph
    np.testing.assert_allclose(gx.numpy(), 2 * A)


def test_grad_outputs_that_require_grad_are_differentiated_with_create_graph():
    x, v = _leaf(A), _leaf(RNG.standard_normal(A.shape))
    (gx,) = grad(x.tanh(), x, grad_outputs=v, create_graph=True)  # v * (1 - tanh^2)
    assert gx.requires_grad
    (gv,) = grad(gx.sum(), v)
    np.testing.assert_allclose(gv.numpy(), 1 - np.tanh(A) ** 2, rtol=1e-12)
    (gx,) = grad(x.tanh(), x, grad_outputs=v)  # without create_graph: a plain value
    assert not gx.requires_grad


def test_outputs_and_inputs_that_do_not_require_grad_are_named():
    x, c = _leaf(A), Tensor(B)
    with pytest.raises(RuntimeError, match=r"grad: output 1 \(shape \(\)\) does not require"):
        grad([(x * x).sum(), c.sum()], x)
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(4, 2\)\) does not"):
        grad((x @ c).sum(), [x, c])


def test_argument_types_are_checked():
    x = _leaf(A)
    loss = (x * x).sum()
    with pytest.raises(TypeError, match="grad: outputs must be a Tensor or a sequence"):
        grad(3.0, x)
    with pytest.raises(TypeError, match=r"grad: inputs\[1\] must be a Tensor, got ndarray"):
        grad(loss, [x, A])
    with pytest.raises(GradArgumentError, match="grad: inputs is empty"):
        grad(loss, [])
    with pytest.raises(TypeError, match="grad: create_graph must be a bool"):
        grad(loss, x, create_graph="yes")
    with pytest.raises(TypeError, match="grad: retain_graph must be a bool"):
        grad(loss, x, retain_graph=1)
    (gx,) = grad(loss, x)
    np.testing.assert_allclose(gx.numpy(), 2 * A)


def test_create_graph_under_no_grad_still_records():
    x = _leaf(A)
    loss = (x * x * x).sum()
    with tg.no_grad():
        (gx,) = grad(loss, x, create_graph=True)
        assert not (x * 2).requires_grad  # no_grad is back in force after the call
    assert gx.requires_grad
    (ggx,) = grad(gx.sum(), x)
    np.testing.assert_allclose(ggx.numpy(), 6 * A)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_keep_each_inputs_dtype(dtype):
    x = _leaf(A, dtype)
    for create_graph in (False, True):
        (gx,) = grad((x.tanh() * x).sum(), x, create_graph=create_graph)
        assert gx.dtype == dtype


def test_mixed_dtype_graphs_give_each_input_its_dtype():
    x32, w64 = _leaf(A, np.float32), _leaf(A, np.float64)
    loss = (x32 * w64 * w64).sum()  # promotes to float64, as numpy
    for create_graph in (False, True):
        g32, g64 = grad(loss, [x32, w64], create_graph=create_graph, retain_graph=True)
        assert (g32.dtype, g64.dtype) == (np.float32, np.float64)
        np.testing.assert_allclose(g32.numpy(), A * A, rtol=1e-6)
        np.testing.assert_allclose(g64.numpy(), 2 * A.astype(np.float32) * A, rtol=1e-6)


def test_results_require_grad_only_when_recorded_and_dependent():
    x = _leaf(A)
    (gx,) = grad((x * x).sum(), x)
    assert not gx.requires_grad
    (gx,) = grad((x * x).sum(), x, create_graph=True)
    assert gx.requires_grad
    (gx,) = grad((x * 2.0).sum(), x, create_graph=True)  # constant: depends on nothing
    assert not gx.requires_grad
    np.testing.assert_array_equal(gx.numpy(), np.full(A.shape, 2.0))


def test_third_derivative_of_tanh_is_its_closed_form():
    x = _leaf(A)
    (g1,) = grad(x.tanh().sum(), x, create_graph=True)
    (g2,) = grad(g1.sum(), x, create_graph=True)
    (g3,) = grad(g2.sum(), x)
    t = np.tanh(A)
    np.testing.assert_allclose(g3.numpy(), -2 * (1 - t * t) * (1 - 3 * t * t), rtol=1e-10)


def test_dict_inputs_give_a_dict():
    x, w = _leaf(A), _leaf(B)
    out = grad((x @ w).sum(), {"x": x, "w": w})
    assert list(out) == ["x", "w"]
    np.testing.assert_allclose(out["w"].numpy(), A.T @ np.ones((3, 2)))


def test_is_grads_batched_stacks_one_gradient_per_row():
    x = _leaf(A)
    y = x.tanh()
    vs = RNG.standard_normal((5, *A.shape))
    for create_graph in (False, True):
        (rows,) = grad(y, x, grad_outputs=vs, is_grads_batched=True, retain_graph=True,
                       create_graph=create_graph)
        assert rows.shape == (5, *A.shape) and rows.requires_grad == create_graph
        np.testing.assert_allclose(rows.numpy(), vs * (1 - np.tanh(A) ** 2), rtol=1e-12)
    with pytest.raises(GradArgumentError, match=r"grad_outputs\[0\] has shape \(3, 4\); "
                                                r"expected \(3, 3, 4\)"):
        grad(y, x, grad_outputs=np.ones(A.shape), is_grads_batched=True)


def test_only_inputs_false_warns_as_torch():
    x = _leaf(A)
    with pytest.warns(FutureWarning, match="only_inputs is deprecated"):
        (gx,) = grad((x * x).sum(), x, only_inputs=False)
    np.testing.assert_allclose(gx.numpy(), 2 * A)


def test_a_leaf_as_its_own_output():
    x = _leaf(A)
    v = RNG.standard_normal(A.shape)
    (gx,) = grad(x, x, grad_outputs=v)
    np.testing.assert_allclose(gx.numpy(), v)


def test_create_graph_with_retain_graph_false_frees_the_forward_as_torch():
    x = _leaf(A)
    (gx,) = grad(x.tanh().sum(), x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="grad: trying to differentiate through a graph a "
                                           "second time"):
        grad(gx.sum(), x)
