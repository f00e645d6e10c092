"""examples/dynamics.py runs small in a fresh interpreter: its tables for every cell before and
after training, the chain-rule check, the summary and the PNGs it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*flags: str) -> subprocess.CompletedProcess:
    """The example in a fresh interpreter that finds this checkout of tinygrad_rnn."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(ROOT / "examples" / "dynamics.py"), *flags],
                          check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"})


def test_dynamics_example_prints_every_table_and_writes_the_pngs(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "dyn.png"
    proc = run("--epochs", "1", "--hidden", "4", "--drive", "2", "--limit", "100",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    heads = re.findall(r"^(RNN|LSTM|GRU) (at initialisation|after training): test accuracy "
                       r"[\d.]+%; largest Lyapunov exponents \(nats/step\)((?: [+-]\d\.\d{3}){3})$",
                       text, re.MULTILINE)
    assert [(c, p) for c, p, _ in heads] == [(c, p) for c in ("RNN", "LSTM", "GRU") for p in (
        "at initialisation", "after training")]
    for *_, exps in heads:
        values = [float(v) for v in exps.split()]
        assert values == sorted(values, reverse=True)
    rows = re.findall(r"^\s+(\d)((?:\s+\d\.\d{3}e[+-]\d\d){3})$", text, re.MULTILINE)
    assert [int(t) for t, _ in rows] == list(range(8)) * 6
    last = [[float(v) for v in r.split()] for t, r in rows if t == "7"]
    assert all(ratio == 1.0 and span == 1.0 for _, ratio, span in last)  # t=7: 1 by definition
    assert text.count("||dL/dh_t|| <= ||ds_7/ds_t|| * ||dL/dh_7||: holds at every t") == 6
    summary = re.findall(r"^(RNN|LSTM|GRU) (init|trained)\s+(?:\s+[+-]\d\.\d{3}){3}\s+\S+\s+\S+$",
                         text, re.MULTILINE)
    assert len(summary) == 6
    for png in (out, *(tmp_path / f"dyn_{c}.png" for c in ("rnn", "lstm", "gru"))):
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", png


@pytest.mark.parametrize("flags, message", [
    (("--hidden", "0"), "--hidden must be >= 1, got 0"),
    (("--drive", "-2"), "--drive must be >= 1, got -2"),
    (("--limit", "10"), "--limit must be at least 40"),
    (("--out", "/nonexistent-dir/x.png"), "--out: directory /nonexistent-dir does not exist"),
])
def test_dynamics_example_refuses_bad_flags_by_name(flags, message, tmp_path):
    proc = run(*flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []
