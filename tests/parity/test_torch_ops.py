"""Forward values and gradients of every primitive equal torch's (float64, broadcasting)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import one_output, op_case

from tinygrad_rnn.ops import OPS
from tinygrad_rnn.tensor import apply

torch = pytest.importorskip("torch")


def _torch_index(index, shape):
    """The same index for torch: advanced parts as tensors, boolean scalars as bools, and
    negative slice steps (torch has none) as index arrays."""
    parts = index if isinstance(index, tuple) else (index,)
    advanced = [p for p in parts if isinstance(p, (list, tuple, range, np.ndarray, bool,
                                                    np.bool_))]
    reversed_slices = [p for p in parts if isinstance(p, slice) and (p.step or 1) < 0]
    assume(not (advanced and reversed_slices))  # as an array it would join the advanced ones
    dims = iter(shape)
    out = []
    for part in parts:
        if isinstance(part, slice) and (part.step or 1) < 0:
            part = torch.as_tensor(np.arange(next(dims))[part].copy())
        elif isinstance(part, (bool, np.bool_)):
            part = bool(part)
        elif isinstance(part, (list, tuple, range, np.ndarray)):
            arr = np.asarray(part)
            part = torch.as_tensor(arr.astype(np.int64) if arr.dtype.kind != "b" else arr)
            next(dims, None)
        elif part is Ellipsis or part is not None:  # here an Ellipsis always stands for the first axis
            next(dims, None)
        out.append(part)
    return tuple(out) if isinstance(index, tuple) else out[0]


def _reduce(fn):
    def run(x, axis=None, keepdims=False):
        if axis is None:
            out = fn(x, dim=tuple(range(x.ndim)), keepdim=True)
            return out if keepdims else out.reshape(())
        return fn(x, dim=axis if isinstance(axis, tuple) else (axis,), keepdim=keepdims)
    return run


def _amax(x, dim, keepdim):  # torch.amax shares the gradient among ties, as we do
    return torch.amax(x, dim=dim, keepdim=keepdim)


def _embedding(w, indices, padding_idx=None):
    return torch.nn.functional.embedding(torch.as_tensor(indices), w, padding_idx=padding_idx)


def _class_pick(x, target, ignore_index=-100):
    """torch's gather of each row's target class; an ignored row picks class 0."""
    t = torch.as_tensor(target)
    return x.gather(1, torch.where(t != ignore_index, t, 0)[:, None])[:, 0]


def _scatter_add(v, index, shape):
    """Zeros with v added at index: torch's own gradient of x[index], differentiable in v."""
    x = torch.zeros(shape, dtype=v.dtype, requires_grad=True)
    return torch.autograd.grad((x[_torch_index(index, shape)] * v).sum(), x,
                               create_graph=True)[0]


TORCH = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "matmul": torch.matmul, "addmm": torch.addmm,
    "addcmul": torch.addcmul, "where": torch.where, "neg": torch.neg, "exp": torch.exp,
    "log": torch.log, "sqrt": torch.sqrt, "abs": torch.abs, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "relu": torch.relu,
    "clip": lambda x, lo=None, hi=None: torch.clamp(x, lo, hi),
    "sum": _reduce(torch.sum), "mean": _reduce(torch.mean), "max": _reduce(_amax),
    "reshape": lambda x, shape: x.reshape(shape),
    "transpose": lambda x, axes=None: x.permute(axes or tuple(range(x.ndim))[::-1]),
    "getitem": lambda x, index: x[_torch_index(index, x.shape)],
    "split": lambda x, sizes, axis=0: torch.split(x, sizes, dim=axis),
    "unbind": lambda x, axis=0: torch.unbind(x, dim=axis),
    "embedding": _embedding, "class_pick": _class_pick,
    "cat": lambda *xs, axis=0: torch.cat(xs, dim=axis),
    "stack": lambda *xs, axis=0: torch.stack(xs, dim=axis),
    "broadcast_to": lambda x, shape: torch.broadcast_to(x, shape),
    "scatter_add": lambda v, index, shape: _scatter_add(v, index, shape),
    "astype": lambda x, dtype: x.to(getattr(torch, np.dtype(dtype).name)),
    "compare": lambda x, y, op: getattr(torch, {"equal": "eq", "not_equal": "ne", "less": "lt",
                                                "less_equal": "le", "greater": "gt",
                                                "greater_equal": "ge"}[op])(x, y),
    "lengths_mask": lambda lengths, steps, who: torch.arange(steps)[None, :] < lengths[:, None],
}


DRAWN = {name for name, op in OPS.items() if op.arity == 0}  # random: torch draws its own


def test_every_primitive_has_a_torch_counterpart():
    assert set(OPS) - DRAWN <= set(TORCH) and DRAWN == {"dropout_mask"}


@pytest.mark.parametrize("name", sorted(set(OPS) - DRAWN))
@given(data=st.data())
def test_primitive_matches_torch(name, data):
    case = data.draw(op_case(name))
    ours = apply(OPS[name], *case.tensors, **case.kwargs)
    theirs_in = [torch.tensor(t.data, requires_grad=t.requires_grad) for t in case.tensors]
    theirs = TORCH[name](*theirs_in, **case.kwargs)
    if isinstance(ours, list):  # a multi-output op: every piece, then one weighted sum
        for o, th in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(o.data, th.detach().numpy(), rtol=1e-12, atol=1e-12)
        ours, theirs = one_output(ours), sum((th * float(k)).sum()
                                             for k, th in enumerate(theirs, start=1))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    if not OPS[name].differentiable:  # a mask: no gradient on either side
        assert not ours.requires_grad and not theirs.requires_grad
        return
    seed = np.random.default_rng(1).standard_normal(ours.shape)
    ours.backward(seed)
    theirs.backward(torch.tensor(seed))
    for t, tt in zip(case.tensors, theirs_in):
        if t.requires_grad:
            np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-12)
