"""examples/char_lm.py --recurrent-dropout: checked like the other flags (one line, exit 2,
nothing written), and a tiny run with it learns, records it in the checkpoint and samples."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "char_lm.py"


def _main(argv, tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("char_lm_rd", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    return info.value.code, *capsys.readouterr()


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "1.5", "inf", "x", ""])
def test_a_bad_recurrent_dropout_exits_2_with_one_line(tmp_path, monkeypatch, capsys, value):
    code, out, err = _main([f"--recurrent-dropout={value}"], tmp_path, monkeypatch, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert re.match(r"\S+: error: argument --recurrent-dropout: expected a number >= 0 and < 1 "
                    rf"\(finite\), got {re.escape(repr(value))} \(see --help\)\n$", err), err
    assert os.listdir(tmp_path) == []  # nothing written


def test_a_tiny_run_with_recurrent_dropout_learns_and_records_it(tmp_path):
    text = tmp_path / "code.py"
    text.write_text("".join(f"def f{i % 7}(x):\n    return x * {i % 5}\n\n" for i in range(500)),
                    encoding="utf-8")
    ckpt = tmp_path / "lm.npz"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--text", str(text), "--steps", "90", "--eval-every", "30",
         "--recurrent-dropout", "0.3", "--hidden", "24", "--embed", "8", "--seq-len", "16",
         "--batch-size", "8", "--sample-len", "20", "--out", str(ckpt)],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
        text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "recurrent dropout 0.3" in proc.stdout
    val = [float(v) for v in re.findall(r"validation ([\d.]+) bits/char", proc.stdout)]
    assert len(val) == 3 and val[-1] < val[0]
    with np.load(ckpt) as npz:
        meta = json.loads(npz["__meta__"].tobytes().decode("utf-8"))
    assert meta["recurrent_dropout"] == 0.3
