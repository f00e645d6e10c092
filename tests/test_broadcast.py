"""Broadcast gradients are summed back to each input's shape, on both sides of every operator."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_rnn import Tensor, gradcheck
from tinygrad_rnn.engine import unbroadcast

OPERATORS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3))
def test_broadcast_gradient_has_each_input_shape(name, shapes):
    sx, sy = shapes.input_shapes
    rng = np.random.default_rng(0)
    x = Tensor(rng.uniform(0.5, 2.0, sx), requires_grad=True)
    y = Tensor(rng.uniform(0.5, 2.0, sy), requires_grad=True)
    OPERATORS[name](x, y).sum().backward()
    assert x.grad.shape == sx and y.grad.shape == sy
    assert gradcheck(OPERATORS[name], [x, y])


@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3), scalar=st.floats(0.5, 2))
def test_python_scalars_on_either_side(shape, scalar):
    x = Tensor(np.full(shape, 1.5), requires_grad=True)
    (scalar * x + x / scalar - scalar / x).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(shape, scalar + 1 / scalar + scalar / 1.5**2))


def test_unbroadcast_sums_added_and_stretched_axes():
    g = np.ones((4, 2, 3))
    assert unbroadcast(g, (2, 3)).tolist() == [[4.0] * 3] * 2
    assert unbroadcast(g, (1, 3)).tolist() == [[8.0] * 3]
    assert unbroadcast(g, ()).item() == 24.0
