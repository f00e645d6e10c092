"""Gradients of gradients of gradients: the third derivatives of tanh, sigmoid, exp and log,
each obtained by differentiating a recorded backward twice more, equal their closed forms."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import values

from tinygrad_rnn import Tensor
from tinygrad_rnn.autograd import grad


def _tanh3(x):
    t = np.tanh(x)
    return -2.0 * (1.0 - t * t) * (1.0 - 3.0 * t * t)


def _sigmoid3(x):
    s = 1.0 / (1.0 + np.exp(-x))
    return s * (1.0 - s) * (1.0 - 6.0 * s + 6.0 * s * s)


CLOSED_FORMS = {  # name: (method, f''' in closed form, domain)
    "tanh": (Tensor.tanh, _tanh3, (-3.0, 3.0)),
    "sigmoid": (Tensor.sigmoid, _sigmoid3, (-4.0, 4.0)),
    "exp": (Tensor.exp, np.exp, (-2.0, 2.0)),
    "log": (Tensor.log, lambda x: 2.0 / x ** 3, (0.3, 3.0)),
}


def _nth_derivative(f, x: Tensor, n: int) -> Tensor:
    """d^n/dx^n of elementwise f at every element of x (each a sum's gradient, recorded)."""
    out = f(x)
    for k in range(n):
        (out,) = grad(out.sum(), x, create_graph=k < n - 1)
    return out


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
@given(data=st.data())
def test_third_derivative_equals_closed_form(name, data):
    method, third, domain = CLOSED_FORMS[name]
    arr = data.draw(values(data.draw(st.sampled_from([(), (4,), (2, 3)])), domain))
    x = Tensor(arr, requires_grad=True)
    np.testing.assert_allclose(_nth_derivative(method, x, 3).data, third(arr),
                               rtol=1e-10, atol=1e-12)
    assert x.grad is None  # grad returns gradients, it never accumulates


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_third_derivative_is_differentiable_again(name):
    """The third derivative is itself recorded: a fourth by central differences of the third."""
    method, third, domain = CLOSED_FORMS[name]
    arr = np.linspace(*domain, 7)[1:-1]
    x = Tensor(arr, requires_grad=True)
    fourth = _nth_derivative(method, x, 4).data
    h = 1e-5
    np.testing.assert_allclose(fourth, (third(arr + h) - third(arr - h)) / (2 * h),
                               rtol=1e-6, atol=1e-6)
