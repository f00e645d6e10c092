"""Graphviz drawings of computation graphs: one node per op and leaf, one cluster per time step.

Recurrent layers stamp their ops with nested `graph_scope` labels (`layer=<k>`, `dir=forward` or
`dir=backward`, `t=<int>`); each label becomes a nested `subgraph cluster_...`. Node ids come from
the traversal order, never from `id()`, so one program gives the same DOT text on every run.
Every text that reaches a label (parameter names, scope labels, op names) is escaped, so it is
shown literally and can never break the DOT or render as markup.

A gradient recorded with `autograd.grad(..., create_graph=True)` carries the scope
`("grad",) + forward scope`, so the derived BPTT gets its own `cluster_grad_..._t<k>` clusters,
drawn in red, labelled `grad t=<k>` and listed in the order the backward ran them (last step
first); a second derivative nests `grad` twice and is drawn in violet.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from itertools import count
from os.path import commonprefix
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from tinygrad_rnn.gradients import Port
from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.validate import check_bool

_STEP = re.compile(r"t=(-?[0-9]+)\Z")  # \Z: "t=3\n" is a generic label, not step 3
_NO_DOT = ("render: Graphviz's `dot` executable was not found on PATH. graph.source needs no "
           "binary, but drawing to an image does: install it with `apt-get install graphviz` "
           "(Debian/Ubuntu) or `brew install graphviz` (macOS).")
_FREED = ("draw_graph: the graph behind this tensor was freed by backward; call draw_graph "
          "before backward or use retain_graph=True")
_NO_GRAPH = ("draw_graph: root has requires_grad=False, so no graph was recorded for it (it was "
             "made under no_grad or from inputs without requires_grad=True); pass a tensor "
             "computed from inputs with requires_grad=True")
_NONFINITE = "#d9a3ff"  # a gradient norm that is nan or inf: off the red scale
_PARAMS = "a Module, a dict name -> Tensor, or an iterable of (name, Tensor) pairs"
# Graphviz reads entities in every label (`&lt;` shows "<") and escapes after a backslash (`\N`
# is the node id, `\n` a line break); a label that starts with "<" and ends with ">" would be
# HTML. So & < > " become entities, a backslash is doubled and a newline is a line break.
_DOT_TEXT = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\\": "\\\\", "\n": "\\n"}
_GRAD = "grad"  # the scope label grad_sweep puts before a recorded backward op's forward scope
# (outline, step-cluster fill) by derivative order: 1 red, 2 and higher violet
_GRAD_LOOK = {1: ("#b03a2e", "#fdf1ef"), 2: ("#7d3c98", "#f6effa")}
_SAVED_EDGE = "gray60"  # a forward value (or a weight) read by a derivative's op


def _escape(text: Any) -> str:
    """`text` as DOT label text that Graphviz shows literally: markup characters as entities,
    backslashes doubled, a newline a line break, any other unprintable character (a control
    character, a lone surrogate) as its Python escape, e.g. the four characters `\\x00`."""
    return "".join(_DOT_TEXT.get(ch) or (ch if ch.isprintable() else ch.encode(
        "unicode_escape").decode("ascii").replace("\\", "\\\\"))
        for ch in str(text))


def _param_names(params: Any) -> dict[int, str]:
    """id(tensor) -> its name, from a Module, a dict or (name, Tensor) pairs; the first name of
    a tensor wins. Anything else is a TypeError naming `params` and the offending item."""
    if params is None:
        return {}
    if callable(getattr(params, "named_parameters", None)):
        pairs = list(params.named_parameters())
    elif isinstance(params, Mapping):
        pairs = list(params.items())
    elif isinstance(params, (str, bytes, np.ndarray, Tensor)) or not hasattr(params, "__iter__"):
        raise TypeError(f"draw_graph: params must be {_PARAMS}, got {type(params).__name__}")
    else:
        pairs = list(params)
    names: dict[int, str] = {}
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"draw_graph: params must be {_PARAMS}; item {i} is "
                            f"{type(pair).__name__}, not a (name, Tensor) pair")
        name, t = pair
        if not isinstance(name, str):
            raise TypeError(f"draw_graph: params names must be str; item {i} has a "
                            f"{type(name).__name__} name {name!r}")
        if not isinstance(t, Tensor):
            raise TypeError(f"draw_graph: params[{name!r}] must be a Tensor, got "
                            f"{type(t).__name__}")
        names.setdefault(id(t), name)
    return names


def _walk(root: Any) -> list[Any]:
    """Every node under `root` (Ops and leaf Tensors, constants too), parents before children,
    without recursion."""
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
            stack.extend((p, False) for p in reversed(_inputs(node)))
    return order


def _inputs(node: Any) -> list[Any]:
    """A node's input nodes: a Port (one output of a multi-output op) stands for its op."""
    return [p.node if type(p) is Port else p for p in node._parents]


