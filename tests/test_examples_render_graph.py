"""examples/render_graph.py: SVGs with parameter names and step clusters, or DOT files without `dot`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "render_graph.py"
STEPS = {"lstm_t3": 3, "lstm_t3_grad": 3, "gru_bidir_2layer_t4": 4}
PARAMS = {"lstm_t3": ["weight_ih_l0", "weight_hh_l0", "bias_hh_l0"],
          "lstm_t3_grad": ["weight_ih_l0", "weight_hh_l0", "bias_hh_l0"],
          "gru_bidir_2layer_t4": ["weight_hh_l0", "weight_hh_l0_reverse", "weight_hh_l1",
                                  "weight_hh_l1_reverse"]}


def run(out: Path, **env: str) -> subprocess.CompletedProcess:
    """The example in a fresh interpreter that finds this checkout of tinygrad_rnn."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=False,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path, **env})


def test_writes_both_graphs_with_names_and_step_clusters(tmp_path):
    proc = run(tmp_path)
    if shutil.which("dot") is None:  # no Graphviz: the DOT source and a non-zero exit instead
        assert proc.returncode == 1 and "apt-get install graphviz" in proc.stderr
        for name in STEPS:
            assert (tmp_path / f"{name}.dot").is_file()
        return
    assert proc.returncode == 0, proc.stderr
    for name, steps in STEPS.items():
        path = tmp_path / f"{name}.svg"
        assert f"wrote {path}: " in proc.stdout and " nodes, " in proc.stdout
        svg = path.read_text()
        assert "<svg" in svg
        for param in PARAMS[name]:
            assert f">{param}</text>" in svg
        for t in range(steps):
            assert f">t={t}</text>" in svg  # the step cluster's label
    grad = (tmp_path / "lstm_t3_grad.svg").read_text()
    spots = [grad.index(f">grad t={t}</text>") for t in (2, 1, 0)]  # the derived BPTT's steps,
    assert spots == sorted(spots)  # drawn from the last step to the first
    assert "(3 time steps, 3 gradient steps)" in proc.stdout
    assert not list(tmp_path.glob("*.dot"))  # nothing but the SVGs when `dot` is there


def test_without_dot_writes_dot_source_and_says_how_to_install(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run(tmp_path / "out", PATH=str(empty))  # sys.executable is absolute
    assert proc.returncode == 1
    assert "Graphviz" in proc.stderr and "apt-get install graphviz" in proc.stderr
    for name, steps in STEPS.items():
        dot = (tmp_path / "out" / f"{name}.dot").read_text()
        assert f"wrote {tmp_path / 'out' / name}.dot: " in proc.stdout
        assert 'label="weight_hh_l0\\n' in dot
        assert all(f'label="t={t}"' in dot for t in range(steps))
    grad = (tmp_path / "out" / "lstm_t3_grad.dot").read_text()
    assert re.findall(r"subgraph (cluster_grad_\w+_t\d+)", grad) == [
        f"cluster_grad_layer0_forward_t{t}" for t in (2, 1, 0)]
    assert not list((tmp_path / "out").glob("*.svg"))
