"""draw_graph: DOT text of hand-unrolled RNNs (no Graphviz binary needed, except one render)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn import Tensor, graph_scope, nn
from tinygrad_rnn.nn import Module, Parameter
from tinygrad_rnn.viz import draw_graph, render

D, H = 2, 3


def make_params(rng: np.random.Generator, prefix: str = "cell") -> dict[str, Tensor]:
    shapes = {"weight_ih": (H, D), "weight_hh": (H, H), "bias": (H,)}
    return {f"{prefix}.{k}": Tensor(rng.standard_normal(s), requires_grad=True)
            for k, s in shapes.items()}


def rnn_pass(xs: list[Tensor], p: dict[str, Tensor], prefix: str, reverse=False) -> list[Tensor]:
    """One direction of a tanh RNN over per-position inputs, labelled like the real layers."""
    w_ih, w_hh, b = (p[f"{prefix}.{k}"] for k in ("weight_ih", "weight_hh", "bias"))
    h, out = Tensor(np.zeros((1, H))), [None] * len(xs)
    with graph_scope("dir=backward" if reverse else "dir=forward"):
        for t in (reversed(range(len(xs))) if reverse else range(len(xs))):
            with graph_scope(f"t={t}"):
                h = (xs[t] @ w_ih.T + h @ w_hh.T + b).tanh()
            out[t] = h
    return out


def unrolled(T: int, seed: int = 0):
    """(loss, params) of a one-layer forward RNN over T steps; loss is outside every step."""
    rng = np.random.default_rng(seed)
    p = make_params(rng)
    x = Tensor(rng.standard_normal((1, T, D)))
    xs = [x[:, t] for t in range(T)]
    return rnn_pass(xs, p, "cell")[-1].sum(), p


def step_clusters(dot: str) -> list[str]:
    return re.findall(r"subgraph (cluster_\w*t\d+) \{", dot)


def test_one_cluster_per_step_and_every_parameter_named():
    loss, p = unrolled(T=5)
    dot = draw_graph(loss, params=p).source
    assert step_clusters(dot) == [f"cluster_forward_t{t}" for t in range(5)]
    assert dot.count('label="t=') == 5 and 'label="dir=forward"' in dot
    for name in p:
        assert dot.count(f'label="{name}\\n') == 1  # shared weights drawn once
    assert "output: sum" in dot and "peripheries=2" in dot


def test_weights_are_drawn_outside_the_step_clusters():
    loss, p = unrolled(T=3)
    dot = draw_graph(loss, params=p).source
    first_step = dot.index("subgraph cluster_forward_t0")
    for name in p:
        assert dot.index(f'label="{name}\\n') < first_step


def test_same_program_gives_identical_dot_text():
    assert draw_graph(*unrolled(T=6)).source == draw_graph(*unrolled(T=6)).source
    here = Path(__file__).resolve().parent
    code = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]
        from test_viz import unrolled; from tinygrad_rnn.viz import draw_graph
        print(draw_graph(*unrolled(T=4)).source)
    """)  # a fresh interpreter each time: other ids and hash seeds, same text
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and "cluster_forward_t3" in runs[0]


def test_group_steps_false_draws_no_cluster():
    loss, p = unrolled(T=4)
    dot = draw_graph(loss, params=p, group_steps=False).source
    assert "subgraph" not in dot and "cluster" not in dot
    assert dot.count("tanh") == 4


def test_leaf_names_from_a_module_and_from_pairs():
    class Cell(Module):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(np.ones((H, D)))

    class Net(Module):
        def __init__(self):
            super().__init__()
            self.cell = Cell()

    net, x = Net(), Tensor(np.ones((1, D)), requires_grad=True)
    out = (x @ net.cell.weight.T).sum()
    assert 'label="cell.weight\\n(3, 2)"' in draw_graph(out, params=net).source
    dot = draw_graph(out, params=[("w", net.cell.weight)], show_shapes=False).source
    assert re.search(r'label="?w"?[ \]]', dot) and "(3, 2)" not in dot
    assert draw_graph(out).source.count('label="input\\n') == 2  # no params: both inputs


def test_max_steps_keeps_first_and_last_steps_and_one_elision_node():
    loss, p = unrolled(T=500)
    full = draw_graph(loss, params=p).source
    dot = draw_graph(loss, params=p, max_steps=2).source
    assert step_clusters(dot) == ["cluster_forward_t0", "cluster_forward_t1",
                                  "cluster_forward_t498", "cluster_forward_t499"]
    assert dot.count("… 496 steps …") == 1 and dot.count("steps …") == 1
    assert "e0 -> " in dot and " -> e0" in dot  # the picture stays connected
    for name in p:
        assert f'label="{name}\\n' in dot
    n_nodes = [len(re.findall(r"^\s+\w+ \[label=", d, re.MULTILINE)) for d in (dot, full)]
    assert n_nodes[0] < 60 and n_nodes[1] > 4000


