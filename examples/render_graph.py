"""Draw two unrolled recurrent graphs to SVG: an LSTM over T=3 and a 2-layer bidirectional GRU
over T=4, one cluster per layer, direction and time step, leaves named after the parameters.

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

from tinygrad_rnn import Tensor, nn
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


def lstm_graph(rng: np.random.Generator) -> graphviz.Digraph:
    """One-layer LSTM, x (B=1, T=3, I=2) -> out (1, 3, H=3); loss = mean(out**2)."""
    lstm = nn.LSTM(2, 3, batch_first=True)
    x = Tensor(rng.standard_normal((1, 3, 2)).astype(np.float32), requires_grad=True)
    out, _ = lstm(x)
    return draw_graph((out ** 2).mean(), params=lstm)


def gru_graph(rng: np.random.Generator) -> graphviz.Digraph:
    """2-layer bidirectional GRU, x (B=1, T=4, I=2) -> out (1, 4, 2*H=6); loss = mean(out**2)."""
    gru = nn.GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True)
    x = Tensor(rng.standard_normal((1, 4, 2)).astype(np.float32), requires_grad=True)
    out, _ = gru(x)
    return draw_graph((out ** 2).mean(), params=gru)


def counts(graph: graphviz.Digraph) -> str:
    """'<nodes> nodes, <clusters> clusters (<steps> time steps)', read from the DOT text."""
    src = graph.source
    nodes = len(re.findall(r"^\s*[ne]\d+ \[", src, flags=re.MULTILINE))
    clusters = src.count("subgraph cluster_")
    steps = len(re.findall(r'label="t=-?\d+"', src))
    return f"{nodes} nodes, {clusters} clusters ({steps} time steps)"


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=_cli.output_folder, default=DEFAULT_OUT,
                        help="folder for the SVG files (default: docs/images in this repository)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)  # fixed seed: the same files on every run
    graphs = {"lstm_t3": lstm_graph(rng), "gru_bidir_2layer_t4": gru_graph(rng)}
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
