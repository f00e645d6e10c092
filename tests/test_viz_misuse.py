"""draw_graph and render under hostile names and misuse: escaped labels that Graphviz shows
literally, valid cluster ids, and a clear error for every wrong argument."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest

from tinygrad_rnn import Tensor, graph_scope, nn, no_grad
from tinygrad_rnn.viz import draw_graph, render

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` binary not installed")
SVG = "{http://www.w3.org/2000/svg}"

# (name, the lines Graphviz must show); None: the name itself, on one line
HOSTILE = [
    ("<b>bold</b>", None), ("<<b>html</b>>", None), ("<i>", None), ("a < b > c", None),
    ("a & b", None), ("&amp;", None), ("&lt;b&gt;", None), ("&#92;N", None), ("&", None),
    ('say "hi"', None), ('" ]; evil [label="pwned', None), ("it's", None),
    ("trailing\\", None), ("\\", None), ("\\\\", None), ('\\"', None),
    ("\\N \\G \\E \\T \\H \\L", None), ("\\n is not a newline", None), ("\\l\\r", None),
    ("line1\nline2", ["line1", "line2"]), ("tab\there", ["tab\\there"]),
    ("nul\x00byte", ["nul\\x00byte"]), ("bell\x07", ["bell\\x07"]), ("cr\rhere", ["cr\\rhere"]),
    ("<!-- comment -->", None), ("<script>alert(1)</script>", None), ("]]><x/>", None),
    ("{a|b}", None), ("a -> b; c", None), ("node", None), ("subgraph", None), ("strict", None),
    ("β-weight ü", None), ("emoji 🙂", None), ("sur\udcffrogate", ["sur\\udcffrogate"]),
    ("\u202eRLO", ["\\u202eRLO"]), ("non\uffffchar", ["non\\uffffchar"]), ("-4.2", None),
]
IDS = [f"h{i}" for i in range(len(HOSTILE))]
WHERE = ["param", "param_with_shape", "scope", "op"]


def hostile_graph(name: str, where: str) -> graphviz.Digraph:
    """A tiny graph with `name` as a parameter name, a scope label or an op name."""
    w = Tensor(np.ones(2), requires_grad=True)
    with graph_scope(name if where == "scope" else "t=0"):
        mid = w * 2.0
    if where == "op":
        mid._op.name = name  # an instance attribute: the registry is untouched
    params = {name: w} if where.startswith("param") else None
    return draw_graph(mid.sum(), params=params, show_shapes=where == "param_with_shape")


def shown_lines(name: str, expected: list[str] | None, where: str) -> list[str]:
    lines = expected or [name]
    return lines + ["(2,)"] if where == "param_with_shape" else lines


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("name", "expected"), HOSTILE, ids=IDS)
def test_hostile_text_gives_plain_dot_without_html_or_raw_control_characters(name, expected,
                                                                             where):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # graphviz warns when it writes an unterminated string
        src = hostile_graph(name, where).source
    assert "label=<" not in src  # never an HTML-like label
    assert all(c.isprintable() or c in "\n\t" for c in src)
    clusters = re.findall(r"subgraph (\S+) \{", src)
    assert clusters and all(re.fullmatch(r"cluster_[A-Za-z0-9_]*", c) for c in clusters)


@needs_dot
@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("name", "expected"), HOSTILE, ids=IDS)
def test_hostile_text_renders_literally_with_dot(name, expected, where):
    src = hostile_graph(name, where).source
    run = subprocess.run(["dot", "-Tsvg"], input=src.encode(), capture_output=True,
                         timeout=60, check=False)
    assert run.returncode == 0 and run.stderr == b"", run.stderr.decode(errors="replace")
    svg = ET.fromstring(run.stdout)  # well-formed XML
    texts = [t for t in svg.iter(f"{SVG}text")]
    assert not [t.attrib for t in texts if {"font-weight", "font-style"} & set(t.attrib)]
    shown = [t.text for t in texts]
    lines = shown_lines(name, expected, where)
    start = next(i for i, s in enumerate(shown) if s == lines[0])  # StopIteration: not shown
    assert shown[start:start + len(lines)] == lines


@pytest.mark.parametrize("label", ["t=3\n", "t=٣", "t= 3", "t=3.0", "t=+3", "T=3", " t=3"])
def test_labels_that_only_look_like_steps_become_generic_clusters(label):
    w = Tensor(np.ones(2), requires_grad=True)
    with graph_scope(label):
        out = (w * 2.0).sum()
    src = draw_graph(out).source
    assert re.findall(r"subgraph (\S+) \{", src) == [
        "cluster_" + re.sub(r"\W+", "_", label.replace("=", ""), flags=re.ASCII)]


@pytest.mark.parametrize(("labels", "ids"), [
    (("layer=1", "dir=backward", "t=3"), ["cluster_layer1", "cluster_layer1_backward",
                                          "cluster_layer1_backward_t3"]),
    (("dir=forward", "t=-2"), ["cluster_forward", "cluster_forward_t_2"]),
    (("grad", "layer=0", "dir=forward", "t=7"), ["cluster_grad", "cluster_grad_layer0",
                                                 "cluster_grad_layer0_forward",
                                                 "cluster_grad_layer0_forward_t7"]),
    ((7,), ["cluster_7"]),  # a non-str label is drawn as its str
])
def test_normal_cluster_names_are_unchanged(labels, ids):
    w = Tensor(np.ones(2), requires_grad=True)
    scopes = [graph_scope(lab) for lab in labels]
    for s in scopes:
        s.__enter__()
    try:
        out = (w * 2.0).sum()
    finally:
        for s in reversed(scopes):
            s.__exit__(None, None, None)
    assert re.findall(r"subgraph (\S+) \{", draw_graph(out).source) == ids


# ---- draw_graph misuse -------------------------------------------------------------------

def small_graph():
    w = Tensor(np.arange(4.0).reshape(2, 2), requires_grad=True)
    return (w * 3.0).sum(), w


@pytest.mark.parametrize("root", [None, np.ones(2), 1.5, [1.0, 2.0], {"a": 1}, "loss",
                                  graphviz.Digraph(), np.float64(1.0)],
                         ids=["None", "ndarray", "float", "list", "dict", "str", "digraph",
                              "npfloat"])
def test_root_that_is_not_a_tensor(root):
    with pytest.raises(TypeError, match=r"draw_graph: expected a Tensor as root, got \w+"):
        draw_graph(root)


def _made_under_no_grad():
    w = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        return (w * 2.0).sum()


NO_GRAD_ROOTS = {
    "constant": lambda: Tensor(np.ones(3)),
    "from constants": lambda: (Tensor(np.ones(3)) * 2.0).sum(),
    "under no_grad": _made_under_no_grad,
    "detached": lambda: small_graph()[0].detach(),
    "integer": lambda: Tensor(np.arange(3)),
}


@pytest.mark.parametrize("make", NO_GRAD_ROOTS.values(), ids=NO_GRAD_ROOTS.keys())
def test_root_that_needs_no_grad_has_no_graph_to_draw(make):
    with pytest.raises(RuntimeError, match="draw_graph: root has requires_grad=False"):
        draw_graph(make())


def test_freed_graph_whole_or_in_part():
    loss, w = small_graph()
    loss.backward()
    with pytest.raises(RuntimeError, match="draw_graph: the graph behind this tensor was freed"):
        draw_graph(loss)
    w = Tensor(np.ones(2), requires_grad=True)
    mid = (w * 2.0).tanh()
    mid.sum().backward()  # frees mid's part of the graph
    later = (mid * 3.0).sum()
    with pytest.raises(RuntimeError, match="freed by backward"):
        draw_graph(later)


def test_a_freed_split_piece():
    x = Tensor(np.ones((2, 4)), requires_grad=True)
    a, b = x.chunk(2, axis=1)
    a.sum().backward()
    with pytest.raises(RuntimeError, match="draw_graph: the graph behind this tensor was freed"):
        draw_graph(b)


BAD_PARAMS = {  # name: (params given the leaf w, what the message says)
    "int": (lambda w: 3, r"params must be a Module.*got int"),
    "float": (lambda w: 1.5, r"params must be a Module.*got float"),
    "str": (lambda w: "weight", r"params must be a Module.*got str"),
    "bytes": (lambda w: b"weight", r"params must be a Module.*got bytes"),
    "ndarray": (lambda w: np.ones(2), r"params must be a Module.*got ndarray"),
    "tensor": (lambda w: w, r"params must be a Module.*got Tensor"),
    "list of tensors": (lambda w: [w], r"item 0 is Tensor, not a \(name, Tensor\) pair"),
    "list of names": (lambda w: ["w", "b"], r"item 0 is str, not a \(name, Tensor\) pair"),
    "triples": (lambda w: [("w", w, 1)], r"item 0 is tuple, not a \(name, Tensor\) pair"),
    "second item bad": (lambda w: [("w", w), "b"], r"item 1 is str, not a \(name, Tensor"),
    "dict of arrays": (lambda w: {"w": np.ones(2)}, r"params\['w'\] must be a Tensor, got ndarray"),
    "dict of None": (lambda w: {"w": None}, r"params\['w'\] must be a Tensor, got NoneType"),
    "int names": (lambda w: {0: w}, r"params names must be str; item 0 has a int name 0"),
    "None names": (lambda w: [(None, w)], r"params names must be str; item 0 has a NoneType"),
    "swapped pair": (lambda w: [(w, "w")], r"params names must be str; item 0 has a Tensor"),
}


@pytest.mark.parametrize(("make", "match"), BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_params_of_a_wrong_form(make, match):
    loss, w = small_graph()
    with pytest.raises(TypeError, match=r"^draw_graph: params") as err:
        draw_graph(loss, params=make(w))
    assert re.search(match, str(err.value))
    assert 'label="output: sum' in draw_graph(loss).source  # the graph is intact


ACCEPTED = {"dict": lambda w: {"w": w}, "list of tuples": lambda w: [("w", w)],
            "tuple of tuples": lambda w: (("w", w),), "iterator of lists": lambda w: iter([["w", w]]),
            "two names, first wins": lambda w: [("w", w), ("other", w)]}


@pytest.mark.parametrize("form", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_params_in_every_accepted_form_name_the_leaf(form):
    loss, w = small_graph()
    src = draw_graph(loss, params=form(w)).source
    assert 'label="w\\n(2, 2)"' in src and "other" not in src


@pytest.mark.parametrize("params", [None, [], {}, ()], ids=repr)
def test_no_names_draws_the_leaf_as_an_input(params):
    loss, _ = small_graph()
    assert 'label="input\\n(2, 2)"' in draw_graph(loss, params=params).source


def test_a_module_names_its_parameters():
    module = nn.Linear(2, 2)
    src = draw_graph(module(Tensor(np.ones((1, 2)))).sum(), params=module).source
    assert 'label="weight\\n(2, 2)"' in src and 'label="bias\\n(2,)"' in src


@pytest.mark.parametrize("arg", ["show_shapes", "group_steps", "show_grad"])
@pytest.mark.parametrize("value", ["no", 1, 0, None, 1.0, [True]], ids=repr)
def test_flags_must_be_bool(arg, value):
    loss, _ = small_graph()
    with pytest.raises(TypeError, match=rf"draw_graph: {arg} must be a bool"):
        draw_graph(loss, **{arg: value})


@pytest.mark.parametrize("value", [np.True_, np.False_, True, False])
def test_numpy_bools_are_accepted_as_flags(value):
    loss, _ = small_graph()
    assert "->" in draw_graph(loss, show_shapes=value, group_steps=value, show_grad=value).source


@pytest.mark.parametrize(("value", "error"), [
    (0, ValueError), (-1, ValueError), (np.int64(0), ValueError), (2.5, TypeError),
    (2.0, TypeError), ("2", TypeError), (True, TypeError), (np.float64(2), TypeError),
    ([2], TypeError)], ids=repr)
def test_max_steps_must_be_a_positive_int(value, error):
    loss, _ = small_graph()
    with pytest.raises(error, match="draw_graph: max_steps must be"):
        draw_graph(loss, max_steps=value)


def test_max_steps_accepts_a_numpy_int():
    w = Tensor(np.ones(2), requires_grad=True)
    h = w
    with graph_scope("dir=forward"):
        for t in range(6):
            with graph_scope(f"t={t}"):
                h = (h * 0.5).tanh()
    assert "… 2 steps …" in draw_graph(h.sum(), max_steps=np.int64(2)).source


def test_show_grad_with_a_nan_or_inf_gradient_is_drawn_not_crashed():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0]), requires_grad=True)
    out = (a * 2.0).sum() + b.sum()
    out.backward(retain_graph=True)
    a.grad = np.array([np.nan, 1.0])
    b.grad = np.array([1e3])
    src = draw_graph(out, params={"a": a, "b": b}, show_grad=True).source
    assert "|grad| nan" in src and "#d9a3ff" in src  # violet: off the scale
    assert "|grad| 1e+03" in src and "#ff3232" in src  # the largest finite norm: deep red


# ---- render misuse ----------------------------------------------------------------------

@pytest.mark.parametrize("graph", [None, "digraph { a }", 3, "TENSOR"], ids=repr)
def test_render_needs_a_graphviz_graph(graph, tmp_path):
    if graph == "TENSOR":
        graph = small_graph()[0]
    with pytest.raises(TypeError, match="render: graph must be a graphviz graph"):
        render(graph, tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", [None, 3, "", b"g.svg", ["g.svg"]], ids=repr)
def test_render_needs_a_path(path, tmp_path):
    loss, _ = small_graph()
    with pytest.raises(TypeError, match="render: path must be a non-empty str or os.PathLike"):
        render(draw_graph(loss), path)


@pytest.mark.parametrize("fmt", ["xyz", "", None, 3, "svg; rm -rf /", ".svg"], ids=repr)
def test_render_needs_a_known_format(fmt, tmp_path):
    loss, _ = small_graph()
    with pytest.raises(ValueError, match="render: format must be one of Graphviz's"):
        render(draw_graph(loss), tmp_path / "g.out", format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_render_to_a_directory_or_into_a_missing_one(tmp_path):
    graph = draw_graph(small_graph()[0])
    with pytest.raises(IsADirectoryError, match="render: path .* is a directory"):
        render(graph, tmp_path)
    with pytest.raises(FileNotFoundError, match="render: the directory of path .* does not"):
        render(graph, tmp_path / "missing" / "g.svg")
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_render_reports_a_dot_failure_and_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="render: dot failed on this graph: .*syntax error"):
        render(graphviz.Source("digraph { a -> }"), tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_render_accepts_an_upper_case_format_and_a_str_path(tmp_path):
    path = render(draw_graph(small_graph()[0]), str(tmp_path / "g.svg"), format="SVG")
    assert path == str(tmp_path / "g.svg") and "<svg" in (tmp_path / "g.svg").read_text()


def test_hostile_labels_that_clean_up_alike_get_distinct_cluster_ids():
    w = Tensor(np.ones(2), requires_grad=True)
    out = w.sum()
    for label in ["a b", "a-b", "a_b_1", "a<b", "a_b", 'a"b', "a\\b"]:
        with graph_scope(label):
            out = out + (w * 2.0).sum()
    src = draw_graph(out).source
    ids = re.findall(r"subgraph (\S+) \{", src)
    assert len(ids) == len(set(ids)) == 7 and ids[0] == "cluster_a_b"
    assert all(re.fullmatch(r"cluster_[A-Za-z0-9_]+", c) for c in ids)
