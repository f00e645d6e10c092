"""grad and the functional transforms next to torch.autograd.grad and
torch.autograd.functional: values (float64, 1e-12), return forms, requires_grad of results,
create_graph results differentiated again, and the error types where both refuse a call."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor, autograd

torch = pytest.importorskip("torch")
TF = torch.autograd.functional

TOL = {"rtol": 1e-12, "atol": 1e-12}
RNG = np.random.default_rng(7)
A, B, C = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4)), RNG.standard_normal(3)


def _pair(a: np.ndarray, requires_grad: bool = True, dtype=np.float64):
    a = np.asarray(a, dtype)
    return Tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def _same(ours, theirs, path: str = "result") -> None:
    """Same nesting (tuple or Tensor or None), shapes, dtypes, values and requires_grad."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs), path
        for i, (o, t) in enumerate(zip(ours, theirs)):
            _same(o, t, f"{path}[{i}]")
        return
    if theirs is None:
        assert ours is None, path
        return
    assert isinstance(ours, Tensor), (path, type(ours))
    assert ours.shape == tuple(theirs.shape), (path, ours.shape, theirs.shape)
    assert ours.dtype == theirs.detach().numpy().dtype, path
    assert ours.requires_grad == theirs.requires_grad, (path, ours.requires_grad)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **TOL, err_msg=path)


def net(x, w, v):
    """The same expression in both libraries: tanh, matmul, broadcasting, exp, a product."""
    h = (x @ w).tanh()
    return (h * h).sum() + (x.exp() * v).sum() + (x * x * x).sum()


# ---- grad -----------------------------------------------------------------------------------
@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_values_and_flags(create_graph):
    (x, tx), (w, tw), (v, tv) = _pair(A), _pair(B), _pair(C)
    ours = autograd.grad(net(x, w, v), [x, w, v], create_graph=create_graph)
    theirs = torch.autograd.grad(net(tx, tw, tv), [tx, tw, tv], create_graph=create_graph)
    _same(ours, theirs)


def test_grad_of_grad_equals_torch():
    (x, tx), (w, tw), (v, tv) = _pair(A), _pair(B), _pair(C)
    gx, gw, _ = autograd.grad(net(x, w, v), [x, w, v], create_graph=True)
    tgx, tgw, _ = torch.autograd.grad(net(tx, tw, tv), [tx, tw, tv], create_graph=True)
    second = autograd.grad((gx * gx).sum() + (gw * w).sum(), [x, w, v], create_graph=True)
    t_second = torch.autograd.grad((tgx * tgx).sum() + (tgw * tw).sum(), [tx, tw, tv],
                                   create_graph=True)
    _same(second, t_second)
    third = autograd.grad(second[0].sum(), [x, v], allow_unused=True)
    t_third = torch.autograd.grad(t_second[0].sum(), [tx, tv], allow_unused=True)
    _same(third, t_third)


def test_grad_with_respect_to_intermediates_and_chunk_outputs():
    (x, tx), (w, tw) = _pair(A), _pair(B)

    def forward(x, w):
        h = x @ w
        left, right = h.chunk(2, 1)
        return h, left, right, (left.tanh() * right).sum() + (h * h).sum()

    h, left, right, loss = forward(x, w)
    th, tleft, tright, tloss = forward(tx, tw)
    _same(autograd.grad(loss, [right, h, left, x], create_graph=True),
          torch.autograd.grad(tloss, [tright, th, tleft, tx], create_graph=True))


def test_grad_outputs_sequences_none_and_grad_outputs_that_require_grad():
    (x, tx), (g, tg_) = _pair(A), _pair(RNG.standard_normal((2, 3)))
    outs = [x.tanh(), (x * x).sum()]
    t_outs = [tx.tanh(), (tx * tx).sum()]
    ours = autograd.grad(outs, x, grad_outputs=[g, None], create_graph=True)
    theirs = torch.autograd.grad(t_outs, tx, grad_outputs=[tg_, None], create_graph=True)
    _same(ours, theirs)
    _same(autograd.grad(ours[0].sum(), [g, x]), torch.autograd.grad(theirs[0].sum(), [tg_, tx]))


def test_unused_inputs_allow_unused_and_materialize_grads():
    (x, tx), (u, tu) = _pair(A), _pair(C)
    for kwargs in ({"allow_unused": True}, {"materialize_grads": True},
                   {"materialize_grads": True, "create_graph": True}):
        _same(autograd.grad((x * x).sum(), [x, u], **kwargs),
              torch.autograd.grad((tx * tx).sum(), [tx, tu], **kwargs))


