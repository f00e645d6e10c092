"""Draw unrolled recurrent graphs to SVG: an LSTM over T=3, the BPTT derived from it (the graph
of d loss / d weight_hh_l0 recorded by autograd.grad with create_graph=True) and a 2-layer
bidirectional GRU over T=4, one cluster per layer, direction and time step (and per step of the
derived BPTT, `grad t=<k>`, last step first), leaves named after the parameters.

    python examples/render_graph.py [--out DIR]      # default: docs/images in this repository

Rendering needs Graphviz's `dot`. Without it the DOT source is written instead (render it later
with `dot -Tsvg name.dot -o name.svg`) and the script exits with status 1.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import graphviz
import numpy as np

from tinygrad_rnn import Tensor, autograd, nn
from tinygrad_rnn.viz import draw_graph, render

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
# Tighter than dot's defaults (0.5 and 0.25 inch): the same picture, a fifth smaller.
LAYOUT = {"ranksep": "0.25", "nodesep": "0.15"}
NO_DOT = ("Graphviz's `dot` executable was not found on PATH, so only the DOT source was "
          "written. Install Graphviz (`apt-get install graphviz` on Debian/Ubuntu, `brew install "
          "graphviz` on macOS; the `graphviz` Python package alone is not enough) and rerun, or "
          "render each file with `dot -Tsvg NAME.dot -o NAME.svg`.")


def lstm_graphs(rng: np.random.Generator) -> tuple[graphviz.Digraph, graphviz.Digraph]:
    """One-layer LSTM, x (B=1, T=3, I=2) -> out (1, 3, H=3); loss = mean(out**2). Returns the
    forward graph of the loss and the graph of d loss / d weight_hh_l0 (12, 3), the derived
    BPTT, which reads the forward's saved values."""
    lstm = nn.LSTM(2, 3, batch_first=True)
    x = Tensor(rng.standard_normal((1, 3, 2)).astype(np.float32), requires_grad=True)
    out, _ = lstm(x)
    loss = (out ** 2).mean()
    (dw,) = autograd.grad(loss, lstm.weight_hh_l0, create_graph=True)
    return draw_graph(loss, params=lstm), draw_graph(dw, params=lstm)


def gru_graph(rng: np.random.Generator) -> graphviz.Digraph:
    """2-layer bidirectional GRU, x (B=1, T=4, I=2) -> out (1, 4, 2*H=6); loss = mean(out**2)."""
    gru = nn.GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True)
    x = Tensor(rng.standard_normal((1, 4, 2)).astype(np.float32), requires_grad=True)
    out, _ = gru(x)
    return draw_graph((out ** 2).mean(), params=gru)


def counts(graph: graphviz.Digraph) -> str:
    """'<nodes> nodes, <clusters> clusters (<steps> time steps[, <k> gradient steps])', read
    from the DOT text."""
    src = graph.source
    nodes = len(re.findall(r"^\s*[ne]\d+ \[", src, flags=re.MULTILINE))
    clusters = src.count("subgraph cluster_")
    steps = len(re.findall(r'label="t=-?\d+"', src))
    grad_steps = len(re.findall(r'label="grad(?:\^\d+)? t=-?\d+"', src))
    more = f", {grad_steps} gradient steps" if grad_steps else ""
    return f"{nodes} nodes, {clusters} clusters ({steps} time steps{more})"


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=_cli.output_folder, default=DEFAULT_OUT,
                        help="folder for the SVG files (default: docs/images in this repository)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)  # fixed seed: the same files on every run
    lstm, lstm_grad = lstm_graphs(rng)
    graphs = {"lstm_t3": lstm, "lstm_t3_grad": lstm_grad, "gru_bidir_2layer_t4": gru_graph(rng)}
    have_dot = shutil.which("dot") is not None
    for name, graph in graphs.items():
        graph.graph_attr.update(LAYOUT)
        if have_dot:
            path = render(graph, out / f"{name}.svg")
        else:
            path = out / f"{name}.dot"
            path.write_text(graph.source)
        print(f"wrote {path}: {counts(graph)}")
    if not have_dot:
        print(NO_DOT, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
