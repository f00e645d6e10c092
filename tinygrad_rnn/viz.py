"""Graphviz drawings of computation graphs: one node per op and leaf, one cluster per time step.

Recurrent layers stamp their ops with nested `graph_scope` labels (`layer=<k>`, `dir=forward` or
`dir=backward`, `t=<int>`); each label becomes a nested `subgraph cluster_...`. Node ids come from
the traversal order, never from `id()`, so one program gives the same DOT text on every run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from itertools import count
from os.path import commonprefix
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from tinygrad_rnn.tensor import Tensor

_STEP = re.compile(r"t=(-?\d+)$")
_NO_DOT = ("render: Graphviz's `dot` executable was not found on PATH. graph.source needs no "
           "binary, but drawing to an image does: install it with `apt-get install graphviz` "
           "(Debian/Ubuntu) or `brew install graphviz` (macOS).")
_FREED = ("draw_graph: the graph behind this tensor was freed by backward; call draw_graph "
          "before backward or use retain_graph=True")


def _param_names(params: Any) -> dict[int, str]:
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    elif isinstance(params, Mapping):
        params = params.items()
    names: dict[int, str] = {}
    for name, tensor in params:
        names.setdefault(id(tensor), str(name))
    return names


def _walk(root: Tensor) -> list[Tensor]:
    """Every node under `root`, constants too, parents before children, without recursion."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif id(node) not in seen:
            if node._freed:
                raise RuntimeError(_FREED)
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(node._parents))
    return order


def _step(scope: tuple[str, ...]) -> tuple[tuple[str, ...], int] | None:
    """(labels above the step, step) for the first `t=<int>` label in `scope`, else None."""
    return next(((scope[:i], int(m.group(1))) for i, lab in enumerate(scope)
                 if (m := _STEP.match(lab))), None)


def _elide(order: list[Tensor], k: int | None) -> tuple[dict, dict, dict]:
    """Drawn id per node ("n<i>", or "e<j>" for an elided step), scope per drawn id, and the
    elided steps per (layer, direction) prefix: all but the first and last k steps."""
    steps = {id(n): _step(n._scope) for n in order if n._op is not None}
    gone: dict[tuple[str, ...], Any] = {}
    for s in steps.values():
        if k is not None and s is not None:
            gone.setdefault(s[0], set()).add(s[1])
    gone = {p: set(sorted(ts)[k:-k]) for p, ts in gone.items() if len(ts) > 2 * k}
    dots = {prefix: f"e{i}" for i, prefix in enumerate(gone)}
    vid, where = {}, {}
    for i, n in enumerate(order):
        s = steps.get(id(n))
        vid[id(n)] = dots[s[0]] if s is not None and s[1] in gone.get(s[0], ()) else f"n{i}"
        where[vid[id(n)]] = s[0] if vid[id(n)][0] == "e" else n._scope
    return vid, where, gone


def _place_leaves(order: list[Tensor], root: Tensor, vid: dict, where: dict, names: dict) -> None:
    """Put each leaf in the innermost cluster holding all its users (never inside a step for
    weights and inputs); drop leaves that only elided steps use."""
    users: dict[int, list[str]] = {}
    for n in order:
        for p in n._parents:
            users.setdefault(id(p), []).append(vid[id(n)])
    for n in order:
        used = users.get(id(n), [])
        if n._op is not None or n is root:
            continue
        if all(u[0] == "e" for u in used):
            del where[vid[id(n)]]
            continue
        scope = commonprefix([where[u] for u in used])
        s = _step(scope) if n.requires_grad or id(n) in names else None
        where[vid[id(n)]] = scope if s is None else s[0]


def _assemble(nodes: dict[tuple[str, ...], list]) -> graphviz.Digraph:
    """Nested clusters, steps in time order, each named after its labels (a valid DOT id)."""
    graph, taken = graphviz.Digraph("tinygrad_rnn", node_attr={"fontsize": "10"}), set()
    subs, rank = {(): graph}, {path: i for i, path in enumerate(nodes)}
    for path in sorted(list(nodes)[1:], key=lambda q: [int(m.group(1)) if (m := _STEP.match(
            lab)) else rank[q[:i + 1]] for i, lab in enumerate(q)]):
        base = "cluster_" + "_".join(re.sub(r"\W+", "_", lab.replace("dir=", "").replace(
            "=", ""), flags=re.ASCII) for lab in path)
        name = next(c for i in count() if (c := f"{base}_{i}" if i else base) not in taken)
        taken.add(name)  # distinct labels may sanitise alike: the later gets a suffix
        subs[path] = graphviz.Digraph(name, graph_attr={"label": path[-1], "style": "rounded"})
    for path, members in nodes.items():
        for nid, attrs in members:
            subs[path].node(nid, **attrs)
    for path in sorted(list(subs)[1:], key=len, reverse=True):  # inner clusters first
        subs[path[:-1]].subgraph(subs[path])
    return graph