def test_float32_and_mixed_dtypes():
    (x, tx), (w, tw) = _pair(A, dtype=np.float32), _pair(A, dtype=np.float64)
    for create_graph in (False, True):
        ours = autograd.grad((x.tanh() * w * w).sum(), [x, w], create_graph=create_graph)
        theirs = torch.autograd.grad((tx.tanh() * tw * tw).sum(), [tx, tw],
                                     create_graph=create_graph)
        for o, t in zip(ours, theirs):
            assert o.dtype == t.detach().numpy().dtype and o.requires_grad == t.requires_grad
            np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-6)


def test_create_graph_under_no_grad_records_as_torch():
    (x, tx) = _pair(C)
    loss, t_loss = (x * x * x).sum(), (tx * tx * tx).sum()
    with tg.no_grad():
        ours = autograd.grad(loss, x, create_graph=True)
    with torch.no_grad():
        theirs = torch.autograd.grad(t_loss, tx, create_graph=True)
    _same(ours, theirs)


def test_constant_gradients_do_not_require_grad_as_torch():
    (x, tx) = _pair(C)
    _same(autograd.grad((x * 2.0).sum(), x, create_graph=True),
          torch.autograd.grad((tx * 2.0).sum(), tx, create_graph=True))


def test_batched_grads_as_torch():
    (x, tx) = _pair(A)
    basis = np.eye(6).reshape(6, 2, 3)
    _same(autograd.grad(x.tanh(), x, grad_outputs=Tensor(basis), is_grads_batched=True),
          torch.autograd.grad(tx.tanh(), tx, grad_outputs=torch.tensor(basis),
                              is_grads_batched=True))


def _both_raise(exc, ours, theirs):
    with pytest.raises(exc):
        theirs()
    with pytest.raises(exc, match=r"grad: "):
        ours()


def test_error_types_match_torch():
    (x, tx), (u, tu) = _pair(A), _pair(C)
    _both_raise(RuntimeError, lambda: autograd.grad(x * x, x),
                lambda: torch.autograd.grad(tx * tx, tx))
    _both_raise(RuntimeError, lambda: autograd.grad((x * x).sum(), [x, u]),
                lambda: torch.autograd.grad((tx * tx).sum(), [tx, tu]))
    _both_raise(RuntimeError, lambda: autograd.grad(x * x, x, grad_outputs=np.ones((3, 2))),
                lambda: torch.autograd.grad(tx * tx, tx, grad_outputs=torch.ones(3, 2)))
    _both_raise(RuntimeError, lambda: autograd.grad(Tensor(A).sum(), x),
                lambda: torch.autograd.grad(torch.tensor(A).sum(), tx))
    _both_raise(RuntimeError, lambda: autograd.grad((x * x).sum(), Tensor(A)),
                lambda: torch.autograd.grad((tx * tx).sum(), torch.tensor(A)))
    _both_raise(RuntimeError, lambda: autograd.grad((x * x).sum(), []),
                lambda: torch.autograd.grad((tx * tx).sum(), []))
    _both_raise(ValueError,
                lambda: autograd.grad((x * x).sum(), x, materialize_grads=True,
                                      allow_unused=False),
                lambda: torch.autograd.grad((tx * tx).sum(), tx, materialize_grads=True,
                                            allow_unused=False))
    loss, t_loss = (x * x).sum(), (tx * tx).sum()
    autograd.grad(loss, x)
    torch.autograd.grad(t_loss, tx)
    _both_raise(RuntimeError, lambda: autograd.grad(loss, x),
                lambda: torch.autograd.grad(t_loss, tx))


# ---- functional transforms ------------------------------------------------------------------
def f_one(x):
    return (x * x).tanh() * x


def f_two(x, w):
    return (x @ w).tanh(), (x.exp() * x).sum()


def s_one(x):
    return ((x * x).tanh() * x).sum()


def s_two(x, w):
    return ((x @ w).tanh() ** 2).sum() + (x * x * x).sum()


def _args(tuple_input: bool, requires_grad: bool = False):
    pairs = [_pair(A, requires_grad)] + ([_pair(B, requires_grad)] if tuple_input else [])
    ours, theirs = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return (ours, theirs) if tuple_input else (ours[0], theirs[0])


def _v_like(shapes_of, seed: int):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes_of]
    return tuple(Tensor(a) for a in arrays), tuple(torch.tensor(a) for a in arrays)


def _maybe_single(pair, single: bool):
    return (pair[0][0], pair[1][0]) if single else pair


CASES = [(False, f_one, False), (True, f_two, True)]  # (tuple input, func, tuple output)


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("tuple_input, func, tuple_output", CASES)
def test_vjp_jvp_jacobian_forms_and_values(tuple_input, func, tuple_output, create_graph):
    x, tx = _args(tuple_input, requires_grad=create_graph)
    out_shapes = [(2, 4), ()] if tuple_output else [(2, 3)]
    in_shapes = [(2, 3), (3, 4)] if tuple_input else [(2, 3)]
    v, tv = _maybe_single(_v_like(out_shapes, 1), not tuple_output)
    u, tu = _maybe_single(_v_like(in_shapes, 2), not tuple_input)
    kw = {"create_graph": create_graph}
    _same(autograd.vjp(func, x, v, **kw), TF.vjp(func, tx, tv, **kw))
    _same(autograd.jvp(func, x, u, **kw), TF.jvp(func, tx, tu, **kw))
    _same(autograd.jacobian(func, x, **kw), TF.jacobian(func, tx, **kw))
    _same(autograd.jacobian(func, x, vectorize=True, **kw),
          TF.jacobian(func, tx, vectorize=True, **kw))


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("tuple_input, func", [(False, s_one), (True, s_two)])
def test_hessian_hvp_vhp_forms_and_values(tuple_input, func, create_graph):
    x, tx = _args(tuple_input, requires_grad=create_graph)
    in_shapes = [(2, 3), (3, 4)] if tuple_input else [(2, 3)]
    v, tv = _maybe_single(_v_like(in_shapes, 3), not tuple_input)
    kw = {"create_graph": create_graph}
    _same(autograd.hessian(func, x, **kw), TF.hessian(func, tx, **kw))
    _same(autograd.hvp(func, x, v, **kw), TF.hvp(func, tx, tv, **kw))
    _same(autograd.vhp(func, x, v, **kw), TF.vhp(func, tx, tv, **kw))


def test_create_graph_results_differentiated_again():
    (x, tx), (w, tw) = _pair(A), _pair(B)
    v, tv = _v_like([(2, 3), (3, 4)], 4)
    results = [
        autograd.jacobian(f_two, (x, w), create_graph=True)[0][1],
        autograd.hessian(s_two, (x, w), create_graph=True)[1][0],
        autograd.hvp(s_two, (x, w), v, create_graph=True)[1][0],
        autograd.vhp(s_two, (x, w), v, create_graph=True)[1][1],
        autograd.jvp(f_two, (x, w), v, create_graph=True)[1][0],
        autograd.vjp(f_one, x, v[0], create_graph=True)[1],
    ]
    t_results = [
        TF.jacobian(f_two, (tx, tw), create_graph=True)[0][1],
        TF.hessian(s_two, (tx, tw), create_graph=True)[1][0],
        TF.hvp(s_two, (tx, tw), tv, create_graph=True)[1][0],
        TF.vhp(s_two, (tx, tw), tv, create_graph=True)[1][1],
        TF.jvp(f_two, (tx, tw), tv, create_graph=True)[1][0],
        TF.vjp(f_one, tx, tv[0], create_graph=True)[1],
    ]
    for r, t in zip(results, t_results):
        _same(autograd.grad((r * r).sum(), [x, w], allow_unused=True),
              torch.autograd.grad((t * t).sum(), [tx, tw], allow_unused=True))


def test_v_none_for_single_elements_as_torch():
    (x, tx) = _pair(np.array([0.7]), requires_grad=False)
    _same(autograd.vjp(s_one, Tensor(A)), TF.vjp(s_one, torch.tensor(A)))
    _same(autograd.jvp(f_one, x), TF.jvp(f_one, tx))
    _same(autograd.hvp(s_one, x), TF.hvp(s_one, tx))
    _same(autograd.vhp(s_one, x), TF.vhp(s_one, tx))


def test_strict_zeros_and_errors_as_torch():
    (x, tx), (w, tw) = _pair(A, False), _pair(B, False)

    def linear(a, b):
        return a * 3.0

    _same(autograd.jacobian(linear, (x, w)), TF.jacobian(linear, (tx, tw)))
    _same(autograd.hessian(lambda a: (a * 3.0).sum(), x),
          TF.hessian(lambda a: (a * 3.0).sum(), tx))
    calls = [
        (lambda m, a, b: m.jacobian(linear, (a, b), strict=True)),
        (lambda m, a, b: m.hessian(lambda p: (p * 3.0).sum(), a, strict=True)),
        (lambda m, a, b: m.vjp(lambda p: p * 3.0, a, a, strict=True, create_graph=True)),
        (lambda m, a, b: m.jvp(lambda p: p * 3.0, a, a, strict=True, create_graph=True)),
        (lambda m, a, b: m.hvp(lambda p: (p * p).sum(), a, a, strict=True, create_graph=True)),
        (lambda m, a, b: m.vhp(lambda p: (p * 3.0).sum(), a, a, strict=True)),
    ]
    for call in calls:
        with pytest.raises(RuntimeError):
            call(TF, tx, tw)
        with pytest.raises(RuntimeError, match="strict=True"):
            call(autograd, x, w)
