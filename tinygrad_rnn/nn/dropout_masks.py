"""Variational (Keras) dropout for the built-in cells: one mask per sequence, held fixed.

`dropout` masks a cell's input and `recurrent_dropout` masks its recurrent state h where it
enters the hidden matmul (Gal and Ghahramani 2016, Keras' cell semantics). Each is one (B, n)
mask of 0s and 1/(1-p)s (inverted dropout), drawn when a sequence starts and used at every
step and by every gate; the carried state itself is never masked. Training mode only. Masks
come from the cell's `rng` (a numpy Generator), else from numpy's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from tinygrad_rnn import ops
from tinygrad_rnn.tensor import Tensor, apply
from tinygrad_rnn.validate import check_real, check_rng


def _rate(name: str) -> property:
    """A drop probability in [0, 1) as a validated attribute: a bad value is refused before
    anything changes (Keras clips it silently; torch's dropout says "between 0 and 1")."""
    slot = "_" + name

    def get(self: Any) -> float:
        return self.__dict__.get(slot, 0.0)

    def set_(self: Any, p: Any) -> None:
        p = check_real(type(self).__name__, name, p, 0.0, 1.0, high_open=True)
        object.__setattr__(self, slot, p)
        self.reset_dropout_mask()

    return property(get, set_, doc=f"{name}: drop probability in [0, 1) (0: off).")


class DropoutMasks:
    """Mixin of the built-in cells: the masks, drawn by `begin_sequence`, read by
    `project_inputs` (the input mask, once for the whole sequence) and `step` (the recurrent
    mask). A cell with both rates at 0 never draws anything: its steps are unchanged."""

    dropout = _rate("dropout")
    recurrent_dropout = _rate("recurrent_dropout")
    _input_mask: Tensor | None = None  # (B, input_size), a dropout_mask primitive's output
    _recurrent_mask: Tensor | None = None  # (B, width of h), likewise
    _time_axis = 1  # where the input mask broadcasts over time in a whole-sequence input
    hidden_size: int  # what the mixin reads of its cell (annotations only, for the types)
    training: bool
    param_dtype: Callable[[], np.dtype]

    @property
    def rng(self) -> Any:
        """The numpy Generator masks are drawn from; None: numpy's global RNG."""
        return self.__dict__.get("_rng")

    @rng.setter
    def rng(self, value: Any) -> None:
        object.__setattr__(self, "_rng", check_rng(type(self).__name__, value))

    @property
    def dropout_mask(self) -> np.ndarray | None:
        """A copy of the current input mask (B, input_size), or None when none is in use."""
        return None if self._input_mask is None else self._input_mask._data.copy()

    @property
    def recurrent_dropout_mask(self) -> np.ndarray | None:
        """A copy of the current recurrent mask (B, h width), or None when none is in use."""
        return None if self._recurrent_mask is None else self._recurrent_mask._data.copy()

    def reset_dropout_mask(self) -> None:
        """Forget both masks; the next sequence or direct call draws new ones. (Keras' method
        of this name forgets the input mask only; ours forgets the recurrent one too.)"""
        object.__setattr__(self, "_input_mask", None)
        object.__setattr__(self, "_recurrent_mask", None)

    def reset_recurrent_dropout_mask(self) -> None:
        """Forget the recurrent mask only (Keras); the input mask is kept."""
        object.__setattr__(self, "_recurrent_mask", None)

    def recurrent_width(self) -> int:
        """The width of h, the state part the recurrent mask covers."""
        return self.hidden_size

    def begin_sequence(self, x: Tensor, time_axis: int) -> None:
        """Draw this sequence's masks (training mode, a rate > 0), or drop stale ones.

        Shape: x (B, T, I) with time_axis=1, (T, B, I) with time_axis=0, or one step (B, I).
        """
        if not (self.dropout or self.recurrent_dropout):
            return
        self.reset_dropout_mask()
        if not self.training:
            return
        batch = x.shape[0] if x.ndim == 2 else x.shape[1 - time_axis]
        draw = self.rng
        object.__setattr__(self, "_time_axis", time_axis)
        if self.dropout:
            object.__setattr__(self, "_input_mask", _mask(
                draw, (batch, x.shape[-1]), self.dropout, x.dtype))
        if self.recurrent_dropout:
            object.__setattr__(self, "_recurrent_mask", _mask(
                draw, (batch, self.recurrent_width()), self.recurrent_dropout,
                self.param_dtype()))

    def _step_masks(self, x_t: Tensor) -> None:
        """Before a direct step (B, I): keep each mask that fits this batch (Keras reuses them
        until reset), draw the one that is missing or stale, drop both in eval mode."""
        if not self.training:
            self.reset_dropout_mask()
            return
        batch, draw = x_t.shape[0], self.rng
        wanted = (("_input_mask", self.dropout, x_t.shape[-1], x_t.dtype),
                  ("_recurrent_mask", self.recurrent_dropout, self.recurrent_width(),
                   self.param_dtype()))
        for slot, rate, width, dtype in wanted:
            mask = getattr(self, slot)
            if rate and (mask is None or mask.shape != (batch, width) or mask.dtype != dtype):
                object.__setattr__(self, slot, _mask(draw, (batch, width), rate, dtype))
        object.__setattr__(self, "_time_axis", 1)

    def _mask_inputs(self, x: Tensor) -> Tensor:
        """x times the input mask, broadcast over the time axis of a whole sequence."""
        m = cast(Tensor, self._input_mask)  # set: called when an input mask is in use
        if x.ndim == 3:
            if x.shape[1 - self._time_axis] != m.shape[0]:
                raise ValueError(f"{type(self).__name__}: the dropout mask was drawn for a "
                                 f"batch of {m.shape[0]}, got input of shape {x.shape}; call "
                                 f"begin_sequence(x, time_axis) first")
            m = m.reshape((1,) + m.shape if self._time_axis == 0 else (m.shape[0], 1, m.shape[1]))
        return x * m


def _mask(rng: Any, shape: tuple[int, int], p: float, dtype: np.dtype) -> Tensor:
    """Inverted dropout: 0 with probability p, else 1/(1-p) (as functional.dropout), drawn
    from `rng` (None: numpy's global RNG) by the dropout_mask primitive, so that a replayed
    step (jit.py) draws it afresh."""
    return apply(ops.DropoutMask, shape=shape, p=p, dtype=dtype, rng=rng)
