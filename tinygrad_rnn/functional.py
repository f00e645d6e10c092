"""Composites built from ops: softmax, log_softmax, losses, dropout, embedding.

Nothing here has a backward of its own; gradients come from the primitives.
Class dimension last: logits (..., C), targets (...).
"""

from __future__ import annotations

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
