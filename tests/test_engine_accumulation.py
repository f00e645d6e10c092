"""The engine's gradient accumulation paths: a node used as a matmul operand, densely and
through slices (IndexGrad), in every arrival order, checked against central differences in
float64."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, gradcheck
from tinygrad_rnn.gradients import OuterGrad


def _t(rng, *shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("order", ["mmd", "dmm", "imm", "mim"])
def test_shared_weight_mixes_outer_dense_and_index_grads(order):
    # the engine meets a node's consumers in reverse creation order, so `order` (m: matmul,
    # d: dense use, i: indexed use) decides which kind of gradient arrives first
    rng = np.random.default_rng(0)
    w, x1, x2 = _t(rng, 3, 4), _t(rng, 2, 3), _t(rng, 5, 3)

    def f(w, x1, x2):
        xs = iter([x1, x2])
        uses = {"m": lambda: ((next(xs) @ w).tanh()).sum(), "d": lambda: (w * w).sum(),
                "i": lambda: w[1:, ::2].sum()}
        total = None
        for kind in order:
            part = uses[kind]()
            total = part if total is None else total + part
        return total

    assert gradcheck(f, [w, x1, x2])


@pytest.mark.parametrize("block_rows, dense_at", [(OuterGrad.BLOCK_ROWS, None), (5, 4)])
def test_weight_used_at_many_steps_gets_the_summed_gradient(monkeypatch, block_rows, dense_at):
    # block 5, 2 rows per use: a GEMM every 3 uses, and a dense use of w between the matmuls
    monkeypatch.setattr(OuterGrad, "BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(1)
    w, h0 = _t(rng, 4, 4), _t(rng, 2, 4)

    def unrolled(w, h0):
        h = h0
        for k in range(8):
            h = (h @ w).tanh()
            if k == dense_at:
                h = h + (w * w).sum()
        return (h * h).sum()

    assert gradcheck(unrolled, [w, h0])


def test_shared_weight_grad_respects_its_dtype_and_retain_grad():
    rng = np.random.default_rng(2)
    w32 = Tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    x64 = Tensor(rng.standard_normal((4, 3)))  # float64 input, float32 weight: promotes
    mid = w32 * 1.0
    mid.retain_grad()
    loss = ((x64 @ mid).sum() + (x64[:2] @ mid).sum())
    loss.backward()
    expected = x64.data.sum(0)[:, None] + x64.data[:2].sum(0)[:, None]
    assert w32.grad.dtype == np.float32 and mid.grad.dtype == np.float32
    np.testing.assert_allclose(w32.grad, np.broadcast_to(expected, (3, 2)), rtol=1e-6)
    np.testing.assert_allclose(mid.grad, w32.grad)

