"""The sweep behind autograd.grad: gradients of some outputs with respect to some graph nodes,
returned instead of accumulated into `.grad`, as arrays or, with `create_graph`, as recorded
Tensors that can be differentiated again.

A recorded sweep runs each primitive's own backward (ops.py) on Tensors: the incoming
gradient is a Tensor, and the attributes an op lists in `saved_tensors` are swapped for Tensors
wired to the graph for the call (a saved input is its parent's output, a saved output the op's
own), so the ops the backward applies are recorded, with the scope `("grad",) + forward scope`.
`Tensor.backward` keeps its own numpy-only sweep (engine.py), so a training step pays nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_rnn import bridge, engine, ops, versions
from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.gradients import IndexGrad, OuterGrad, Port
from tinygrad_rnn.settings import _GRAD_ENABLED, _SCOPE


def sweep(roots: list[Any], seeds: list[Any], targets: list[Any], retain_graph: bool,
          create_graph: bool, stop_below: int = 0) -> list[Any]:
    """Gradients of sum(root * seed) with respect to each target node (a leaf Tensor, an Op
    or a Port), None where none arrives. Seeds and results are arrays, or Tensors when
    `create_graph`. Nodes created before `stop_below` are ends: nothing flows through them."""
    if _tensor._TRACE is not None:
        _tensor._TRACE.unreplayable("autograd.grad, create_graph or checkpoint (a backward "
                                   "recorded or swept outside Tensor.backward)")
    order = engine.toposort_many(roots, stop_below)
    wanted = {t.node if type(t) is Port else t for t in targets}
    useful = _reaching(order, wanted)
    grads: dict[Any, Any] = {}
    owned: set[Any] = set()  # numpy gradients the sweep allocated: safe to add into in place
    for root, seed in zip(roots, seeds):
        node = root._op or root
        _add(grads, node, seed)
    found: dict[Any, Any] = {}
    token = _GRAD_ENABLED.set(create_graph)
    try:
        with engine.collector_paused():
            for node in reversed(order):
                g = grads.pop(node, None)
                if type(g) is OuterGrad:  # every use has contributed: sum them now
                    g = engine._summed(g, node._dtype)
                if node in wanted:
                    found[node] = g
                if g is None or node._op is not node or node._seq < stop_below:
                    continue  # a leaf, an end, or nothing arrived
                if node._freed:
                    raise RuntimeError(engine._FREED)
                if node in useful:
                    _visit(node, g, grads, owned, useful, create_graph)
                if not retain_graph:
                    node.__dict__.clear()
                    node._parents, node._freed = (), True
    finally:
        _GRAD_ENABLED.reset(token)
        versions.backward_done()
    return [_slot(found, t) for t in targets]


def _reaching(order: list[Any], wanted: set[Any]) -> set[Any]:
    """The nodes from which a gradient can reach a wanted node (order: inputs first)."""
    useful = set(wanted)
    for node in order:
        for p in node._parents:
            if (p.node if type(p) is Port else p) in useful:
                useful.add(node)
                break
    return useful


def _slot(found: dict[Any, Any], target: Any) -> Any:
    if type(target) is Port:
        slots = found.get(target.node)
        return None if slots is None else slots[target.index]
    return found.get(target)


def _add(grads: dict[Any, Any], key: Any, g: Any) -> None:
    """Add gradient `g` for node `key` (into a slot for one output of a multi-output op)."""
    if type(key) is Port:
        slots = grads.get(key.node)
        if slots is None:
            if key.node._freed:  # an earlier backward freed it (and its `n_out`)
                raise RuntimeError(engine._FREED)
            slots = grads[key.node] = [None] * key.node.n_out
        old = slots[key.index]
        slots[key.index] = g if old is None else old + g
        return
    old = grads.get(key)
    grads[key] = g if old is None else old + g


def _visit(node: Any, g: Any, grads: dict[Any, Any], owned: set[Any], useful: set[Any],
           record: bool) -> None:
    """Run node's backward on `g` and route what it returns to the parents that need it: in
    numpy as the engine does (matmul factors merged, slices added into one buffer), or as
    recorded Tensors."""
    if record:
        scope_token = _SCOPE.set(("grad", *node._scope))
        arrays = _wire_saved(node)
    try:
        for parent, pg in zip(node._parents, node.backward(g)):
            if pg is None or not parent.requires_grad:
                continue
            if (parent.node if type(parent) is Port else parent) not in useful:
                continue
            if type(parent) is Port:  # one output of a multi-output op: into its slot
                dense = dense_recorded if record else engine._densify
                _add(grads, parent, dense(pg, parent.shape, parent.dtype, node))
            elif record:
                _add(grads, parent, dense_recorded(pg, parent._shape, parent._dtype, node))
            else:
                engine._accumulate(grads, owned, parent, pg, node)
    finally:
        if record:
            for name, value in arrays:
                setattr(node, name, value)
            _SCOPE.reset(scope_token)


def _wire_saved(node: Any) -> list[tuple[str, Any]]:
    """Swap the arrays named in node.saved_tensors for Tensors wired to the graph; returns the
    arrays, to put back after the backward call."""
    from tinygrad_rnn.tensor import _wrap
    arrays = []
    for name, index in node.saved_tensors:
        arr = getattr(node, name)
        arrays.append((name, arr))
        if index == ops.OUTPUT:
            t = _wrap(arr)
            t.requires_grad, t._op = True, node
        else:
            parent = node._parents[index]
            if hasattr(parent, "_data"):  # a leaf: the tensor itself, so gradients reach it
                t = parent
            else:  # an op's output (or one output of a multi-output op)
                t = _wrap(arr)
                t.requires_grad, t._op = True, parent
        setattr(node, name, t)
    return arrays


def dense_recorded(pg: Any, shape: tuple[int, ...], dtype: np.dtype, op: Any) -> Any:
    """A recorded gradient of any form (IndexGrad, OuterGrad, broadcast, another dtype) as a
    Tensor of `shape` and `dtype`, built with recorded primitives."""
    from tinygrad_rnn.tensor import _wrap, apply
    if type(pg) is OuterGrad:  # one use: a matmul's right operand a.T @ g
        pg = pg.a[0].T @ pg.g[0]
    elif isinstance(pg, IndexGrad):
        values: Any = pg.values if not bridge.is_array(pg.values) else _wrap(np.asarray(pg.values))
        pg = apply(ops.ScatterAdd, values, index=pg.index, shape=shape)
    elif bridge.is_array(pg):  # a constant (a gradient that does not depend on anything)
        pg = _wrap(np.asarray(pg))
    if pg.shape != shape:
        pg = bridge.unbroadcast(pg, shape)
        if pg.shape != shape:
            raise RuntimeError(f"{op.name}: backward gave a gradient of shape {pg.shape} for an "
                               f"input of shape {shape}")
    return bridge.astype(pg, dtype)