def _step(scope: tuple[str, ...]) -> tuple[tuple[str, ...], int] | None:
    """(labels above the step, step) for the first `t=<int>` label in `scope`, else None."""
    return next(((scope[:i], int(m.group(1))) for i, lab in enumerate(scope)
                 if (m := _STEP.match(str(lab)))), None)


def _grad_order(scope: tuple[str, ...]) -> int:
    """How many derivatives deep an op is: the number of leading `grad` labels of its scope."""
    return next((i for i, lab in enumerate(scope) if lab != _GRAD), len(scope))


def _cluster_look(path: tuple[str, ...]) -> dict[str, str]:
    """A cluster's label and style: a gradient's clusters say `grad` (`grad^2`, ...) and are
    outlined in their order's colour, its step clusters filled, so they stand apart."""
    k = _grad_order(path)
    if k == 0:
        return {"label": _escape(path[-1]), "style": "rounded"}
    line, fill = _GRAD_LOOK[min(k, 2)]
    name = _GRAD if k == 1 else f"{_GRAD}^{k}"
    own = path[-1] if len(path) > k else ""
    look = {"label": _escape(f"{name} {own}".strip()), "style": "rounded", "color": line,
            "fontcolor": line, "penwidth": "1.5"}
    if _STEP.match(str(own)):
        look.update(style="rounded,filled", fillcolor=fill)
    return look


def _layout(order: list[Tensor], k: int | None, names: dict) -> tuple[dict, dict, dict]:
    """Drawn id per node ("n<i>", or "e<j>" for an elided step), scope per drawn id, and the
    elided steps per (layer, direction): all but the first and last k. A leaf goes in the
    innermost cluster holding all its users (weights and inputs never inside a step)."""
    steps = {id(n): _step(n._scope) for n in order if n._op is not None}
    gone: dict[tuple[str, ...], set[int]] = {}
    if k is not None:  # else no step is elided
        for above, t in (s for s in steps.values() if s is not None):
            gone.setdefault(above, set()).add(t)
        gone = {p: set(sorted(ts)[k:-k]) for p, ts in gone.items() if len(ts) > 2 * k}
    dots = {p: f"e{i}" for i, p in enumerate(gone)}
    vid: dict[int, str] = {}  # id(node) -> drawn id
    where: dict[str, tuple[str, ...]] = {}  # drawn id -> scope
    users: dict[int, list[str]] = {}  # id(node) -> drawn ids of its users
    for i, n in enumerate(order):
        s = steps.get(id(n))
        vid[id(n)] = dots[s[0]] if s is not None and s[1] in gone.get(s[0], ()) else f"n{i}"
        where[vid[id(n)]] = s[0] if s is not None and vid[id(n)][0] == "e" else n._scope
        for p in _inputs(n):
            users.setdefault(id(p), []).append(vid[id(n)])
    for n in (n for n in order if id(n) in users and n._op is None):
        if all(u[0] == "e" for u in users[id(n)]):
            del where[vid[id(n)]]  # only elided steps use it
            continue
        scope = tuple(commonprefix([where[u] for u in users[id(n)]]))
        s = _step(scope) if n.requires_grad or id(n) in names else None
        where[vid[id(n)]] = scope if s is None else s[0]
    return vid, where, gone


