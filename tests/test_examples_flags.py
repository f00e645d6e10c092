"""Every example's flags: a bad value exits 2 with ONE line on stderr naming the flag and what
was expected, before anything runs (no output, no file). The grid runs each example's
`main(argv)` in this process (fast); one bad flag per example runs as a user would, in a
subprocess."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@functools.cache
def example(name: str):
    """examples/<name>.py imported as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"flags_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ints(flag, low, high=None):
    """Bad values of an integer flag in [low, high] and the phrase the error must contain."""
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    bad = [str(low - 1), "1.5", "many", ""] + ([str(high + 1)] if high is not None else [])
    return [(flag, value, expected) for value in bad]


def positive(flag, allow_inf=False):
    """Bad values of a float flag that must be > 0 (finite unless allow_inf)."""
    bad = ["0", "-1", "nan", "abc"] + ([] if allow_inf else ["inf", "1e400"])
    return [(flag, value, "a number > 0") for value in bad]


SEED = [("--seed", "-1", "an integer from 0 to 4294967295"),
        ("--seed", str(2**32), "an integer from 0 to 4294967295"),
        ("--seed", "s", "an integer from 0 to 4294967295")]
PLOT = [("--plot", "{tmp}", "expected a file name, got the folder"),
        ("--plot", "{file}/h.png", "is a file, so no folder can be made under it")]

FLAGS = {
    "binary_subtraction": ints("--epochs", 1) + ints("--hidden", 1, 4096)
    + ints("--train-size", 1, 10**6) + ints("--batch-size", 1) + positive("--lr") + SEED + PLOT,
    "echo": ints("--epochs", 1) + ints("--hidden", 1, 4096) + ints("--train-size", 1, 10**6)
    + ints("--steps", 1, 10**4) + ints("--batch-size", 1) + positive("--lr") + SEED + PLOT,
    "spiral": ints("--epochs", 1) + ints("--hidden", 1, 4096) + ints("--per-class", 1, 10**6)
    + ints("--batch-size", 1) + positive("--lr") + SEED + PLOT,
    "sunspots": ints("--window", 1, 300) + ints("--test-years", 1, 300)
    + ints("--hidden", 1, 4096) + ints("--epochs", 1) + ints("--batch-size", 1)
    + positive("--lr") + SEED + PLOT,
    "sequence_digits": ints("--hidden", 1, 4096) + ints("--epochs", 1)
    + ints("--batch-size", 1) + positive("--lr") + ints("--limit", 40) + SEED,
    "imdb_sentiment": ints("--num-words", 4, 10_000_000) + ints("--maxlen", 1, 100_000)
    + ints("--epochs", 1) + ints("--limit", 1) + ints("--embed", 1, 4096)
    + ints("--hidden", 1, 4096) + ints("--batch-size", 1) + positive("--lr") + SEED,
    "char_lm": ints("--hidden", 1, 4096) + ints("--layers", 1, 16) + ints("--embed", 1, 4096)
    + ints("--seq-len", 1, 100_000) + ints("--batch-size", 1, 100_000) + ints("--steps", 1)
    + ints("--eval-every", 1) + ints("--sample-len", 0, 1_000_000) + positive("--lr")
    + positive("--clip", allow_inf=True) + positive("--temperature") + SEED
    + [("--dropout", v, "a number >= 0 and < 1") for v in ("1", "-0.1", "nan", "1.5", "x")]
    + [("--time-limit", v, "a number >= 0") for v in ("-1", "nan", "-inf", "soon")],
    "custom_cell": ints("--steps", 1) + ints("--hidden", 1, 1024) + ints("--seq-len", 1, 10_000)
    + positive("--lr"),
    "gradcheck_cells": ints("--T", 1, 1000) + ints("--hidden", 1, 256) + ints("--batch", 1, 1000)
    + SEED,
    "gradient_flow": ints("--T", 1, 10_000) + ints("--steps", 1, 100_000) + positive("--clip")
    + positive("--lr") + [("--scale", v, "a number (finite)") for v in ("nan", "inf", "big")]
    + [("--out", "{tmp}", "expected a file name, got the folder")],
    "render_graph": [("--out", "{file}", "expected a folder, got the file"),
                     ("--out", "{file}/sub", "is a file, so no folder can be made under it")],
}
CASES = [(name, flag, value, expected) for name, cases in FLAGS.items()
         for flag, value, expected in cases]


