"""Composites built from ops: softmax, log_softmax, losses, dropout, embedding.

Nothing here has a backward of its own; gradients come from the primitives.
Class dimension last: logits (..., C), targets (...).
"""

from __future__ import annotations

import numpy as np

from tinygrad_rnn.tensor import Tensor


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) by log-sum-exp: the max is subtracted first, so large logits stay finite.

    Shape: any; the result has x's shape.
    """
    shifted = x - x.data.max(axis=axis, keepdims=True)  # a constant shift: no gradient needed
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed from the max-shifted logits. Shape: as x."""
    e = (x - x.data.max(axis=axis, keepdims=True)).exp()
    return e / e.sum(axis=axis, keepdims=True)


def dropout(x: Tensor, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout as torch: zero each element with probability p, scale the rest by 1/(1-p).

    Args:
        x: Tensor of any shape; the result has x's shape.
        p: drop probability in [0, 1]; p=1 gives zeros. Outside [0, 1] is a ValueError.
        training: False (or p=0) returns x itself.
        rng: numpy Generator for the mask (seed it for reproducible runs); None: a fresh one.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * np.zeros(x.shape, x.dtype)
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    return x * (keep / (1.0 - p)).astype(x.dtype)  # the mask is a constant: no gradient
