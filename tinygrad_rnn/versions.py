"""In-place change detection: an array saved for backward that changes before backward runs
makes backward raise (torch's "modified by an inplace operation"), never a wrong gradient.

Two kinds of change are seen:
- a write the library makes (an in-place operator, `t.data = ...`, an optimizer's update of a
  tensor it got through `.data`): `written` stamps the tensor with a sequence number, drawn from
  the same counter as the ops' creation order, so "changed after op N was recorded" is one
  comparison;
- a write into an array the library handed out (`.data`, `.numpy()`, `detach()`,
  `Tensor.from_numpy`): `expose` keeps a copy of the values, and they are compared with the
  array when a recorded op first takes the tensor after a backward (a change then happened
  before the forward: fine, stamped as a write) and when backward reaches it.

A tensor nobody touched carries no guard, so the engine's cost is one attribute read per edge.
The guard of a leaf sits on the Tensor; that of an op's output on its node (an Op or a Port).
"""

from __future__ import annotations

import itertools
from typing import Any, cast

import numpy as np

SEQUENCE = itertools.count(1)  # op creation order (see engine.toposort) and write stamps
_backwards = itertools.count(1)
_generation = [0]  # the number of backward sweeps so far


class Guard:
    """What is known of one node's array: the stamp of its last library write (0: none), and
    for an array handed out, the array and a copy of its values when last compared."""

    __slots__ = ("array", "copy", "gen", "leaf", "written")
    array: np.ndarray | None  # both None until the array is first handed out
    copy: np.ndarray | None

    def __init__(self, leaf: bool) -> None:
        self.written, self.array, self.copy, self.gen, self.leaf = 0, None, None, -1, leaf


def _holder(t: Any) -> Any:
    """The graph node that stands for tensor `t`: its Op or Port, or `t` itself (a leaf)."""
    return t._op or t


def _guard(node: Any) -> Guard:
    g = node._guard
    if g is None:
        g = node._guard = Guard(leaf=hasattr(node, "_data"))
    return g


def expose(t: Any) -> None:
    """`t`'s array is being handed out: watch it for writes from now on."""
    g = _guard(_holder(t))
    if g.array is not t._data:  # a first hand-out, or a new array assigned through .data
        g.array, g.copy, g.gen = t._data, t._data.copy(), -1


def written(t: Any) -> None:
    """The library wrote into `t` (or replaced its array): ops recorded before now are stale.
    An array handed out before a replacement is no longer the tensor's: it stops being watched."""
    g = _guard(_holder(t))
    g.written = next(SEQUENCE)
    if g.array is not None and g.array is not t._data:
        g.array = g.copy = None


def on_record(t: Any) -> None:
    """A recorded op takes leaf `t` (which has a guard): a change of a handed-out array since
    the last backward happened before this op, so it is stamped as a write now."""
    g = t._guard
    if g.copy is not None and g.gen != _generation[0]:
        _compare(g)
        g.gen = _generation[0]


def _compare(g: Guard) -> None:
    """Stamp a write (and refresh the copy) if the handed-out array no longer holds the copy's
    values."""
    a, c = cast(np.ndarray, g.array), cast(np.ndarray, g.copy)  # set: called for a copy only
    same = a.shape == c.shape and a.dtype == c.dtype and np.array_equal(
        a, c, equal_nan=a.dtype.kind == "f")
    if not same:
        g.written = next(SEQUENCE)
        g.copy = a.copy()


def check(parent: Any, child: Any, compared: set[Any]) -> None:
    """Raise if `parent` (a guarded node) changed after `child` recorded it and `child` saved
    it for backward; an op's own output that changed at all raises (conservatively). `child`
    is None for the root of the backward."""
    g = parent._guard
    if g.copy is not None and parent not in compared:
        compared.add(parent)
        _compare(g)
    if g.leaf:  # only what the child saved matters, as torch
        if child is None or g.written <= child._seq or not _saves(child, parent):
            return
        what = (f"a leaf tensor of shape {parent._data.shape} ({parent._data.dtype}), saved by "
                f"{child.name} for backward,")
    elif g.written:  # an op's output: its op or a consumer may have saved it
        shape = parent._shape if parent._shape is not None else parent.shape
        what = f"the output of {parent.name} (shape {shape}),"
    else:
        return
    raise RuntimeError(
        f"backward: {what} was changed in place after the forward (a write through .data or "
        f"into a shared numpy array, an optimizer step, or an in-place operator). Run the "
        f"forward again after changing it.")


def _saves(child: Any, parent: Any) -> bool:
    saves = child.saves
    return saves is None or any(q is parent and i in saves
                                for i, q in enumerate(child._parents))


def backward_done() -> None:
    """A backward sweep ended: handed-out arrays are compared again at their next record."""
    _generation[0] = next(_backwards)
