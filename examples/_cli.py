"""What the examples share on the command line: flag types, one-line errors, divergence.

- `Parser` is argparse whose errors are ONE line on stderr, `<script>: error: <message>`, with
  exit status 2, before anything runs; the flag types below name what they expected, so a bad
  value reads `argument --hidden: expected an integer >= 1, got '0'`.
- `Diverged` is raised by `check_loss` when a training loss is NaN or inf; `main` reports it as
  one line, `<script>: error: training diverged: ...`, and exits with status 1.

Not an example itself: each example puts this folder on sys.path and imports it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

SEED_MAX = 2**32 - 1  # np.random.seed takes 0 .. 2**32 - 1


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line on stderr with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class Diverged(Exception):
    """Training turned non-finite; the message names the step."""


def check_loss(value: float, where: str) -> float:
    """`value` if finite, else Diverged naming `where` (say "step 12" or "epoch 3, batch 5")."""
    if not math.isfinite(value):
        raise Diverged(f"the loss is {value} at {where}")
    return value


def fail(message: str, status: int = 1) -> int:
    """Print `<script>: error: <message>` as one line on stderr; returns `status` for exit."""
    print(f"{Path(sys.argv[0]).name}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """A flag type: an integer in [low, high] (no upper bound when high is None)."""
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = "integer"
    return parse


def number(low: float | None = None, high: float | None = None, *, above: bool = False,
           below: bool = False, allow_inf: bool = False) -> Callable[[str], float]:
    """A flag type: a float, never NaN; inf only if `allow_inf`; >= low (> low if `above`) and
    <= high (< high if `below`) when given."""
    parts = [f"{'>' if above else '>='} {low:g}" if low is not None else "",
             f"{'<' if below else '<='} {high:g}" if high is not None else ""]
    expected = "a number " + " and ".join(p for p in parts if p) if any(parts) else "a number"
    expected += " (inf allowed)" if allow_inf else " (finite)"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        bad = (math.isnan(value) or (math.isinf(value) and not allow_inf)
               or (low is not None and (value <= low if above else value < low))
               or (high is not None and (value >= high if below else value > high)))
        if bad:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


seed = integer(0, SEED_MAX)


def _writable_ancestor(path: Path) -> str | None:
    """Why files can't be made at `path` (an ancestor is a file, or not writable), or None."""
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so no folder can be made under it"
    if not os.access(parent, os.W_OK):
        return f"the folder {parent} is not writable"
    return None


def output_file(text: str) -> str:
    """A flag type: a file path to write (a missing folder is made later, by the example)."""
    path = Path(text)
    if not text or path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file name, got the folder {text!r}")
    problem = _writable_ancestor(path)
    if problem:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {problem}")
    return text


def output_folder(text: str) -> Path:
    """A flag type: a folder to write files in (made later if missing, with its parents)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder, got the file {text!r}")
    problem = None if path.is_dir() else _writable_ancestor(path)
    if path.is_dir() and not os.access(path, os.W_OK):
        problem = f"the folder {path} is not writable"
    if problem:
        raise argparse.ArgumentTypeError(f"cannot write in {text!r}: {problem}")
    return path


def input_file(text: str) -> str:
    """A flag type: an existing file to read."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file, got the folder {text!r}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def make_parent(path: str | Path) -> None:
    """Create the folder of `path` (and its parents) if missing."""
    Path(path).resolve().parent.mkdir(parents=True, exist_ok=True)
