"""Smoke tests of the real-data examples: tiny settings, run as a user would (a subprocess).

Each asserts that the loss falls and that the outputs exist (checkpoint, plot, table); the
IMDB one runs on a small npz written here; char_lm's bad inputs exit 2 without a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(script: str, *args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], check=False,
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def floats(pattern: str, text: str) -> list[float]:
    return [float(v) for v in re.findall(pattern, text)]


# ---- char_lm --------------------------------------------------------------------------------

CODE = "".join(f"def f{i % 7}(x, y):\n    return x * {i % 5} + y  # sum\n\n" for i in range(600))
TINY = ("--hidden", "24", "--embed", "8", "--seq-len", "16", "--batch-size", "8",
        "--sample-len", "40")


@pytest.fixture(scope="module")
def char_lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("char_lm")
    text = folder / "code.py"
    text.write_text(CODE, encoding="utf-8")
    ckpt = folder / "runs" / "lm.npz"  # the folder does not exist yet: the script makes it
    proc = run("char_lm.py", "--text", str(text), "--steps", "120", "--eval-every", "40",
               "--dropout", "0.1", "--out", str(ckpt), *TINY)
    return ok(proc), ckpt


def test_char_lm_learns_saves_and_samples(char_lm_run):
    out, ckpt = char_lm_run
    val = floats(r"validation ([\d.]+) bits/char", out)
    unigram = floats(r"unigram baseline ([\d.]+) bits/char", out)
    assert len(val) == 3 and val[-1] < val[0]
    assert min(val) < unigram[0]
    assert ckpt.is_file()
    assert "sample (temperature" in out


def test_char_lm_sample_only_reloads_the_checkpoint(char_lm_run):
    _, ckpt = char_lm_run
    out = ok(run("char_lm.py", "--sample-only", str(ckpt), "--sample-len", "30",
                 "--prime", "def ", "--temperature", "0.5"))
    assert "loaded" in out and "\ndef " in out


def test_char_lm_default_text_is_the_stdlib(tmp_path):
    out = ok(run("char_lm.py", "--steps", "2", "--eval-every", "2", "--hidden", "8",
                 "--embed", "4", "--sample-len", "5", "--out", str(tmp_path / "lm.npz")))
    assert "stdlib files from" in out
    assert (tmp_path / "lm.npz").is_file()


@pytest.mark.parametrize("kind", ["missing", "binary", "not_utf8", "too_short"])
def test_char_lm_bad_text_exits_2_with_a_message(tmp_path, kind):
    path = tmp_path / f"{kind}.txt"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "not_utf8":
        path.write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 50)
    elif kind == "too_short":
        path.write_text("print('hi')\n", encoding="utf-8")
    proc = run("char_lm.py", "--text", str(path), "--out", str(tmp_path / "x.npz"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "error:" in proc.stderr and str(path) in proc.stderr
    assert not (tmp_path / "x.npz").exists()


# ---- sequence_digits ------------------------------------------------------------------------

def test_sequence_digits_table():
    pytest.importorskip("sklearn")
    out = ok(run("sequence_digits.py", "--epochs", "3", "--limit", "300", "--hidden", "16"))
    rows = re.findall(r"^(RNN|LSTM|GRU)\s+[\d,]+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%", out, re.MULTILINE)
    assert [r[0] for r in rows] == ["RNN", "LSTM", "GRU"]
    for _, first, last, _acc in rows:
        assert float(last) < float(first)


# ---- sunspots -------------------------------------------------------------------------------

def test_sunspots_forecast_and_plot(tmp_path):
    pytest.importorskip("statsmodels")
    png = tmp_path / "plots" / "sunspots.png"
    out = ok(run("sunspots.py", "--epochs", "4", "--hidden", "8", "--plot", str(png)))
    losses = floats(r"train loss ([\d.]+)", out)
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert re.search(r"GRU forecast\s+[\d.]+", out) and re.search(r"persistence\s+[\d.]+", out)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- imdb_sentiment -------------------------------------------------------------------------

def write_imdb(path: Path, n: int = 160, seed: int = 0) -> None:
    """A Keras-layout npz: object arrays of int lists; words 4-6 mark positive reviews."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        xs, ys = np.empty(n, dtype=object), rng.integers(0, 2, n)
        for i in range(n):
            words = rng.integers(10, 90, int(rng.integers(4, 30)))
            words[rng.integers(0, len(words), 3)] = rng.integers(4, 7) if ys[i] else 7
            xs[i] = [int(w) for w in words]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = xs, ys
    np.savez(path, **arrays)


def test_imdb_sentiment_on_a_small_npz(tmp_path):
    path = tmp_path / "imdb.npz"
    write_imdb(path)
    out = ok(run("imdb_sentiment.py", "--path", str(path), "--epochs", "3", "--num-words",
                 "100", "--maxlen", "20", "--limit", "120", "--hidden", "16", "--embed", "8",
                 "--batch-size", "16", "--lr", "1e-2"))
    losses = floats(r"train loss ([\d.]+)", out)
    acc = floats(r"validation accuracy ([\d.]+)%", out)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert len(acc) == 3 and "120 training" in out


@pytest.mark.parametrize("args", [(), ("--path", "nowhere/imdb.npz")])
def test_imdb_sentiment_without_the_file_says_what_it_needs(tmp_path, args):
    proc = run("imdb_sentiment.py", *args, home=tmp_path)  # empty HOME: no Keras cache
    assert proc.returncode == 2
    assert "imdb.npz" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