def place(value: str, tmp_path: Path) -> str:
    """{tmp}: the test's (empty) folder; {file}: a file in another folder."""
    if "{file}" in value:
        other = tmp_path.parent / f"{tmp_path.name}-file"
        other.mkdir(exist_ok=True)
        (other / "f").write_text("x")
        value = value.replace("{file}", str(other / "f"))
    return value.replace("{tmp}", str(tmp_path))


def run_main(name, argv, tmp_path, monkeypatch, capsys):
    """main(argv) in tmp_path; returns (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        example(name).main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("name, flag, value, expected", CASES,
                         ids=[f"{c[0]}{c[1]}={c[2]}" for c in CASES])
def test_a_bad_flag_value_exits_2_with_one_line(tmp_path, monkeypatch, capsys, name, flag,
                                                 value, expected):
    raw, value = value, place(value, tmp_path)
    code, out, err = run_main(name, [f"{flag}={value}"], tmp_path, monkeypatch, capsys)
    assert code == 2
    assert out == "" and err.count("\n") == 1, err
    assert re.match(rf"\S+: error: argument {flag}: .*\(see --help\)\n$", err), err
    assert expected in err
    if "{" not in raw:  # a path is quoted by the error as it was given
        assert f"got {value!r}" in err
    assert os.listdir(tmp_path) == []  # nothing written


CROSS = [
    ("char_lm", ["--hidden", "4096", "--layers", "16"],
     (r"--hidden 4096, --embed 32 and --layers 16 make [\d,]+ parameters, more than this "
     r"example's limit of 50,000,000")),
    ("char_lm", ["--cell", "transformer"], r"argument --cell: invalid choice: 'transformer'"),
    ("imdb_sentiment", ["--num-words", "10000000", "--embed", "4096"],
     r"--num-words 10000000 times --embed 4096 is over 50,000,000 embedding weights"),
    ("sequence_digits", ["--cells", "cnn"], r"argument --cells: invalid choice: 'cnn'"),
    ("sunspots", ["--window", "200", "--test-years", "100"],
     r"--window 200 and --test-years 100 leave too few of the 309 years for training"),
] + [(name, ["--hiden", "3"], r"unrecognized arguments: --hiden 3") for name in sorted(FLAGS)]


@pytest.mark.parametrize("name, argv, match", CROSS, ids=[f"{c[0]}-{c[1][0]}" for c in CROSS])
def test_other_bad_command_lines_exit_2_with_one_line(tmp_path, monkeypatch, capsys, name, argv,
                                                      match):
    if name == "sunspots":
        pytest.importorskip("statsmodels")
    code, out, err = run_main(name, argv, tmp_path, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert "Traceback" not in err and os.listdir(tmp_path) == []
    assert out == "" or name == "sunspots"  # sunspots knows its series' length after loading


def test_the_flag_types_accept_their_bounds():
    cli = example("char_lm")._cli
    assert cli.integer(1, 5)("5") == 5 and cli.integer(0)("0") == 0
    assert cli.number(0, allow_inf=True)("inf") == float("inf")
    assert cli.number(0, 1, below=True)("0") == 0.0
    assert cli.seed(str(2**32 - 1)) == 2**32 - 1


# ---- as a user runs them ---------------------------------------------------------------------

ONE_PER_EXAMPLE = {
    "binary_subtraction": ["--hidden", "0"], "echo": ["--batch-size", "0"],
    "spiral": ["--lr", "nan"], "sunspots": ["--epochs", "-1"],
    "sequence_digits": ["--limit", "10"], "imdb_sentiment": ["--maxlen", "0"],
    "char_lm": ["--clip", "-1"], "custom_cell": ["--seq-len", "0"],
    "gradcheck_cells": ["--T", "0"], "gradient_flow": ["--T", "0"],
    "render_graph": ["--out", __file__],
}


@pytest.mark.parametrize("name", sorted(ONE_PER_EXAMPLE))
def test_the_script_itself_exits_2_with_one_line(tmp_path, name):
    argv = ONE_PER_EXAMPLE[name]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"{name}.py: error: argument {argv[0]}: expected ")
    assert os.listdir(tmp_path) == []


def test_char_lm_time_limit_flag_rejects_minus_one_as_a_user_types_it(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "char_lm.py"), "--time-limit", "-1"],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr == ("char_lm.py: error: argument --time-limit: expected a number >= 0 "
                           "(inf allowed), got '-1' (see --help)\n")
