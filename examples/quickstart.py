"""Quickstart: a Tensor expression, its backward, and a numeric gradient check."""

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor

rng = np.random.default_rng(0)
x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)   # (B, I)
w = Tensor(rng.standard_normal((3, 2)), requires_grad=True)   # (I, H)

loss = ((x @ w).tanh() ** 2).mean()                            # scalar
loss.backward()
print(f"loss = {loss.item():.4f}")
print("dloss/dw =\n", w.grad)

ok = tg.gradcheck(lambda a, b: ((a @ b).tanh() ** 2).mean(), [x, w])
print("gradcheck against central differences in float64:", "passed" if ok else "FAILED")
