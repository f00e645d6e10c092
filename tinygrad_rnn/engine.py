"""The backward engine: topological order, gradient routing and accumulation, freeing.

The graph is made of op nodes (see ops.Op) and leaf Tensors. A sweep visits each node once in
reverse creation order, hands it its summed gradient, routes what its backward returns to its
inputs (summing broadcasts back, adding slices and matmul factors cheaply), and frees the
node's saved arrays unless asked to keep the graph.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_rnn import versions
from tinygrad_rnn.bridge import unbroadcast  # one rule for both worlds; engine.unbroadcast too
from tinygrad_rnn.gradients import IndexGrad, OuterGrad, Port
from tinygrad_rnn.ops import Op


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, then restore it as it was.

    The graph is acyclic (a node refers to its inputs, never back), so the collector has
    nothing to find in it; yet a long unroll makes tens of thousands of tracked objects, which
    triggers full collections that walk every object in the process (about 10% of a long LSTM
    step). Unrolls and backward run inside this; plain reference counting still frees all.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def toposort(root: Any) -> list[Any]:
    """Graph nodes that need grad under `root` (Ops, and leaf Tensors), inputs before outputs,
    without recursion. Raises if an array an op saved was changed in place since (versions.py).

    An op's output is created after its inputs, so creation order (`_seq`) is a topological
    order: collect what `root` reaches, then sort (as PyTorch's sequence numbers do).
    """
    return toposort_many([root])


def toposort_many(roots: list[Any], stop_below: int = 0) -> list[Any]:
    """toposort under several roots; nodes created before `stop_below` (a sequence number)
    are included but not walked through (a checkpoint's recomputation ends at its inputs)."""
    compared: set[Any] = set()
    order: list[Any] = []
    seen: set[Any] = set()  # nodes hash by identity
    for root in roots:
        top = root._op or root
        if top._guard is not None:
            versions.check(top, None, compared)
        root = node_of(root)
        if root not in seen:
            seen.add(root)
            order.append(root)
    todo = [n for n in order if n._seq >= stop_below]
    while todo:
        node = todo.pop()
        for p in node._parents:
            g = p._guard
            if g is not None and (g.copy is not None or g.written > node._seq or not g.leaf):
                # handed out, written since `node` was recorded, or an op's output: a look.
                # A leaf's older write (an optimizer step before this forward) costs nothing.
                versions.check(p, node, compared)
            if type(p) is Port:
                p = p.node
            if p.requires_grad and p not in seen:
                seen.add(p)
                order.append(p)
                if not stop_below or p._seq >= stop_below:  # 0: a plain backward, walk all
                    todo.append(p)
    order.sort(key=_seq_of)
    return order


_seq_of = operator.attrgetter("_seq")


def node_of(t: Any) -> Any:
    """The graph node standing for `t`: its Op (a multi-output op for a Port), or the tensor
    itself when it is a leaf."""
    node = t._op or t
    return node.node if type(node) is Port else node


def run_backward(root: Any, seed: np.ndarray, retain_graph: bool) -> None:
    """Reverse-mode sweep from `root`: each node visited once, its grad freed once used."""
    port = root._op
    seeds: np.ndarray | list[np.ndarray | None] = seed
    if type(port) is Port:  # one output of a multi-output op: the op, with one slot seeded
        if port.node._freed:
            raise RuntimeError(_FREED)
        seeds = [seed if i == port.index else None for i in range(port.node.n_out)]
    with collector_paused():
        try:
            _sweep(root, seeds, retain_graph)
        finally:
            versions.backward_done()


_FREED = ("backward: trying to backward through a graph a second time; its saved arrays were "
          "freed. Pass retain_graph=True the first time.")


def _sweep(root_tensor: Any, seed: np.ndarray | list[np.ndarray | None],
           retain_graph: bool) -> None:
    order = toposort(root_tensor)  # first: it checks for in-place changes before any work
    root = node_of(root_tensor)
    grads: dict[Any, Any] = {root: seed}  # keyed by node (identity hash)
    owned: set[Any] = set()  # grads the engine allocated itself, safe to add into in place
    n_leaves = bisect.bisect_right(order, 0, key=_seq_of)  # leaves sort first (_seq 0)
    for node in reversed(order[n_leaves:]):
        g = grads.pop(node, None)
        if type(g) is OuterGrad:  # every use has contributed: sum the rest now
            g = _summed(g, node._dtype)
        if node._freed:
            raise RuntimeError(_FREED)
        if g is None:
            continue
        if node._retained is not None:  # a copy: node.backward may pass g on to a parent
            out = node._retained()
            if out is not None:
                out.grad = _accumulate_leaf(out.grad, g, False)
        for parent, pg in zip(node._parents, node.backward(g)):
            if pg is None or not parent.requires_grad:
                continue
            key = parent
            pending = grads.get(key)
            if type(pg) is not np.ndarray or pg.shape != parent._shape or (
                    pg.dtype is not parent._dtype and pg.dtype != parent._dtype):
                _accumulate(grads, owned, parent, pg, node)  # index, broadcast, dtype fix-ups
            elif pending is None:
                grads[key] = pg  # the common case: a first gradient of the right shape
            elif key in owned:
                pending += pg
            else:
                grads[key] = _summed(pending, parent._dtype) + pg
                owned.add(key)
        if not retain_graph:  # drop the saved arrays and the edges; the node stays, marked
            node.__dict__.clear()
            node._parents, node._freed = (), True
    for leaf in order[:n_leaves]:  # a leaf's gradient is the result
        g = grads.pop(leaf, None)
        if type(g) is OuterGrad:
            g = _summed(g, leaf._dtype)
            owned.add(leaf)
        if g is not None:
            leaf.grad = _accumulate_leaf(leaf.grad, g, leaf in owned)


def _summed(g: Any, dtype: np.dtype) -> np.ndarray:
    """An OuterGrad summed into a fresh array of `dtype`; any other gradient as it is (for
    every other form, see _densify)."""
    return g.value().astype(dtype, copy=False) if type(g) is OuterGrad else g


def _accumulate_leaf(old: np.ndarray | None, g: np.ndarray, owned: bool) -> np.ndarray:
    if old is None:
        return g if owned else g.copy()
    old += g
    return old


def _accumulate(grads: dict, owned: set, parent: Any, pg: Any, op: Op) -> None:
    if type(parent) is Port:
        _accumulate_port(grads, parent, pg, op)
        return
    key, shape, dtype = parent, parent._shape, parent._dtype
    pending = grads.get(key)
    if type(pg) is OuterGrad:
        if pending is None or type(pending) is OuterGrad:
            grads[key] = pg if pending is None else pending.merge(pg)
            return
        pg = pg.value()  # a dense gradient is pending already: add densely below
    elif type(pending) is OuterGrad:
        grads[key] = _summed(pending, dtype)  # fresh, so the engine may add into it
        owned.add(key)
    if isinstance(pg, IndexGrad):
        buf = grads.get(key)
        if buf is None or key not in owned:
            buf = np.zeros(shape, dtype) if buf is None else buf.copy()
            grads[key] = buf
            owned.add(key)
        pg.add_into(buf)
        return
    pg = _densify(pg, shape, dtype, op)  # broadcast or dtype fix-ups
    if key not in grads:
        grads[key] = pg
    elif key in owned:
        grads[key] += pg
    else:
        grads[key] = grads[key] + pg
        owned.add(key)


def _accumulate_port(grads: dict, port: Port, pg: Any, op: Op) -> None:
    """Add `pg` (for output `port.index` of a multi-output node) into that node's slot."""
    if type(pg) is not np.ndarray or pg.shape != port.shape or pg.dtype != port.dtype:
        pg = _densify(pg, port.shape, port.dtype, op)
    slots = grads.get(port.node)
    if slots is None:
        if port.node._freed:  # an earlier backward freed it (and its `n_out`)
            raise RuntimeError(_FREED)
        slots = grads[port.node] = [None] * port.node.n_out
    old = slots[port.index]
    slots[port.index] = pg if old is None else old + pg
    out = port._retained() if port._retained is not None else None
    if out is not None:  # a retained output sums what arrives: its full gradient at the end
        out.grad = _accumulate_leaf(out.grad, pg, False)


def _densify(pg: Any, shape: tuple[int, ...], dtype: np.dtype, op: Op) -> np.ndarray:
    """Any form of gradient (OuterGrad, IndexGrad, broadcast, another dtype) as an array of
    `shape` and `dtype`; `op` made it (named in the error for a wrong shape)."""
    if type(pg) is OuterGrad:
        pg = pg.value()
    elif isinstance(pg, IndexGrad):
        buf = np.zeros(shape, dtype)
        pg.add_into(buf)
        return buf
    if pg.shape != shape:
        pg = unbroadcast(pg, shape)
        if pg.shape != shape:
            raise RuntimeError(f"{op.name}: backward gave a gradient of shape {pg.shape} for an "
                               f"input of shape {shape}")
    return pg if pg.dtype == dtype else pg.astype(dtype)
