"""save / load: state dicts as .npz files, written atomically."""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any

import numpy as np


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a Module's state_dict (or a dict name -> array) to `path` as .npz, atomically.

    The arrays go to a temporary file in the same folder, which is then renamed over `path`,
    so an interrupted save never leaves a half-written file behind.
    """
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, dict):
        raise TypeError(f"save: expected a Module or a dict of arrays, got {type(obj).__name__}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder} does not exist")
    arrays = {k: np.asarray(getattr(v, "data", v)) for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an .npz of named arrays into a state dict (name -> np.ndarray).

    A missing, truncated or non-npz file raises a clear error; nothing is half-loaded.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no file at {path}")
    try:
        npz = np.load(path, allow_pickle=False)
        if isinstance(npz, np.lib.npyio.NpzFile):
            with npz:
                return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"load: {path} is not a readable .npz state dict ({err})") from None
    raise ValueError(f"load: {path} holds a single .npy array, not an .npz of named arrays")