def _assemble(nodes: dict[tuple[str, ...], list], ran: dict[tuple[str, ...], int]
              ) -> graphviz.Digraph:
    """Nested clusters, each named after its labels (a valid DOT id): a forward's steps in time
    order, a gradient's layers and steps in the order its backward ran them (`ran`)."""
    graph, taken = graphviz.Digraph("tinygrad_rnn", node_attr={"fontsize": "10"}), set()
    rank = {q[:k]: 0 for q in nodes for k in range(1, len(q) + 1)}
    rank = {q: i for i, q in enumerate(rank)}
    subs: dict[tuple[str, ...], graphviz.Digraph] = {(): graph}

    def place(q: tuple[str, ...], i: int) -> int:
        if i and q[:i + 1] in ran:  # inside a gradient: the order its backward ran
            return ran[q[:i + 1]]
        return int(m.group(1)) if (m := _STEP.match(str(q[i]))) else rank[q[:i + 1]]

    for path in sorted(rank, key=lambda q: [place(q, i) for i in range(len(q))]):
        base = "cluster_" + "_".join(re.sub(r"\W+", "_", str(lab).replace("dir=", "").replace(
            "=", ""), flags=re.ASCII) for lab in path)
        name = next(c for i in count() if (c := f"{base}_{i}" if i else base) not in taken)
        taken.add(name)  # distinct labels may sanitise alike: the later gets a suffix
        subs[path] = graphviz.Digraph(name, graph_attr=_cluster_look(path))
    for path, members in nodes.items():
        for nid, attrs in members:
            subs[path].node(nid, **attrs)
    for path in sorted(list(subs)[1:], key=len, reverse=True):  # inner clusters first
        subs[path[:-1]].subgraph(subs[path])
    return graph


def _shade(norm: float, top: float) -> str:
    """Pale to deep red on a log scale over four decades below the largest norm drawn, so a
    vanishing gradient still shows; a zero gradient stays white, a nan or inf one violet."""
    if not np.isfinite(norm):
        return _NONFINITE
    if norm <= 0:
        return "#ffffff"
    g = round(235 - 185 * min(1.0, max(0.0, 1 + np.log10(norm / top) / 4)))
    return f"#ff{g:02x}{g:02x}"


