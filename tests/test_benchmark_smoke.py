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
           "--contenders", "numpy", "tinygrad_lstm", "tinygrad_replay", "tinygrad_loop"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| contender | median ms | min ms |" in out
    for name in ("numpy", "tinygrad_lstm", "tinygrad_replay", "tinygrad_loop"):
        assert f"| {name} |" in out
    assert "### step time relative to numpy" in out
    # the summary's header names the replay column too (between the eager and loop ones)
    assert "| tinygrad_lstm | tinygrad_replay | tinygrad_loop |" in out


def test_replay_is_in_the_default_contenders(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import bench_lstm
    assert "tinygrad_replay" in bench_lstm.available_contenders()


def test_replay_worker_steps_equal_the_eager_worker(monkeypatch):
    """The replay contender computes the eager contender's loss, step after step."""
    monkeypatch.syspath_prepend(BENCH)
    import bench_lstm
    cfg = bench_lstm.QUICK["quick"]
    eager, replay = bench_lstm.build_tinygrad_lstm(cfg), bench_lstm.build_tinygrad_replay(cfg)
    for _ in range(3):
        assert replay() == pytest.approx(eager(), rel=1e-6)


def test_replay_worker_reports_time_and_memory(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import bench_lstm
    res = bench_lstm.run_worker("tinygrad_replay", bench_lstm.QUICK["quick"], reps=2, warmup=1,
                                threads=1)
    assert len(res["times"]) == 2 and res["py_peak_mb"] > 0 and res["rss_growth_mb"] >= 0
