"""MatMul with a stacked left operand, (..., n, k) @ (k, m), runs as one folded GEMM, and addmm
(c + a @ b) adds c into the product's buffer: values and gradients must match numpy and central
differences, also with empty axes."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, gradcheck
from tinygrad_rnn.tensor import addmm

SHAPES = [((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (4, 2)), ((3, 4), (2, 4, 5)), ((4,), (2, 4, 3))]
EMPTY = [((2, 3, 0), (0, 5)), ((0, 3, 4), (4, 5)), ((2, 3, 4), (4, 0))]


@pytest.mark.parametrize("xs, ys", SHAPES)
def test_stacked_matmul_values_and_gradients(xs, ys):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    y = Tensor(rng.standard_normal(ys), requires_grad=True)
    np.testing.assert_allclose((x @ y).data, x.data @ y.data, rtol=1e-12)
    assert gradcheck(lambda a, b: ((a @ b) ** 2).sum(), [x, y])


@pytest.mark.parametrize("xs, ys", EMPTY)
def test_stacked_matmul_with_empty_axes(xs, ys):
    x = Tensor(np.ones(xs), requires_grad=True)
    y = Tensor(np.ones(ys), requires_grad=True)
    out = x @ y
    assert out.shape == (x.data @ y.data).shape
    out.sum().backward()
    assert x.grad.shape == xs and y.grad.shape == ys
    assert not x.grad.any() and not y.grad.any()


def test_addmm_adds_in_place_only_when_shape_and_dtype_allow():
    rng = np.random.default_rng(2)
    a = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal((4, 2)).astype(np.float32), requires_grad=True)
    for c in (np.ones(2, np.float32), np.ones((3, 2)), np.ones((2, 3, 2), np.float32)):
        out = addmm(Tensor(c), a, b)
        expected = c + a.data @ b.data
        assert out.shape == expected.shape and out.dtype == expected.dtype
        np.testing.assert_allclose(out.data, expected, rtol=1e-6)
        out.sum().backward()
        assert a.grad.dtype == np.float32 and a.grad.shape == (3, 4)
        a.grad = b.grad = None
    with pytest.raises(ValueError, match="addmm: a and b must be 2-D"):
        addmm(Tensor(np.ones(2)), Tensor(np.ones((2, 3, 4))), b)
