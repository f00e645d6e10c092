"""draw_graph of a gradient recorded with create_graph=True: the derived BPTT as its own clusters
(`cluster_grad_..._t<k>`), last step first, apart from the forward's (DOT text; one render)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from tinygrad_rnn import Tensor, autograd, graph_scope, nn
from tinygrad_rnn.viz import _walk, draw_graph, render

T = 3


def clusters(dot: str) -> dict[str, tuple[str | None, str]]:
    """cluster name -> (enclosing cluster or None, its `graph [...]` attribute line)."""
    found: dict[str, tuple[str | None, str]] = {}
    stack: list[str] = []
    lines = dot.splitlines()
    for i, line in enumerate(lines):
        if m := re.match(r"\s*subgraph (cluster_\w+) \{$", line):
            found[m.group(1)] = (stack[-1] if stack else None, lines[i + 1].strip())
            stack.append(m.group(1))
        elif line.strip() == "}" and stack:
            stack.pop()
    return found


def homes(dot: str) -> dict[str, str | None]:
    """drawn node id -> the innermost cluster it is declared in (None at top level)."""
    found: dict[str, str | None] = {}
    stack: list[str] = []
    for line in dot.splitlines():
        if m := re.match(r"\s*subgraph (cluster_\w+) \{$", line):
            stack.append(m.group(1))
        elif line.strip() == "}" and stack:
            stack.pop()
        elif m := re.match(r"\s*([ne]\d+) \[", line):
            found[m.group(1)] = stack[-1] if stack else None
    return found


def cluster_of(scope: tuple[str, ...]) -> str | None:
    """The cluster name viz gives a scope (plain labels here: no suffixes needed)."""
    parts = [lab.replace("dir=", "").replace("=", "") for lab in scope]
    return "cluster_" + "_".join(parts) if parts else None


def grad_steps(dot: str) -> list[str]:
    return [c for c in clusters(dot) if c.startswith("cluster_grad_") and re.search(r"_t\d+$", c)]


def lstm_loss(seed: int = 0, steps: int = T):
    rng = np.random.default_rng(seed)
    lstm = nn.LSTM(2, 3, batch_first=True)
    out, _ = lstm(Tensor(rng.standard_normal((1, steps, 2)), requires_grad=True))
    return (out ** 2).mean(), lstm


def lstm_grad(seed: int = 0, steps: int = T):
    loss, lstm = lstm_loss(seed, steps)
    (dw,) = autograd.grad(loss, lstm.weight_hh_l0, create_graph=True)
    return loss, dw, lstm


def test_one_grad_cluster_per_step_nested_under_grad_last_step_first():
    _, dw, lstm = lstm_grad()
    dot = draw_graph(dw, params=lstm).source
    found = clusters(dot)
    assert grad_steps(dot) == [f"cluster_grad_layer0_forward_t{t}" for t in (2, 1, 0)]
    for t in range(T):
        parent, attrs = found[f"cluster_grad_layer0_forward_t{t}"]
        assert parent == "cluster_grad_layer0_forward"
        assert f'label="grad t={t}"' in attrs and "rounded,filled" in attrs and "color=" in attrs
    assert found["cluster_grad_layer0_forward"][0] == "cluster_grad_layer0"
    assert found["cluster_grad_layer0"][0] == "cluster_grad"
    assert found["cluster_grad"][0] is None and "label=grad " in found["cluster_grad"][1]
    assert 'label="weight_hh_l0\\n(12, 3)"' in dot  # the weight the derivative reads, by name


def test_forward_clusters_are_drawn_as_without_the_gradient():
    loss, dw, lstm = lstm_grad()
    alone = clusters(draw_graph(loss, params=lstm).source)
    within = clusters(draw_graph(dw, params=lstm).source)
    assert {c: v for c, v in within.items() if not c.startswith("cluster_grad")} == alone
    assert all("color" not in attrs for _, attrs in alone.values())  # plain, unlike the grad's


def test_every_recorded_op_has_grad_plus_a_forward_scope_and_sits_in_its_cluster():
    loss, dw, lstm = lstm_grad()
    forward = _walk(loss._op)
    scopes, seen = {n._scope for n in forward if n._op is not None}, set(map(id, forward))
    order = _walk(dw._op)  # node n<i> of the drawing is order[i]
    where = homes(draw_graph(dw, params=lstm).source)
    recorded = [(i, n) for i, n in enumerate(order) if n._op is not None and id(n) not in seen]
    assert len(recorded) > 50
    for i, n in recorded:
        assert n._scope[0] == "grad" and n._scope[1:] in scopes, (n._op.name, n._scope)
        assert where[f"n{i}"] == cluster_of(n._scope), (n._op.name, n._scope)
    assert {n._scope[-1] for _, n in recorded} >= {f"t={t}" for t in range(T)}


def test_engine_made_ops_sit_in_the_step_they_differentiate():
    rng = np.random.default_rng(1)
    w_ih, w_hh = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 2), (3, 3)))
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    x, h = Tensor(rng.standard_normal((1, T, 2)), requires_grad=True), Tensor(np.zeros((1, 3)))
    with graph_scope("dir=forward"):
        for t in range(T):
            with graph_scope(f"t={t}"):  # x[:, t] inside the step: its gradient is a scatter_add
                h = (x[:, t] @ w_ih.T + h @ w_hh.T + b).tanh()  # b broadcast: a sum in backward
    loss = (h * h).sum()
    forward = set(map(id, _walk(loss._op)))
    gx, gw, gb = autograd.grad(loss, [x, w_hh, b], create_graph=True)
    root = gx.sum() + gw.sum() + gb.sum()
    order = _walk(root._op)
    where = homes(draw_graph(root).source)
    made = {}
    for i, n in enumerate(order):
        recorded = n._op is not None and id(n) not in forward and n._scope[:1] == ("grad",)
        if recorded and n._op.name in ("scatter_add", "sum"):
            made.setdefault(n._op.name, set()).add(n._scope)
            assert where[f"n{i}"] == cluster_of(n._scope)
    for name in ("scatter_add", "sum"):
        assert made[name] == {("grad", "dir=forward", f"t={t}") for t in range(T)}, name
    adds = {n._scope for n in order if n._op is not None and n._op.name == "add"
            and id(n) not in forward and len(n._scope) == 3}  # accumulation of x's gradient
    assert ("grad", "dir=forward", "t=0") in adds


def test_group_steps_false_draws_no_cluster_but_still_marks_the_gradient():
    _, dw, lstm = lstm_grad()
    dot = draw_graph(dw, params=lstm, group_steps=False).source
    assert "subgraph" not in dot and "grad t=" not in dot
    assert re.search(r'label="mul\\n\(1, 3\)" color="#[0-9a-f]{6}" shape=box', dot)


def test_saved_values_are_grey_edges_that_do_not_rank_the_gradient():
    _, dw, lstm = lstm_grad()
    dot = draw_graph(dw, params=lstm).source
    where = homes(dot)
    saved = re.findall(r"(n\d+) -> (n\d+) \[color=gray60 constraint=false\]", dot)
    assert saved
    for src, dst in saved:
        assert not (where[src] or "").startswith("cluster_grad")
        assert where[dst].startswith("cluster_grad")
    for src, dst in re.findall(r"(n\d+) -> (n\d+)$", dot, flags=re.MULTILINE):
        assert (where[src] or "").startswith("cluster_grad") or not (
            where[dst] or "").startswith("cluster_grad")


def test_same_program_gives_identical_gradient_dot_text():
    first = draw_graph(lstm_grad()[1]).source
    assert draw_graph(lstm_grad()[1]).source == first


@pytest.mark.parametrize("layers", [1, 2])
def test_stacks_get_grad_clusters_per_layer_direction_and_step(layers):
    rng = np.random.default_rng(2)
    gru = nn.GRU(2, 3, num_layers=layers, bidirectional=True, batch_first=True)
    out, _ = gru(Tensor(rng.standard_normal((1, T, 2)), requires_grad=True))
    weights = [gru.weight_hh_l0, gru.weight_hh_l0_reverse]
    grads = autograd.grad((out ** 2).mean(), weights, create_graph=True)
    found = clusters(draw_graph(grads[0] + grads[1], params=gru).source)
    for k in range(layers):
        for direction, ran in (("forward", [2, 1, 0]), ("backward", [0, 1, 2])):
            parent = f"cluster_grad_layer{k}_{direction}"
            assert found[parent][0] == f"cluster_grad_layer{k}"
            steps = [c for c, (up, _) in found.items() if up == parent]
            assert steps == [f"{parent}_t{t}" for t in ran]  # the order the backward ran
    names = list(found)
    if layers == 2:  # the backward runs layer 1 first
        assert names.index("cluster_grad_layer1") < names.index("cluster_grad_layer0")


def test_keras_style_bidirectional_gets_grad_clusters_per_direction():
    rng = np.random.default_rng(3)
    layer = nn.Bidirectional(nn.Recurrent(nn.LSTMCell(2, 3), return_sequences=True))
    out = layer(Tensor(rng.standard_normal((1, T, 2)), requires_grad=True))
    params = dict(layer.named_parameters())
    grads = autograd.grad((out ** 2).mean(), list(params.values()), create_graph=True)
    found = clusters(draw_graph(sum(g.sum() for g in grads), params=layer).source)
    assert [c for c, (up, _) in found.items() if up == "cluster_grad_forward"] == [
        f"cluster_grad_forward_t{t}" for t in (2, 1, 0)]
    assert [c for c, (up, _) in found.items() if up == "cluster_grad_backward"] == [
        f"cluster_grad_backward_t{t}" for t in (0, 1, 2)]


def test_max_steps_elides_the_gradient_steps_too():
    _, dw, lstm = lstm_grad(steps=6)
    dot = draw_graph(dw, params=lstm, max_steps=1).source
    assert grad_steps(dot) == ["cluster_grad_layer0_forward_t5", "cluster_grad_layer0_forward_t0"]
    assert dot.count("… 4 steps …") == 2  # one in the forward, one in its derivative


def test_second_derivative_draws_nested_grad_grad_clusters():
    _, dw, lstm = lstm_grad(steps=2)
    s = (dw * dw).sum()
    first = {n._scope for n in _walk(s._op) if n._op is not None}
    (ddw,) = autograd.grad(s, lstm.weight_hh_l0, create_graph=True)
    order = _walk(ddw._op)
    deeper = [n for n in order if n._op is not None and n._scope[:2] == ("grad", "grad")]
    assert deeper and all(n._scope[1:] in first for n in deeper)
    dot = draw_graph(ddw, params=lstm).source
    found = clusters(dot)
    assert found["cluster_grad_grad"][0] == "cluster_grad"
    assert 'label="grad^2"' in found["cluster_grad_grad"][1]
    for t in range(2):
        name = f"cluster_grad_grad_layer0_forward_t{t}"
        assert found[name][0] == "cluster_grad_grad_layer0_forward"
        assert f'label="grad^2 t={t}"' in found[name][1]
        assert found[name][1] != found[f"cluster_grad_layer0_forward_t{t}"][1].replace(
            "grad t=", "grad^2 t=")  # its own colour
    # differentiating the derived BPTT (which ran t=1, t=0) runs t=0 first
    assert grad_steps(dot)[-2:] == ["cluster_grad_grad_layer0_forward_t0",
                                    "cluster_grad_grad_layer0_forward_t1"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot executable")
def test_render_a_gradient_to_svg(tmp_path):
    _, dw, lstm = lstm_grad()
    svg = (tmp_path / "grad.svg")
    render(draw_graph(dw, params=lstm), svg)
    text = svg.read_text()
    assert all(f">grad t={t}</text>" in text for t in range(T)) and ">weight_hh_l0</text>" in text
