"""The review's gradient cases against torch itself: zero bases, NaN maxima, float16 means."""

import numpy as np
import pytest

from tinygrad_rnn import Tensor

torch = pytest.importorskip("torch")


def _both(x):
    return Tensor(np.array(x, np.float64), requires_grad=True), torch.tensor(
        np.array(x, np.float64), requires_grad=True)


@pytest.mark.parametrize("base, exponent", [
    ([0.0, 0.0, 2.0, -1.5], [0.0, 2.0, 0.0, 2.0]), ([0.0, 0.0], [0.5, 3.0]),
    ([0.0, 1.0], [-1.0, -2.0]),
])
def test_pow_gradients_equal_torch(base, exponent):
    (xb, tb), (xe, te) = _both(base), _both(exponent)
    (xb ** xe).sum().backward()
    (tb ** te).sum().backward()
    np.testing.assert_allclose(xb.grad, tb.grad.numpy(), equal_nan=True)
    np.testing.assert_allclose(xe.grad, te.grad.numpy(), equal_nan=True)


def test_max_with_nans_equals_torch_max():
    data = [[1.0, np.nan, 3.0], [np.nan, 5.0, np.nan], [7.0, 8.0, 9.0]]
    x, t = _both(data)
    out, tout = x.max(), t.max()  # the NaNs are the maximum and share its gradient
    assert np.isnan(out.data) and np.isnan(tout.item())
    out.backward()
    tout.backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy())


def test_float16_mean_equals_torch():
    data = np.full((300, 400), 300.0, np.float16)
    ours = Tensor(data).mean()
    theirs = torch.tensor(data).mean()
    assert float(ours.data) == float(theirs)


def test_transpose_negative_axes_equal_torch_permute():
    x, t = _both(np.arange(24.0).reshape(2, 3, 4))
    x.transpose(-1, 0, -2).sum(axis=0).sum().backward()
    t.permute(-1, 0, -2).sum(dim=0).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
