"""examples/gradient_flow.py and examples/gradcheck_cells.py run small in a fresh interpreter:
the files they promise exist, their tables are printed, their exit codes are right."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *flags: str) -> subprocess.CompletedProcess:
    """The example in a fresh interpreter that finds this checkout of tinygrad_rnn."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *flags],
                          check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"})


def test_gradient_flow_writes_the_plot_and_both_tables(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "flow.png"
    proc = run("gradient_flow.py", "--T", "12", "--steps", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    text = proc.stdout
    header = re.search(r"^\s+t\s+RNN h\s+LSTM h\s+LSTM c\s+GRU h\s+LSTM f\+1 h\s+LSTM f\+1 c$",
                       text, re.MULTILINE)
    assert header, text
    rows = re.findall(r"^\s+(\d+)((?:\s+\d\.\d{3}e[+-]\d\d){6})$", text, re.MULTILINE)
    assert [int(t) for t, _ in rows] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    first, last = ([float(v) for v in rows[i][1].split()] for i in (0, -1))
    assert all(a < b for a, b in zip(first, last))  # loss at the last step: t=0 gets the least
    assert re.search(r"^ratio(\s+\d\.\d\de[+-]\d\d){6}", text, re.MULTILINE)
    steps = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$",
                       text.split("Part 2")[1], re.MULTILINE)
    assert [s[0] for s in steps] == ["0", "1", "2"]
    assert steps[0][1] == steps[0][3] and steps[0][2] == steps[0][4]  # same start; pre-clip norm


def test_gradcheck_cells_passes_and_prints_every_parameter():
    proc = run("gradcheck_cells.py", "--T", "3", "--hidden", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(r"^(.+?)\s+(cell\.\w+)\s+\([\d, ]+\)\s+(\S+)\s+(\S+)\s+ok$", proc.stdout,
                      re.MULTILINE)
    cells = {r[0].strip() for r in rows}
    assert cells == {"RNNCell tanh", "RNNCell relu", "LSTMCell", "GRUCell", "IndRNNCell (custom)"}
    assert len(rows) == 4 * 4 + 3
    assert all(float(r[3]) < 1e-5 for r in rows)
    assert "all 5 cells passed" in proc.stdout


def test_gradcheck_cells_exits_non_zero_on_a_planted_bug():
    proc = run("gradcheck_cells.py", "--T", "3", "--hidden", "3", "--plant-bug")
    assert proc.returncode == 1
    assert "1 of 5 cells failed" in proc.stdout
    assert re.search(r"IndRNNCell \(custom\)\s+cell\.u\s+\(3,\)\s+\S+\s+\S+\s+FAIL", proc.stdout)
    assert "gradcheck_module: cell.weight (3, 3) worst at" in proc.stderr
    assert "used in steps t=0..2 of layer 0 direction forward" in proc.stderr
    assert "--plant-bug" not in run("gradcheck_cells.py", "--help").stdout  # hidden flag