def draw_graph(root: Tensor, params: Any = None, show_shapes: bool = True,
               group_steps: bool = True, max_steps: int | None = None,
               show_grad: bool = False) -> graphviz.Digraph:
    """Draw the computation graph that produced `root`; returns a `graphviz.Digraph`.

    Args:
        root: the output Tensor (drawn with a double border and "output" in its label).
        params: a Module, a dict name -> Tensor, or (name, Tensor) pairs naming the leaves.
        show_shapes: put each node's output shape, e.g. (B, H), in its label.
        group_steps: one cluster per `t=<int>` scope, nested in layer/direction clusters;
            a gradient's (create_graph=True) nested under `grad`, last step first.
        max_steps: keep the first and last k steps of each (layer, direction), one
            "… n steps …" node for the rest.
        show_grad: shade nodes by the L2 norm of `.grad` (after a retain_graph backward).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor as root, got {type(root).__name__}")
    for arg, flag in (("show_shapes", show_shapes), ("group_steps", group_steps),
                      ("show_grad", show_grad)):
        check_bool("draw_graph", arg, flag)
    if max_steps is not None and (isinstance(max_steps, (bool, np.bool_)) or
                                  not isinstance(max_steps, (int, np.integer))):
        raise TypeError(f"draw_graph: max_steps must be an int >= 1 or None, got {max_steps!r}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"draw_graph: max_steps must be >= 1 or None, got {max_steps}")
    node: Any = root._op or root  # the graph holds Op nodes and leaf tensors (see ops.Op)
    node = node.node if type(node) is Port else node
    if node._freed:
        raise RuntimeError(_FREED)
    if not root.requires_grad:
        raise RuntimeError(_NO_GRAPH)
    max_steps = None if max_steps is None else int(max_steps)
    order, names = _walk(node), _param_names(params)
    vid, where, gone = _layout(order, max_steps, names)
    norms = {id(n): float(np.sqrt(np.sum(np.square(n.grad, dtype=np.float64)))) for n in order
             if show_grad and n.grad is not None and vid[id(n)][0] == "n" and vid[id(n)] in where}
    top = max((v for v in norms.values() if np.isfinite(v)), default=0.0)

    nodes: dict[tuple[str, ...], list[tuple[str, dict[str, str]]]] = {(): []}
    for n in order:
        nid = vid[id(n)]
        if nid[0] == "e" or nid not in where:
            continue
        if n._op is not None:
            attrs = {"label": _escape(n._op.name), "shape": "box"}
            if k := _grad_order(n._scope):  # a derivative's op: outlined in its order's colour
                attrs["color"] = _GRAD_LOOK[min(k, 2)][0]
        elif id(n) in names or n.requires_grad:  # parameters by name, other leaves as inputs
            attrs = {"label": _escape(names.get(id(n), "input")), "shape": "ellipse"}
            if not show_grad:
                attrs.update(style="filled", fillcolor="#fff2cc" if id(n) in names else "#ddeeff")
        else:
            attrs = {"label": "const", "shape": "ellipse", "style": "dashed", "fontcolor": "gray40"}
        if show_shapes:
            attrs["label"] += f"\\n{tuple(n._shape)}"
        if id(n) in norms:
            attrs["label"] += f"\\n|grad| {norms[id(n)]:.3g}"
            attrs.update(style="filled", fillcolor=_shade(norms[id(n)], top))
        if n is node:
            attrs.update(label="output: " + attrs["label"], peripheries="2", color="blue")
        nodes.setdefault(where[nid] if group_steps else (), []).append((nid, attrs))
    for i, (prefix, steps) in enumerate(gone.items()):  # one elision node per layer, direction
        dots = {"label": f"… {len(steps)} steps …", "shape": "plaintext"}
        nodes.setdefault(prefix if group_steps else (), []).append((f"e{i}", dots))

    graph, edges = _assemble(nodes, _ran(order)), set()
    for n in order:
        for p in _inputs(n):
            src, dst = vid[id(p)], vid[id(n)]
            elided = "e" in (src[0], dst[0])
            if src != dst and src in where and not (elided and (src, dst) in edges):
                edges.add((src, dst))  # parallel edges (x * x) stay, elided ones merge
                look = {"style": "dashed"} if elided else {}
                if _grad_order(where[src]) < _grad_order(where[dst]):
                    # a saved value the derivative reconnects to: grey, and free of the ranking,
                    # so the derivative's own flow lays out beside the forward, last step on top
                    look.update(color=_SAVED_EDGE, constraint="false")
                graph.edge(src, dst, **look)
    return graph


def _ran(order: list[Any]) -> dict[tuple[str, ...], int]:
    """For each cluster of a gradient (a prefix of its ops' scopes), when its backward began:
    the creation number of its first op. The sweep runs the last layer and step first."""
    ran: dict[tuple[str, ...], int] = {}
    for n in order:
        if n._op is not None and _grad_order(n._scope):
            for k in range(2, len(n._scope) + 1):
                ran[n._scope[:k]] = min(ran.get(n._scope[:k], n._seq), n._seq)
    return ran


def render(graph: graphviz.Digraph, path: str | Path, format: str = "svg") -> str:
    """Draw `graph` to `path` (svg, png, pdf...) with Graphviz's `dot`; returns the path.

    Raises RuntimeError naming the package to install when `dot` is missing. Arguments are
    checked before `dot` runs, and nothing is written unless it succeeds.
    """
    if not isinstance(graph, (graphviz.Graph, graphviz.Digraph, graphviz.Source)):
        raise TypeError(f"render: graph must be a graphviz graph (what draw_graph returns), got "
                        f"{type(graph).__name__}")
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"render: path must be a non-empty str or os.PathLike, got {path!r}")
    if not isinstance(format, str) or format.lower() not in graphviz.FORMATS:
        raise ValueError(f"render: format must be one of Graphviz's output formats (svg, png, "
                         f"pdf, ...), got {format!r}")
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"render: path {str(path)!r} is a directory, not a file name")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"render: the directory of path {str(path)!r} does not exist")
    if shutil.which("dot") is None:
        raise RuntimeError(_NO_DOT)
    try:
        data = graph.pipe(format=format.lower())
    except graphviz.ExecutableNotFound as err:
        raise RuntimeError(_NO_DOT) from err
    except graphviz.CalledProcessError as err:
        detail = (err.stderr or b"").decode(errors="replace").strip()
        raise RuntimeError(f"render: dot failed on this graph: {detail}") from None
    target.write_bytes(data)
    return str(path)


__all__ = ["draw_graph", "render"]
