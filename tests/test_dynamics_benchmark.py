"""Smoke test of benchmarks/bench_dynamics.py: it runs at tiny sizes and prints its table and
the verdict line (timing is never asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_dynamics_benchmark_prints_the_table_and_the_target_line():
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_dynamics.py"), "--quick"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| stage | min s | median s |" in out
    stages = re.findall(r"^\| ([\w(=)_ ]+) \| \d+\.\d{3} \| \d+\.\d{3} \|$", out, re.MULTILINE)
    assert stages == ["state_jacobians", "lyapunov(jacobians=J)", "jacobian_norms(jacobians=J)",
                      "lyapunov_exponents"]
    assert re.search(r"all step Jacobians \+ full Lyapunov spectrum: \d+\.\d\d s .*target < 10 s",
                     out)


def test_a_bad_flag_is_refused_by_name():
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_dynamics.py"), "--hidden", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--hidden must be >= 1, got 0" in proc.stderr
