"""Each primitive's double backward equals torch's: the gradient recorded with
create_graph=True, projected, and differentiated again with respect to the inputs and the
incoming gradient (float64, drawn shapes, broadcasting)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import DIFFERENTIABLE, one_output, op_case
from test_torch_ops import TORCH

from tinygrad_rnn import Tensor
from tinygrad_rnn.autograd import grad
from tinygrad_rnn.ops import OPS
from tinygrad_rnn.tensor import apply

torch = pytest.importorskip("torch")


def _ours(name, case, seed, weights):
    """Second derivatives of sum(weights * d<out, seed>/dx) with respect to each x and seed."""
    xs = [t for t in case.tensors if t.requires_grad]
    out = one_output(apply(OPS[name], *case.tensors, **case.kwargs))
    v = Tensor(seed, requires_grad=True)
    first = grad(out, xs, v, create_graph=True, allow_unused=True)
    total = sum((g * w).sum() for g, w in zip(first, weights) if g is not None)
    second = grad(total, [*xs, v], allow_unused=True, materialize_grads=True)
    return [None if g is None else g.data for g in first], [g.data for g in second]


def _theirs(name, case, seed, weights):
    ins = [torch.tensor(t.data, requires_grad=t.requires_grad) for t in case.tensors]
    xs = [t for t in ins if t.requires_grad]
    out = TORCH[name](*ins, **case.kwargs)
    if isinstance(out, (tuple, list)):  # a multi-output op, weighted as one_output does
        out = sum((piece * float(k)).sum() for k, piece in enumerate(out, start=1))
    v = torch.tensor(seed, requires_grad=True)
    first = torch.autograd.grad(out, xs, v, create_graph=True, allow_unused=True)
    total = sum((g * torch.tensor(w)).sum() for g, w in zip(first, weights) if g is not None)
    second = torch.autograd.grad(total, [*xs, v], allow_unused=True, materialize_grads=True)
    return ([None if g is None else g.detach().numpy() for g in first],
            [g.numpy(force=True) for g in second])


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_double_backward_matches_torch(name, data):
    case = data.draw(op_case(name))
    rng = np.random.default_rng(2)
    out_shape = one_output(apply(OPS[name], *case.tensors, **case.kwargs)).shape
    seed = rng.standard_normal(out_shape)
    weights = [rng.standard_normal(t.shape) for t in case.tensors if t.requires_grad]
    (our_first, our_second) = _ours(name, case, seed, weights)
    (their_first, their_second) = _theirs(name, case, seed, weights)
    for ours, theirs in zip(our_first, their_first, strict=True):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(our_second, their_second, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
