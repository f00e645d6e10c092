"""The two ambient settings, each a contextvar behind a context manager: grad mode (`no_grad`)
and graph scope (`graph_scope`, the time-step labels that viz and diagnostics read); and the
default float dtype that Python numbers and lists become. Nothing else is global.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

_GRAD_ENABLED = contextvars.ContextVar("grad_enabled", default=True)
_SCOPE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("scope", default=())
_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype: Any) -> None:
    """Set the float dtype that Python numbers and lists become (numpy dtype or its name)."""
    global _default_dtype
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"set_default_dtype: {dtype!r} is not a numpy dtype") from None
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dt}")
    _default_dtype = dt


def get_default_dtype() -> np.dtype:
    """The float dtype that Python numbers and lists become (float32 unless set)."""
    return _default_dtype


def is_grad_enabled() -> bool:
    return _GRAD_ENABLED.get()


def set_grad_enabled(mode: bool) -> contextlib.AbstractContextManager[None]:
    """Record ops for backward inside (True) or not (False), as torch.set_grad_enabled; the
    previous mode comes back on exit."""
    if not isinstance(mode, (bool, np.bool_)):
        raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
    return _grad_mode(bool(mode))


@contextlib.contextmanager
def _grad_mode(mode: bool) -> Iterator[None]:
    token = _GRAD_ENABLED.set(mode)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Nothing computed inside is recorded for backward."""
    return _grad_mode(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Record inside even under no_grad(), as torch.enable_grad (the functional transforms
    build the graph they differentiate)."""
    return _grad_mode(True)


class graph_scope(contextlib.ContextDecorator):  # lower case: used like a function, as no_grad
    """Stamp every op created inside with `label` (nested scopes stack: layer, direction, step).

    A class rather than a generator: an unroll enters one per time step.
    """

    def __init__(self, label: str):
        self.label = label

    def __enter__(self) -> None:
        self._token = _SCOPE.set(_SCOPE.get() + (self.label,))

    def __exit__(self, *exc: object) -> None:
        _SCOPE.reset(self._token)


def current_scope() -> tuple[str, ...]:
    return _SCOPE.get()