def _shade(norm: float, top: float) -> str:
    """White to red on a log scale spanning six decades below the largest norm drawn."""
    frac = 0.0 if norm <= 0 or top <= 0 else min(1.0, max(0.0, 1 + np.log10(norm / top) / 6))
    g = round(255 - 200 * frac)
    return f"#ff{g:02x}{g:02x}"


def draw_graph(root: Tensor, params: Any = None, show_shapes: bool = True,
               group_steps: bool = True, max_steps: int | None = None,
               show_grad: bool = False) -> graphviz.Digraph:
    """Draw the computation graph that produced `root`; returns a `graphviz.Digraph`.

    Args:
        root: the output Tensor (drawn with a double border and "output" in its label).
        params: a Module, a dict name -> Tensor, or (name, Tensor) pairs naming the leaves.
        show_shapes: put each node's output shape, e.g. (B, H), in its label.
        group_steps: one cluster per `t=<int>` scope, nested in layer/direction clusters.
        max_steps: keep the first and last k steps of each (layer, direction), one
            "… n steps …" node for the rest.
        show_grad: shade nodes by the L2 norm of `.grad` (after a retain_graph backward).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor, got {type(root).__name__}")
    if root._freed:
        raise RuntimeError(_FREED)
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"draw_graph: max_steps must be >= 1 or None, got {max_steps}")
    order, names = _walk(root), _param_names(params)
    vid, where, gone = _elide(order, max_steps)
    _place_leaves(order, root, vid, where, names)
    norms = {id(n): float(np.linalg.norm(n.grad)) for n in order if show_grad and
             n.grad is not None and vid[id(n)][0] == "n" and vid[id(n)] in where}
    top = max(norms.values(), default=0.0)

    nodes: dict[tuple[str, ...], list[tuple[str, dict[str, str]]]] = {(): []}
    placed: set[str] = set()
    for n in order:
        nid = vid[id(n)]
        if nid not in where or nid in placed:
            continue
        placed.add(nid)
        if nid[0] == "e":
            attrs = {"label": f"… {len(gone[where[nid]])} steps …", "shape": "plaintext"}
        elif n._op is not None:
            attrs = {"label": n._op.name, "shape": "box"}
        else:
            kind = names.get(id(n), "input" if n.requires_grad else "const")
            attrs = {"label": kind, "shape": "ellipse"}
            if kind == "const":
                attrs.update(style="dashed", fontcolor="gray40")
            elif not show_grad:
                attrs.update(style="filled", fillcolor="#fff2cc" if id(n) in names else "#ddeeff")
        if nid[0] == "n" and show_shapes:
            attrs["label"] += f"\\n{tuple(n.shape)}"
        if id(n) in norms:
            attrs["label"] += f"\\n|grad| {norms[id(n)]:.3g}"
            attrs.update(style="filled", fillcolor=_shade(norms[id(n)], top))
        if n is root:
            attrs.update(label="output: " + attrs["label"], peripheries="2", color="blue")
        path = where[nid] if group_steps else ()
        for k in range(1, len(path) + 1):
            nodes.setdefault(path[:k], [])
        nodes[path].append((nid, attrs))

    graph, edges = _assemble(nodes), set()
    for n in order:
        for p in n._parents:
            src, dst = vid[id(p)], vid[id(n)]
            elided = "e" in (src[0], dst[0])
            if src != dst and src in where and not (elided and (src, dst) in edges):
                edges.add((src, dst))  # parallel edges (x * x) stay, elided ones merge
                graph.edge(src, dst, **({"style": "dashed"} if elided else {}))
    return graph


def render(graph: graphviz.Digraph, path: str | Path, format: str = "svg") -> str:
    """Draw `graph` to `path` (svg, png, pdf...) with Graphviz's `dot`; returns the path.

    Raises RuntimeError naming the package to install when `dot` is missing.
    """
    if shutil.which("dot") is None:
        raise RuntimeError(_NO_DOT)
    try:
        data = graph.pipe(format=format)
    except graphviz.ExecutableNotFound as err:
        raise RuntimeError(_NO_DOT) from err
    Path(path).write_bytes(data)
    return str(path)


__all__ = ["draw_graph", "render"]
