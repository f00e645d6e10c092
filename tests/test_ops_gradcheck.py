"""Every registered primitive against central differences in float64, on drawn shapes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import one_output, op_case

from tinygrad_rnn import gradcheck
from tinygrad_rnn.ops import OPS
from tinygrad_rnn.tensor import apply


@pytest.mark.parametrize("name", sorted(OPS))
@given(data=st.data())
def test_primitive_gradient(name, data):
    op = OPS[name]
    case = data.draw(op_case(name))
    assert gradcheck(lambda *ts: one_output(apply(op, *ts, **case.kwargs)), case.tensors)


def test_registry_holds_the_documented_primitives():
    documented = {"add", "sub", "mul", "div", "pow", "matmul", "neg", "exp", "log", "sqrt",
                  "abs", "tanh", "sigmoid", "relu", "clip", "sum", "max", "reshape",
                  "transpose", "getitem", "cat", "stack", "where", "embedding"}
    assert documented <= set(OPS)
