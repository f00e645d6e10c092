"""Each training example runs end to end with tiny settings and prints its result line."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECONDS = r"\(1 epochs, [\d.]+ s\)$"

TINY = {
    "binary_subtraction": (["--hidden", "4", "--train-size", "64"],
                           (r"^binary_subtraction: bit accuracy [\d.]+%, whole-number accuracy "
                            r"[\d.]+% on 1000 held-out pairs ")),
    "echo": (["--hidden", "4", "--train-size", "64", "--steps", "5"],
             r"^echo: held-out MSE [\d.e+-]+ on 500 sequences of 5 steps "),
    "spiral": (["--hidden", "8", "--per-class", "20"],
               r"^spiral: training accuracy [\d.]+% on 60 points "),
}


def run_example(name: str, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *flags],
                          capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


@pytest.mark.parametrize("name", sorted(TINY))
def test_example_runs_tiny_and_prints_its_result(name, tmp_path):
    flags, line = TINY[name]
    proc = run_example(name, *flags, "--epochs", "1", "--seed", "1", "--no-progress",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.match(line + SECONDS, proc.stdout.strip()), proc.stdout
    assert proc.stderr == ""  # --no-progress: no bar


def test_example_shows_the_bar_and_writes_the_plot(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    proc = run_example("spiral", *TINY["spiral"][0], "--epochs", "1", "--plot", "h.png",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stderr and "loss=" in proc.stderr
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
