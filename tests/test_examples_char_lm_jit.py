"""examples/char_lm.py replays its training step with tinygrad_rnn.jit by default; --no-jit runs
it eagerly. Both print the same lines and reach the same validation bits for the same seed."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import pytest

import tinygrad_rnn as tg

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "char_lm.py"
TINY = ["--hidden", "16", "--embed", "8", "--seq-len", "16", "--batch-size", "8",
        "--sample-len", "30", "--steps", "40", "--eval-every", "10", "--time-limit", "0"]


def example():
    spec = importlib.util.spec_from_file_location("char_lm_jit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "code.py"
    path.write_text("".join(f"def f{i % 7}(x, y):\n    return x * {i % 5} + y  # sum\n\n"
                            for i in range(300)), encoding="utf-8")
    return path


def run(tmp_path, text, capsys, *flags):
    out = tmp_path / f"lm{len(list(tmp_path.iterdir()))}.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("error", tg.ReplayFallbackWarning)  # every step replayable
        code = example().main(["--text", str(text), "--out", str(out), *TINY, *flags])
    assert code == 0
    stdout = capsys.readouterr().out
    lines = [ln for ln in stdout.splitlines() if "checkpoint" not in ln and "saved" not in ln]
    evals = re.findall(r"step \d+: train ([\d.]+), validation ([\d.]+) bits/char", stdout)
    return lines, evals


@pytest.mark.parametrize("flags", [
    [],
    ["--cell", "gru", "--layers", "2"],
    ["--cell", "rnn", "--dropout", "0.2", "--layers", "2"],
    ["--recurrent-dropout", "0.3", "--dropout", "0.2", "--layers", "2"],
], ids=["lstm", "gru-2-layers", "rnn-dropout", "recurrent-dropout"])
def test_replayed_and_eager_runs_print_the_same_bits(tmp_path, text, capsys, flags):
    # 40 steps over 5 chunks a pass: several passes, each starting from a zero state (its own
    # recording) then carrying the state; the output (train and validation bits at every
    # evaluation, the best validation, the sample) is the same, line for line
    jit_lines, jit_evals = run(tmp_path, text, capsys, *flags)
    eager_lines, eager_evals = run(tmp_path, text, capsys, "--no-jit", *flags)
    assert len(jit_evals) == 4 and jit_evals == eager_evals
    assert jit_lines == eager_lines


def test_help_documents_no_jit(capsys):
    module = example()
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--no-jit" in out and "eagerly" in out and "tinygrad_rnn.jit" in out
    assert "--no-jit" in module.__doc__


def test_no_jit_takes_no_value(capsys):
    with pytest.raises(SystemExit) as info:
        example().main(["--no-jit=1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--no-jit" in err and err.count("\n") == 1