def test_nested_layer_and_direction_clusters_and_max_steps_per_direction():
    rng = np.random.default_rng(1)
    T, p = 6, {}
    for k in range(2):
        p.update(make_params(rng, f"l{k}"))
        p.update(make_params(rng, f"l{k}r"))
    x = Tensor(rng.standard_normal((1, T, D)))
    xs = [x[:, t] for t in range(T)]
    for k in range(2):
        with graph_scope(f"layer={k}"):
            fw, bw = rnn_pass(xs, p, f"l{k}"), rnn_pass(xs, p, f"l{k}r", reverse=True)
        xs = [(f + b)[:, :D] for f, b in zip(fw, bw)]
    loss = sum(xs[1:], xs[0]).sum()
    dot = draw_graph(loss, params=p).source
    for k in range(2):
        for d in ("forward", "backward"):
            assert f"subgraph cluster_layer{k}_{d} {{" in dot
            assert all(f"subgraph cluster_layer{k}_{d}_t{t} {{" in dot for t in range(T))
    assert len(step_clusters(dot)) == 4 * T
    assert dot.index("cluster_layer1_backward_t5") > dot.index("cluster_layer1_backward {")
    short = draw_graph(loss, params=p, max_steps=1).source
    assert len(step_clusters(short)) == 4 * 2 and short.count("… 4 steps …") == 4


def test_real_recurrent_layer_one_cluster_per_step():
    layer = nn.Recurrent(nn.RNNCell(D, H), return_sequences=True)
    out = layer(Tensor(np.ones((1, 5, D), np.float32)))
    dot = draw_graph(out.sum(), params=layer).source
    assert step_clusters(dot) == [f"cluster_forward_t{t}" for t in range(5)]
    for name, _ in layer.named_parameters():
        assert dot.count(f'label="{name}\\n') == 1


def test_real_lstm_stack_nested_and_elided_per_layer_and_direction():
    lstm = nn.LSTM(D, H, num_layers=2, bidirectional=True, batch_first=True)
    out, (h_n, _) = lstm(Tensor(np.ones((1, 500, D), np.float32)))
    dot = draw_graph(out.sum() + h_n.sum(), params=lstm, max_steps=2).source
    for k in range(2):
        for d in ("forward", "backward"):
            assert f"subgraph cluster_layer{k}_{d} {{" in dot
            assert [c for c in step_clusters(dot) if c.startswith(f"cluster_layer{k}_{d}_")] == [
                f"cluster_layer{k}_{d}_t{t}" for t in (0, 1, 498, 499)]
    assert dot.count("… 496 steps …") == 4
    for name, _ in lstm.named_parameters():
        assert dot.count(f'label="{name}\\n') == 1
    assert len(re.findall(r"^\s+\w+ \[label=", dot, re.MULTILINE)) < 400


def test_unknown_labels_become_generic_clusters_with_valid_ids():
    a = Tensor(np.ones(2), requires_grad=True)
    with graph_scope("my block"), graph_scope("t=0"):
        out = (a * 2.0).sum()
    with graph_scope("my-block"):
        out = out + 1.0
    dot = draw_graph(out).source
    names = re.findall(r"subgraph (\S+) \{", dot)
    assert names == ["cluster_my_block", "cluster_my_block_t0", "cluster_my_block_1"]


def test_show_grad_labels_and_shades_nodes_with_a_grad():
    loss, p = unrolled(T=3)
    loss.backward(retain_graph=True)
    dot = draw_graph(loss, params=p, show_grad=True).source
    for name, t in p.items():
        norm = float(np.linalg.norm(t.grad))
        assert f'label="{name}\\n({", ".join(map(str, t.shape))}' in dot.replace(",)", ")")
        assert f"|grad| {norm:.3g}" in dot
    assert dot.count("|grad|") == len(p)  # the root and constants have no grad
    assert dot.count("fillcolor=") == len(p)


def test_show_grad_includes_retained_non_leaf_grads():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = (a * 3.0).retain_grad()
    out = h.sum()
    out.backward(retain_graph=True)
    dot = draw_graph(out, show_grad=True).source
    assert dot.count("|grad|") == 2 and "|grad| 4.24" in dot and "|grad| 1.41" in dot


def test_freed_graph_is_a_clear_error():
    loss, p = unrolled(T=3)
    loss.backward()
    with pytest.raises(RuntimeError, match="before backward or use retain_graph=True"):
        draw_graph(loss, params=p)


def test_a_leaf_root_and_bad_arguments():
    w = Tensor(np.ones((2, 2)), requires_grad=True)
    dot = draw_graph(w, params={"w": w}).source
    assert 'label="output: w\\n(2, 2)"' in dot and "->" not in dot
    with pytest.raises(ValueError, match="max_steps"):
        draw_graph(w, max_steps=0)
    with pytest.raises(TypeError, match="expected a Tensor"):
        draw_graph(np.ones(2))


def test_render_without_dot_says_how_to_install_graphviz(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz") as err:
        render(draw_graph(unrolled(T=2)[0]), tmp_path / "g.svg")
    assert "brew install graphviz" in str(err.value)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` binary not installed")
def test_render_writes_an_svg(tmp_path):
    loss, p = unrolled(T=3)
    path = render(draw_graph(loss, params=p, max_steps=1), tmp_path / "rnn.svg")
    text = (tmp_path / "rnn.svg").read_text()
    assert path.endswith("rnn.svg") and "<svg" in text and "cell.weight_hh" in text
