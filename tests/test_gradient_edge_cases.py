"""Gradients an outside review found wrong, each against its closed form or numpy: negative
transpose axes, every index form, pow at a zero base, max over NaN, float16 and empty means."""

import numpy as np
import pytest

from tinygrad_rnn import Tensor, gradcheck

RNG = np.random.default_rng(0)


def leaf(shape, dtype=np.float64):
    return Tensor(RNG.standard_normal(shape).astype(dtype), requires_grad=True)


@pytest.mark.parametrize("axes", [(-1, 0), (1, -2), (-1, -2), (0, -1, 1), (-3, -1, -2)])
def test_transpose_with_negative_axes(axes):
    x = leaf((2, 3) if len(axes) == 2 else (2, 3, 4))
    y = x.transpose(*axes)
    np.testing.assert_array_equal(y.data, x.data.transpose(axes))
    seed = RNG.standard_normal(y.shape)
    y.backward(seed)
    np.testing.assert_array_equal(x.grad, seed.transpose(np.argsort(np.array(axes) % x.ndim)))
    assert gradcheck(lambda t: t.transpose(*axes), [leaf(x.shape)])


@pytest.mark.parametrize("axes", [(0, 0), (0, 2), (-3, 0), (1,)])
def test_transpose_rejects_a_non_permutation(axes):
    with pytest.raises((ValueError, IndexError), match="transpose"):
        leaf((2, 3)).transpose(*axes)


INDEXES = [
    (0, (1, 2)), (0, [1, 2]), (range(2),), (slice(None), range(1, 3)), (True,), (np.True_,),
    (False,), (True, 1), (np.True_, slice(None), 0), ((0, 0, 3),), ([[0, 1], [3, 3]],),
    (np.array([[True, False, True]] * 4),), (np.int64(2), -1), (Ellipsis, [2, 0, 2]),
    (None, 1, (0, 2)), ([], slice(None)), (np.array(1),),
]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_every_index_form_routes_its_gradient(index):
    x = leaf((4, 3))
    y = x[index]
    np.testing.assert_array_equal(y.data, x.data[index])
    seed = RNG.standard_normal(y.shape)
    y.backward(seed)
    expected = np.zeros((4, 3))
    np.add.at(expected, index, seed)  # numpy's own scatter-add: repeats accumulate
    np.testing.assert_allclose(x.grad, expected)


@pytest.mark.parametrize("index", [1.5, (0, 1.0), [0.5], "a", {0: 1}, [[0, 1], [2]]], ids=repr)
def test_a_bad_index_names_getitem(index):
    with pytest.raises(IndexError, match="getitem"):
        leaf((4, 3))[index]


def test_pow_at_a_zero_base_has_the_limit_derivative():
    x = Tensor(np.array([0.0, 0.0, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()  # d/dx x^0 = 0 everywhere, also at 0
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    base = Tensor(np.array([0.0, 0.0, 3.0]))
    y = Tensor(np.array([2.0, 0.0, 1.5]), requires_grad=True)
    (base ** y).sum().backward()  # d/dy 0^y = 0 for y >= 0; 3^y log 3 elsewhere
    np.testing.assert_allclose(y.grad, [0.0, 0.0, 3.0 ** 1.5 * np.log(3.0)])


def test_pow_keeps_the_usual_derivative_away_from_zero():
    assert gradcheck(lambda a, b: a ** b, [Tensor(RNG.uniform(0.5, 2, (3,)), requires_grad=True),
                                           Tensor(RNG.uniform(-2, 2, (3,)), requires_grad=True)])


def test_max_over_a_nan_sends_the_gradient_to_the_nan():
    x = Tensor(np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]]), requires_grad=True)
    out = x.max(axis=1)
    assert np.isnan(out.data[0]) and out.data[1] == 6.0
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [0, 0, 1]])


def test_float16_mean_does_not_overflow():
    x = Tensor(np.full(100_000, 60_000.0, np.float16), requires_grad=True)
    m = x.mean()
    assert m.dtype == np.float16 and np.isfinite(m.data) and float(m.data) == 60_000.0
    m.backward()
    assert x.grad.dtype == np.float16 and np.allclose(x.grad, 1e-5, rtol=1e-2)


@pytest.mark.parametrize("shape, axis", [((0,), None), ((0, 3), 0), ((2, 0), None)])
def test_mean_of_an_empty_tensor_is_nan_as_torch(shape, axis):
    x = Tensor(np.zeros(shape), requires_grad=True)
    m = x.mean(axis=axis)
    assert np.isnan(m.data).all() and m.shape == np.zeros(shape).sum(axis=axis).shape
    m.sum().backward()
    assert x.grad.shape == shape


@pytest.mark.parametrize("axis, err", [(2, IndexError), (-3, IndexError), (1.0, TypeError),
                                       ((0, 0), ValueError), ("0", TypeError)])
@pytest.mark.parametrize("method", ["sum", "mean", "max"])
def test_reductions_name_a_bad_axis(method, axis, err):
    with pytest.raises(err, match=method):
        getattr(leaf((2, 3)), method)(axis=axis)
