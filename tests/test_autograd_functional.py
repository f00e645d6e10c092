"""vjp, jvp, jacobian, hessian, hvp, vhp: return forms, closed-form values, create_graph, strict
and the argument checks (torch is the oracle in tests/parity/test_torch_autograd.py)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor
from tinygrad_rnn.autograd import (
    GradArgumentError,
    grad,
    hessian,
    hvp,
    jacobian,
    jvp,
    vhp,
    vjp,
)

RNG = np.random.default_rng(1)
A = RNG.standard_normal(3)
B = RNG.standard_normal(2)
V = RNG.standard_normal(3)


def cube(x: Tensor) -> Tensor:
    return (x * x * x).sum()


def cube_hessian(a: np.ndarray) -> np.ndarray:
    return np.diag(6 * a)


def test_single_tensor_input_gives_tensors():
    x = Tensor(A)
    out, g = vjp(lambda t: t * t, x, Tensor(V))
    assert isinstance(out, Tensor) and isinstance(g, Tensor)
    np.testing.assert_allclose(out.numpy(), A * A)
    np.testing.assert_allclose(g.numpy(), 2 * A * V)
    out, j = jvp(lambda t: t * t, x, Tensor(V))
    np.testing.assert_allclose(j.numpy(), 2 * A * V)
    jac = jacobian(lambda t: t * t, x)
    assert isinstance(jac, Tensor)
    np.testing.assert_allclose(jac.numpy(), np.diag(2 * A))
    np.testing.assert_allclose(hessian(cube, x).numpy(), cube_hessian(A))
    for fn in (hvp, vhp):
        out, hv = fn(cube, x, Tensor(V))
        np.testing.assert_allclose(out.numpy(), (A ** 3).sum())
        np.testing.assert_allclose(hv.numpy(), 6 * A * V)


def test_tuples_give_tuples_and_tuples_of_tuples():
    def f(x, y):
        return x * 2.0, (x[:2] * y).sum()

    jac = jacobian(f, (Tensor(A), Tensor(B)))
    assert isinstance(jac, tuple) and all(isinstance(row, tuple) and len(row) == 2 for row in jac)
    assert [[j.shape for j in row] for row in jac] == [[(3, 3), (3, 2)], [(3,), (2,)]]
    np.testing.assert_allclose(jac[0][0].numpy(), 2 * np.eye(3))
    np.testing.assert_array_equal(jac[0][1].numpy(), np.zeros((3, 2)))
    np.testing.assert_allclose(jac[1][0].numpy(), np.concatenate([B, [0.0]]))
    one_in = jacobian(lambda x: (x, x.sum()), Tensor(A))  # tuple output, Tensor input
    assert isinstance(one_in, tuple) and isinstance(one_in[0], Tensor)
    one_out = jacobian(lambda x, y: x.sum() * y, (Tensor(A), Tensor(B)))
    assert isinstance(one_out, tuple) and [j.shape for j in one_out] == [(2, 3), (2, 2)]

    def g(x, y):
        return (x * x).sum() * y.sum()

    hess = hessian(g, (Tensor(A), Tensor(B)))
    assert [[h.shape for h in row] for row in hess] == [[(3, 3), (3, 2)], [(2, 3), (2, 2)]]
    np.testing.assert_allclose(hess[0][1].numpy(), np.tile(2 * A[:, None], (1, 2)))
    _, (hx, hy) = hvp(g, (Tensor(A), Tensor(B)), (Tensor(V), Tensor(np.ones(2))))
    np.testing.assert_allclose(hx.numpy(), 2 * V * B.sum() + 2 * A * 2)
    np.testing.assert_allclose(hy.numpy(), np.full(2, 2 * (A * V).sum()))


def test_v_may_be_none_only_for_one_element():
    x1 = Tensor(np.array([0.5]))
    _, g = vjp(lambda t: (t * t).sum(), Tensor(A))
    np.testing.assert_allclose(g.numpy(), 2 * A)
    _, j = jvp(lambda t: t * A, x1)
    np.testing.assert_allclose(j.numpy(), A)
    _, h = hvp(cube, x1)
    np.testing.assert_allclose(h.numpy(), [3.0])
    with pytest.raises(GradArgumentError, match="vjp: v can be None only when the output"):
        vjp(lambda t: t * t, Tensor(A))
    with pytest.raises(GradArgumentError, match="jvp: v can be None only when the input"):
        jvp(lambda t: t * t, Tensor(A))
    for fn in (hvp, vhp):
        with pytest.raises(GradArgumentError, match=f"{fn.__name__}: v can be None only"):
            fn(cube, Tensor(A))


def test_v_is_checked_against_count_and_shape():
    with pytest.raises(GradArgumentError, match=r"vjp: v has shape \(2,\); expected \(3,\)"):
        vjp(lambda t: t * t, Tensor(A), Tensor(B))
    with pytest.raises(GradArgumentError, match="jvp: v has 1 Tensors; expected 2"):
        jvp(lambda x, y: x, (Tensor(A), Tensor(B)), (Tensor(A),))
    with pytest.raises(GradArgumentError, match="hvp: v must be a single Tensor"):
        hvp(cube, Tensor(A), (Tensor(A), Tensor(A)))
    with pytest.raises(GradArgumentError, match=r"vhp: v\[1\] has shape \(3,\)"):
        vhp(lambda x, y: cube(x) + cube(y), (Tensor(A), Tensor(B)), (Tensor(A), Tensor(A)))
    with pytest.raises(TypeError, match="jvp: v must be a Tensor"):
        jvp(cube, Tensor(A), 5)


def test_inputs_and_func_are_checked():
    with pytest.raises(TypeError, match="vjp: func must be callable, got int"):
        vjp(5, Tensor(A), Tensor(A))
    with pytest.raises(TypeError, match="jacobian: inputs must be a Tensor .* got list"):
        jacobian(cube, [Tensor(A)])
    with pytest.raises(TypeError, match=r"hessian: inputs\[1\] must be a Tensor"):
        hessian(cube, (Tensor(A), A))
    with pytest.raises(GradArgumentError, match="jacobian: inputs is an empty tuple"):
        jacobian(cube, ())
    with pytest.raises(TypeError, match=r"jacobian: inputs\[0\] must have a floating dtype"):
        jacobian(lambda t: t * 2, Tensor(np.arange(3)))
    with pytest.raises(TypeError, match="jacobian: func's output must be a Tensor .* got list"):
        jacobian(lambda t: [t * 2], Tensor(A))
    with pytest.raises(TypeError, match="vhp: strict must be a bool"):
        vhp(cube, Tensor(A), Tensor(A), strict="no")
    with pytest.raises(TypeError, match="jacobian: vectorize must be a bool"):
        jacobian(cube, Tensor(A), vectorize=None)


def test_hessian_hvp_vhp_need_a_single_element_output():
    with pytest.raises(GradArgumentError, match="hessian: func must return a Tensor with a "
                                                r"single element, got shape \(3,\)"):
        hessian(lambda t: t * t, Tensor(A))
    with pytest.raises(GradArgumentError, match="hvp: func must return a single Tensor, got "
                                                "a tuple of 2"):
        hvp(lambda t: (cube(t), cube(t)), Tensor(A), Tensor(V))
    _, h = vhp(lambda t: cube(t).reshape(1, 1), Tensor(A), Tensor(V))  # one element: fine
    np.testing.assert_allclose(h.numpy(), 6 * A * V)
    np.testing.assert_allclose(hessian(lambda t: cube(t).reshape(1, 1), Tensor(A)).numpy(),
                               cube_hessian(A))


def test_strategy_and_vectorize_are_checked_as_torch_and_do_not_change_values():
    x = Tensor(A)
    expected = np.diag(2 * A)
    for kwargs in ({"vectorize": True}, {"vectorize": True, "strategy": "forward-mode"}):
        np.testing.assert_allclose(jacobian(lambda t: t * t, x, **kwargs).numpy(), expected)
    np.testing.assert_allclose(hessian(cube, x, vectorize=True,
                                       outer_jacobian_strategy="forward-mode").numpy(),
                               cube_hessian(A))
    with pytest.raises(ValueError, match="jacobian: strategy must be 'forward-mode' or "
                                         "'reverse-mode', got 'forward'"):
        jacobian(cube, x, strategy="forward")
    with pytest.raises(ValueError, match="hessian: outer_jacobian_strategy must be"):
        hessian(cube, x, outer_jacobian_strategy="reverse")
    with pytest.raises(NotImplementedError, match="strategy='forward-mode' needs vectorize"):
        jacobian(cube, x, strategy="forward-mode")
    with pytest.raises(NotImplementedError, match="create_graph=True and strategy="):
        jacobian(cube, x, strategy="forward-mode", vectorize=True, create_graph=True)
    with pytest.raises(RuntimeError, match="strict=True and strategy='forward-mode'"):
        jacobian(cube, x, strategy="forward-mode", vectorize=True, strict=True)
    with pytest.raises(RuntimeError, match="jacobian: strict=True and vectorize=True"):
        jacobian(cube, x, strict=True, vectorize=True)


def test_strict_names_the_independent_input():
    x, y = Tensor(A), Tensor(B)
    with pytest.raises(RuntimeError, match="jacobian: output 0 of func is independent of "
                                           "input 1; not allowed with strict=True"):
        jacobian(lambda a, b: a * 3, (x, y), strict=True)
    jac = jacobian(lambda a, b: a * 3, (x, y))
    np.testing.assert_array_equal(jac[1].numpy(), np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="vjp: output 0 of func does not require grad"):
        vjp(lambda a: Tensor(A), x, Tensor(V), strict=True)
    _, g = vjp(lambda a: Tensor(A), x, Tensor(V))
    np.testing.assert_array_equal(g.numpy(), np.zeros(3))
    with pytest.raises(RuntimeError, match="vjp: the Jacobian of func is independent of "
                                           "input 0; not allowed with strict=True and "
                                           "create_graph=True"):
        vjp(lambda a: a * 3, x, Tensor(V), strict=True, create_graph=True)
    with pytest.raises(RuntimeError, match="hessian: the gradient of func with respect to "
                                           "input 0 is independent of the inputs"):
        hessian(lambda a: (a * 3).sum(), x, strict=True)
    np.testing.assert_array_equal(hessian(lambda a: (a * 3).sum(), x).numpy(), np.zeros((3, 3)))
    for fn in (hvp, vhp):
        with pytest.raises(RuntimeError, match=f"{fn.__name__}: the gradient of func with "
                                               "respect to input 0 is independent"):
            fn(lambda a: (a * 3).sum(), x, Tensor(V), strict=True)
    with pytest.raises(RuntimeError, match="hvp: the Hessian of func is independent of input 0"):
        hvp(lambda a: (a * a).sum(), x, Tensor(V), strict=True, create_graph=True)


def test_inputs_are_detached_without_create_graph():
    x = Tensor(A, requires_grad=True)
    h = x * 2.0  # the caller's graph, which the transform must not free or extend
    out, g = vjp(lambda t: (t * t).sum(), h)
    assert not out.requires_grad and not g.requires_grad
    jac = jacobian(lambda t: t * t, h)
    assert not jac.requires_grad
    (gx,) = grad(h.sum(), x)  # still whole
    np.testing.assert_array_equal(gx.numpy(), np.full(3, 2.0))
    assert x.grad is None


def test_create_graph_wires_results_to_the_callers_tensors():
    x = Tensor(A, requires_grad=True)
    out, g = vjp(cube, x, create_graph=True)  # g = 3 x^2
    assert out.requires_grad and g.requires_grad
    (gg,) = grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * A)
    _, hv = hvp(cube, x, Tensor(V), create_graph=True)  # 6 x v
    (d,) = grad(hv.sum(), x)
    np.testing.assert_allclose(d.numpy(), 6 * V)
    h = hessian(cube, x, create_graph=True)
    (d,) = grad(h.sum(), x)
    np.testing.assert_allclose(d.numpy(), np.full(3, 6.0))
    c = Tensor(A)  # no grad: differentiated at a fresh leaf, which the result depends on
    _, g = vjp(cube, c, create_graph=True)
    assert g.requires_grad and not c.requires_grad  # as torch


def test_v_that_requires_grad_is_differentiated_through_with_create_graph():
    v = Tensor(V, requires_grad=True)
    _, j = jvp(lambda t: t * t, Tensor(A), v, create_graph=True)  # 2 a v
    (gv,) = grad(j.sum(), v)
    np.testing.assert_allclose(gv.numpy(), 2 * A)


def test_transforms_work_under_no_grad():
    with tg.no_grad():
        np.testing.assert_allclose(hessian(cube, Tensor(A)).numpy(), cube_hessian(A))
        _, g = vjp(cube, Tensor(A))
    np.testing.assert_allclose(g.numpy(), 3 * A * A)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_keep_the_dtype(dtype):
    x = Tensor(A.astype(dtype))
    assert jacobian(lambda t: t.tanh(), x).dtype == dtype
    assert hessian(cube, x).dtype == dtype
    assert vjp(lambda t: t.tanh(), x, Tensor(V))[1].dtype == dtype  # v is cast to the output's
    assert hvp(cube, x, Tensor(V))[1].dtype == dtype


def test_an_output_with_no_element_gives_an_empty_jacobian():
    jac = jacobian(lambda t: t[:0] * 2.0, Tensor(A))
    assert jac.shape == (0, 3)
