"""Smoke tests of benchmarks/: the numpy baseline's gradients, and that the benchmark runs.

Timing is never asserted (timing stays out of tests). The benchmark run is restricted to the
numpy-side contenders: a torch worker spends seconds importing torch, and torch's own
correctness is the parity tests' business.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


@pytest.fixture
def numpy_lstm(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import numpy_lstm
    return numpy_lstm


def test_numpy_baseline_gradients_match_the_framework(numpy_lstm):
    refs = numpy_lstm.check(with_torch=False)
    assert refs == ["tinygrad_rnn nn.LSTM", "tinygrad_rnn cell loop"]


def test_numpy_baseline_check_catches_a_wrong_gradient(numpy_lstm, monkeypatch):
    right = numpy_lstm.lstm_step

    def off_by_a_bit(p, x, y):
        loss, grads = right(p, x, y)
        grads["weight_hh"][0, 0] += 1e-6
        return loss, grads
    monkeypatch.setattr(numpy_lstm, "lstm_step", off_by_a_bit)
    with pytest.raises(AssertionError, match="dweight_hh"):
        numpy_lstm.check(with_torch=False)


def test_quick_benchmark_prints_the_table():
    cmd = [sys.executable, os.path.join(BENCH, "bench_lstm.py"), "--quick",
           "--contenders", "numpy", "tinygrad_lstm", "tinygrad_loop"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| contender | median ms | min ms |" in out
    for name in ("numpy", "tinygrad_lstm", "tinygrad_loop"):
        assert f"| {name} |" in out
    assert "### step time relative to numpy" in out
