"""Every registered primitive's second derivative (its backward, recorded and differentiated
again) against central differences in float64, on drawn shapes; and a planted primitive whose
first derivative is right but whose backward is not differentiable is caught and named."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CASES, CONSTANT, DIFFERENTIABLE, RANDOM, one_output, op_case

from tinygrad_rnn import GradcheckError, Tensor, gradcheck, gradgradcheck
from tinygrad_rnn.ops import OPS, Op, primitive
from tinygrad_rnn.tensor import apply

WALKED = DIFFERENTIABLE  # the primitives parametrized below, as registered at import


@pytest.mark.parametrize("name", WALKED)
@given(data=st.data())
def test_primitive_second_derivative(name, data):
    op = OPS[name]
    case = data.draw(op_case(name))
    assert gradgradcheck(lambda *ts: one_output(apply(op, *ts, **case.kwargs)), case.tensors)


def test_registry_walk_covers_every_primitive():
    # nothing registered later, nothing planted left behind; comparisons give constants
    assert set(WALKED) | set(CONSTANT) | set(RANDOM) == set(OPS)
    assert set(OPS) <= set(CASES)  # each has a strategy drawing its inputs
    assert {"broadcast_to", "scatter_add", "astype", "addmm", "addcmul"} <= set(WALKED)


@pytest.fixture
def planted_sin():
    """sin whose backward multiplies by cos of the saved *array*: right on the numpy path, but
    when recorded the cos is a constant, so its derivative (-sin) is lost."""
    @primitive("planted_sin")
    class PlantedSin(Op):
        def forward(self, x):
            self.x = x
            return np.sin(x)

        def backward(self, g):
            return (g * np.cos(self.x),)  # not listed in saved_tensors: never wired
    try:
        yield PlantedSin
    finally:
        del OPS["planted_sin"]
    assert "planted_sin" not in OPS


def test_planted_primitive_passes_gradcheck_fails_gradgradcheck(planted_sin):
    x = Tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    w = Tensor(np.array([[0.5], [1.5], [-0.7]]), requires_grad=True)

    def fn(a, b):
        return apply(planted_sin, a) @ b

    assert gradcheck(fn, [x, w])
    with pytest.raises(GradcheckError, match=r"^gradgradcheck: fn \(primitives: planted_sin, "
                                             r"matmul\): input 0 \(3,\) worst at \(\d,\): "
                                             r"analytic \S+ vs numeric \S+"):
        gradgradcheck(fn, [x, w])
    assert gradgradcheck(fn, [x, w], raise_exception=False) is False
    assert x.grad is None and w.grad is None  # the inputs are never touched


def test_planted_primitive_is_named_among_others(planted_sin):
    x = Tensor(np.array([[0.2, 0.9], [-0.4, 1.1]]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"\(primitives: tanh, planted_sin, sum\)"):
        gradgradcheck(lambda a: apply(planted_sin, a.tanh()).sum(), [x])
