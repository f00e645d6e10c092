"""The lengths_mask primitive: a padded batch's (B, T) mask of real steps from its lengths.

A primitive, not numpy in the layer, so that a replayed step (jit.py) builds the mask afresh
from the new lengths and checks them again: a length outside [1, T] raises at replay as it
does eagerly, instead of giving a silently wrong mask. No gradient (a constant, as compare).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_rnn.ops import Op, primitive


@primitive("lengths_mask", arity=1, nondiff=(0,))
class LengthsMask(Op):
    """lengths (B,) integers in [1, steps] -> (B, steps) bool, True at t < lengths[b].

    `who` names the public function in the errors (a layer's name)."""

    saves = ()
    differentiable = False

    def forward(self, lengths: np.ndarray, steps: Any = 1, who: Any = "lengths_mask"
                ) -> np.ndarray:
        if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
            raise TypeError(f"{who}: lengths must be a 1-D array of integers, got dtype "
                            f"{lengths.dtype} and shape {lengths.shape}")
        bad = lengths[(lengths < 1) | (lengths > steps)]
        if bad.size:
            raise ValueError(f"{who}: lengths must be in [1, T={steps}], got "
                             f"{sorted(set(bad.tolist()))}")
        return np.arange(steps)[None, :] < lengths[:, None]

    def backward(self, g: np.ndarray) -> tuple[Any, ...]:
        return (None,)  # a mask is piecewise constant: no gradient
