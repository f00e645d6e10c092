"""What the engine routes besides plain gradient arrays: cheap-to-sum gradient forms that
primitives return, and the Port that stands for one output of a multi-output primitive.

- IndexGrad: a slice's gradient, added into a zero buffer of the input's shape.
- OuterGrad: a matmul's right-operand gradient a.T @ g, summed over uses in blocked GEMMs.
- Port: output `index` of a multi-output op (split, unbind) in its consumers' `_parents`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np


class IndexGrad:
    """A gradient that is `values` at `index` and zero elsewhere; the engine adds it into a
    zero buffer of the input's shape, so slicing a step out of a sequence costs O(step)."""

    __slots__ = ("basic", "index", "values")

    def __init__(self, index: Any, values: np.ndarray, basic: bool):
        self.index, self.values, self.basic = index, values, basic

    def add_into(self, buf: np.ndarray) -> None:
        if self.basic:  # basic indexing never repeats an element
            view = buf[self.index]
            if type(view) is np.ndarray:  # a view: add in place, no write-back by __setitem__
                view += self.values
            else:  # every axis indexed by an int: a scalar copy
                buf[self.index] += self.values
        else:
            np.add.at(buf, self.index, self.values)  # repeated indices must accumulate


class OuterGrad:
    """The gradient a.T @ g of a matmul's right operand, kept as its two factors.

    A weight shared by T matmuls (a recurrent weight, one use per step) would cost T thin
    GEMMs (K, B) @ (B, N) and T additions into a (K, N) buffer. The engine merges the factors
    of every use instead and sums them with one GEMM per `BLOCK_ROWS` stacked rows, as a
    hand-written BPTT does after its loop; the block bound keeps the held factors small.
    """

    __slots__ = ("a", "dense", "g", "rows")
    BLOCK_ROWS = 512

    def __init__(self, a: np.ndarray, g: np.ndarray):
        self.a, self.g, self.rows = [a], [g], a.shape[0]
        self.dense: np.ndarray | None = None

    def merge(self, other: OuterGrad) -> OuterGrad:
        """Add `other`'s uses to these; returns self."""
        self.a += other.a
        self.g += other.g
        self.rows += other.rows
        if other.dense is not None:
            self._add(other.dense)
        if self.rows >= self.BLOCK_ROWS:
            self._flush()
        return self

    def value(self) -> np.ndarray:
        """The summed gradient, a fresh array."""
        self._flush()
        return cast(np.ndarray, self.dense)  # set: an OuterGrad holds at least one use

    def _flush(self) -> None:
        if self.a:
            a, g = (self.a[0], self.g[0]) if len(self.a) == 1 else (
                np.concatenate(self.a), np.concatenate(self.g))
            self.a, self.g, self.rows = [], [], 0
            self._add(a.T @ g)

    def _add(self, d: np.ndarray) -> None:
        if self.dense is None:
            self.dense = d if d.base is None else d.copy()  # own it: it gets added into
        else:
            self.dense += d


class Port:
    """Output `index` of a multi-output Op (split, unbind), in its consumers' `_parents`. The
    engine adds the gradients that arrive here into slot `index` of the op's pending list and
    visits the op once, with every slot filled."""

    __slots__ = ("_guard", "_retained", "dtype", "index", "node", "shape")
    requires_grad = True
    _shape = None  # no gradient matches it: the engine always routes a Port's gradient

    def __init__(self, node: Any, index: int, shape: tuple[int, ...], dtype: np.dtype):
        self.node, self.index, self.shape, self.dtype = node, index, shape, dtype
        self._retained = self._guard = None  # _guard: see versions.py

    name = property(lambda self: self.node.name)
