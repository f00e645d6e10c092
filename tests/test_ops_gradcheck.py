"""Every registered primitive against central differences in float64, on drawn shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CONSTANT, DIFFERENTIABLE, RANDOM, one_output, op_case

from tinygrad_rnn import gradcheck
from tinygrad_rnn.ops import OPS
from tinygrad_rnn.tensor import apply


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_primitive_gradient(name, data):
    op = OPS[name]
    case = data.draw(op_case(name))
    assert gradcheck(lambda *ts: one_output(apply(op, *ts, **case.kwargs)), case.tensors)


@pytest.mark.parametrize("name", CONSTANT)
@given(data=st.data())
def test_a_constant_primitive_gives_a_mask_without_gradient(name, data):
    """A comparison: a boolean array, never recorded, even when its inputs require grad."""
    case = data.draw(op_case(name))
    out = apply(OPS[name], *case.tensors, **case.kwargs)
    assert out.dtype == np.bool_ and not out.requires_grad and out.is_leaf
    if name == "lengths_mask":  # integer lengths (no gradient to ask for) -> (B, T) mask
        lengths = case.tensors[0].data
        expected = np.arange(case.kwargs["steps"])[None, :] < lengths[:, None]
    else:
        assert all(t.requires_grad for t in case.tensors)
        expected = getattr(np, case.kwargs["op"])(*(t.data for t in case.tensors))
    np.testing.assert_array_equal(out.data, expected)


def test_the_walks_cover_every_primitive():
    assert set(DIFFERENTIABLE) | set(CONSTANT) | set(RANDOM) == set(OPS)
    assert CONSTANT == ["compare", "lengths_mask"] and RANDOM == ["dropout_mask"]


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
def test_dropout_mask_draws_an_inverted_mask_from_its_generator(p):
    """Zero or 1/(1-p), in the dtype asked, the same draws as the generator's own; no node."""
    out = apply(OPS["dropout_mask"], shape=(50, 40), p=p, dtype=np.float32,
                rng=np.random.default_rng(3))
    expected = ((np.random.default_rng(3).random((50, 40)) >= p) / (1.0 - p)).astype(np.float32)
    assert out.dtype == np.float32 and out.is_leaf and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected)
    np.random.seed(4)
    again = apply(OPS["dropout_mask"], shape=(3,), p=p, dtype=np.float64)
    np.random.seed(4)
    np.testing.assert_array_equal(again.data, (np.random.random(3) >= p) / (1.0 - p))


def test_registry_holds_the_documented_primitives():
    documented = {"add", "sub", "mul", "div", "pow", "matmul", "neg", "exp", "log", "sqrt",
                  "abs", "tanh", "sigmoid", "relu", "clip", "sum", "max", "reshape",
                  "transpose", "getitem", "cat", "stack", "where", "embedding"}
    assert documented <= set(OPS)
