"""What fit, evaluate and predict accept: each check raises an error naming the function
(`who`) and the argument, before anything runs (docs/training.md, "Bad arguments")."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tinygrad_rnn.tensor import Tensor

Metric = Callable[[np.ndarray, np.ndarray], float]


def array(who: str, label: str, a: Any) -> np.ndarray:
    """`a` (array, list or Tensor) as a numeric ndarray; `label` names it in errors."""
    try:
        arr = np.asarray(a._data if isinstance(a, Tensor) else a)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{who}: {label} is not a rectangular array ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{who}: {label} must hold numbers (bool, int or float), got dtype "
                        f"{arr.dtype}")
    return arr


def cast(X: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    """Floating X in the model's dtype; integer X (token indices) as it is."""
    return X.astype(dtype) if dtype is not None and X.dtype.kind == "f" and X.dtype != dtype else X


def pair(who: str, name: str, data: Any, dtype: np.dtype | None) -> tuple[np.ndarray, ...]:
    """(X, y) as numeric arrays of equal length; floating X is cast to the model's dtype."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{who}: {name} must be a tuple (X, y) of arrays, got "
                        f"{type(data).__name__}")
    X, y = (array(who, f"{name} {part}", a) for part, a in zip("Xy", data))
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y) or len(X) == 0:
        raise ValueError(f"{who}: {name} X has {len(X) if X.ndim else 'no'} samples (shape "
                         f"{X.shape}) and y has {len(y) if y.ndim else 'no'} (shape {y.shape}); "
                         f"they need the same number, at least one")
    return cast(X, dtype), y


def count(who: str, name: str, value: Any, low: int) -> int:
    """An int (not a bool) >= low: TypeError for another type, ValueError below low."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an int >= {low}, got {type(value).__name__} "
                        f"{value!r}")
    if value < low:
        raise ValueError(f"{who}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def require_callable(who: str, name: str, value: Any, what: str) -> None:
    if not callable(value):
        raise TypeError(f"{who}: {name} must be {what}, got {type(value).__name__}")


def metrics_dict(who: str, metrics: Any) -> dict[str, Metric]:
    """name -> fn, with str names other than 'loss' and 'val_*', and callable values."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"{who}: metrics must be a dict name -> fn(prediction, target), got "
                        f"{type(metrics).__name__}")
    for key, fn in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"{who}: metric names must be str, got {key!r}")
        require_callable(who, f"metrics[{key!r}]", fn, "a function fn(prediction, target) -> float")
    if "loss" in metrics or any(key.startswith("val_") for key in metrics):
        raise ValueError(f"{who}: metric names can't be 'loss' or 'val_*', got {sorted(metrics)}")
    return dict(metrics)


def require_model(who: str, model: Any) -> None:
    if not (callable(model) and hasattr(model, "training")
            and all(callable(getattr(model, m, None)) for m in ("parameters", "train", "eval"))):
        raise TypeError(f"{who}: model must be a Module (callable, with parameters(), train(), "
                        f"eval() and .training), got {type(model).__name__}")


def checkpoint_path(checkpoint: Any) -> str | None:
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"fit: checkpoint must be a path (str or os.PathLike), got "
                        f"{type(checkpoint).__name__}")
    checkpoint = os.fspath(checkpoint)
    folder = os.path.dirname(os.path.abspath(checkpoint))
    if not os.path.isdir(folder):  # fail now, not after the first epoch's work
        raise FileNotFoundError(f"fit: the checkpoint folder {folder} does not exist "
                                f"(checkpoint={checkpoint!r}); create it first")
    if os.path.isdir(checkpoint):
        raise IsADirectoryError(f"fit: checkpoint={checkpoint!r} is a folder; give a file "
                                f"name such as {os.path.join(checkpoint, 'best.npz')!r}")
    return checkpoint


def generator(rng: Any) -> np.random.Generator:
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as err:
        raise type(err)(f"fit: rng must be None, an int >= 0 or a np.random.Generator, got "
                        f"{rng!r}") from None
