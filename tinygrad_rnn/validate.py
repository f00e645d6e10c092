"""Argument checks shared by the layers, cells, stacks and optimizers.

Each check names the caller (`who`) and the argument, says what was expected and what came,
and returns the value in its plain Python form. Types follow Python's rules: a wrong type
is a TypeError, a wrong value a ValueError. A bool is never taken for a number here (torch
takes `hidden_size=True` as 1, which is never what was meant).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from tinygrad_rnn import ops
from tinygrad_rnn.tensor import Tensor, _wrap, apply


def _kind(value: Any) -> str:
    return type(value).__name__


def check_int(who: str, name: str, value: Any) -> int:
    """An int (Python or numpy; not a bool, not 2.0) of any sign: an axis, an ignore_index."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: {name} must be an integer, got {_kind(value)} {value!r}")
    return int(value)


def check_size(who: str, name: str, value: Any, minimum: int = 0,
               maximum: int | None = None) -> int:
    """check_int, in [minimum, maximum]: a layer size, a count, an index, a seed."""
    value = check_int(who, name, value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{who}: {name} must be {bound}, got {value}")
    return int(value)


def check_bool(who: str, name: str, value: Any) -> bool:
    """A flag: True or False (numpy's bool too), never a number or a string."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be a bool, got {_kind(value)} {value!r}")
    return bool(value)


def as_real(who: str, name: str, value: Any) -> float:
    """A real number as a float: Python or numpy scalars, 0-d arrays or Tensors; not bool, NaN."""
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)) \
            or isinstance(value, np.complexfloating):
        raise TypeError(f"{who}: {name} must be a real number, got {_kind(value)} {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{who}: {name} must be a number, got nan")
    return value


def check_real(who: str, name: str, value: Any, low: float = 0.0, high: float = math.inf, *,
               high_open: bool = False, finite: bool = True) -> float:
    """A real in [low, high] ([low, high) when high_open), returned as a float; finite unless
    `finite=False` (then +inf passes when high is inf, as a clip's "no limit")."""
    value = as_real(who, name, value)
    above = value >= high if high_open else value > high
    if value < low or above or (finite and math.isinf(value)):
        span = (f">= {low:g}" + (" and finite" if finite else "") if math.isinf(high) else
                f"in [{low:g}, {high:g}{')' if high_open else ']'}")
        raise ValueError(f"{who}: {name} must be {span}, got {value:g}")
    return value


def as_array(who: str, name: str, value: Any) -> np.ndarray:
    """The array behind a Tensor, ndarray, number or (regular) nested list; real numbers or
    booleans only: strings and objects are a TypeError, ragged nesting a ValueError."""
    if isinstance(value, Tensor):
        arr = value._data
    else:
        try:
            arr = np.asarray(value)
        except ValueError:
            raise ValueError(f"{who}: {name} is ragged (nested sequences of unequal lengths), "
                             f"so it is not an array") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{who}: {name} must hold real numbers, got {type(value).__name__} of "
                        f"dtype {arr.dtype}")
    return arr


def float_input(who: str, name: str, value: Any) -> Tensor:
    """A floating Tensor from a Tensor, ndarray or nested list (lists take the default dtype);
    an integer or boolean input is a TypeError, as torch's dtype mismatch."""
    arr = as_array(who, name, value)
    if arr.dtype.kind != "f" and not (isinstance(value, (list, tuple, int, float))
                                      and arr.dtype.kind in "iu"):
        raise TypeError(f"{who}: {name} must be a floating tensor, got dtype {arr.dtype} (cast "
                        f"it, or map integer indices through an Embedding first)")
    if isinstance(value, Tensor):
        return value
    return own_copy(arr) if arr is value and arr.dtype.kind == "f" else Tensor(value)


def own_copy(arr: np.ndarray) -> Tensor:
    """A copy of a caller's floating array, as Tensor(arr) makes, but made by a primitive
    (astype to its own dtype): a recorded step (jit.py) binds the caller's array itself and
    copies the new one at each replay, and the caller's later writes never reach a gradient."""
    return apply(ops.AsType, _wrap(arr), dtype=arr.dtype)


def check_rng(who: str, rng: Any) -> Any:
    """None (numpy's global generator) or a numpy Generator / RandomState, as given."""
    if rng is not None and not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise TypeError(f"{who}: rng must be a numpy Generator (np.random.default_rng(seed)) or "
                        f"None, got {_kind(rng)}")
    return rng


def check_state_parts(who: str, what: str, state: Any, batch: int, layout: tuple,
                      state_names: tuple[str, ...]) -> Any:
    """Check a recurrent state against `layout` = (is a tuple, part shapes or None, hint)
    (Cell.state_layout); returns it as Tensors: a tuple of them, or one.

    Parts are named by `state_names` when their count matches, else `[0]`, `[1]`, ...
    Without known shapes, a tuple is a tuple and each part must lead with the batch.
    """
    is_tuple, shapes, hint = layout
    if shapes is None:
        is_tuple = isinstance(state, tuple)
    n = (len(state) if is_tuple else 1) if shapes is None else len(shapes)
    names = state_names if len(state_names) == n else tuple(f"[{i}]" for i in range(n))
    if is_tuple:
        listed = ", ".join(names)
        if not isinstance(state, (tuple, list)):
            raise TypeError(f"{who}: {what} must be a tuple ({listed}) of {n} tensors, got "
                            f"{_kind(state)}")
        if len(state) != n:
            raise ValueError(f"{who}: {what} must be a tuple ({listed}) of {n} tensors, got "
                             f"{len(state)}")
    elif isinstance(state, tuple):
        raise TypeError(f"{who}: {what} must be one Tensor ({names[0]}), got a tuple of "
                        f"{len(state)}")
    parts = []
    for i, part in enumerate(state if is_tuple else (state,)):
        label = f"{what} {names[i]}"
        if part is None:
            raise TypeError(f"{who}: {label} is None, expected a Tensor")
        part = float_input(who, label, part)
        if shapes is not None and part.shape != shapes[i]:
            raise ValueError(f"{who}: {label} has shape {part.shape}, expected {shapes[i]} "
                             f"({hint})")
        if shapes is None and (part.ndim < 1 or part.shape[0] != batch):
            raise ValueError(f"{who}: {label} has shape {part.shape}, expected a batch of "
                             f"{batch} first")
        parts.append(part)
    return tuple(parts) if is_tuple else parts[0]
