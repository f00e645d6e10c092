"""Small helpers shared by test modules (the hypothesis strategies are in strategies.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

import tinygrad_rnn as tg

T = TypeVar("T")


def built_in_float64(make: Callable[[], T]) -> T:
    """`make()` with float64 as the default dtype (a module built in float64 for gradchecks and
    torch parity), the previous default restored afterwards."""
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    try:
        return make()
    finally:
        tg.set_default_dtype(previous)
