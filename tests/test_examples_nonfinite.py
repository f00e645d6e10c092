"""Examples never report a non-finite run as a result: a diverging run says so, naming the step,
and exits 1; char_lm never reloads or samples an older run's checkpoint, and --sample-only
checks a checkpoint's metadata and array headers before reading any array."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn import train
from tinygrad_rnn.history import History

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@functools.cache
def example(name: str):
    spec = importlib.util.spec_from_file_location(f"nonfinite_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


# ---- fit-based examples ----------------------------------------------------------------------

def test_spiral_diverging_exits_1_naming_the_step(tmp_path):
    proc = run("spiral.py", "--lr", "1e12", "--epochs", "3", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""  # no "training accuracy" line
    assert error_lines(proc.stderr) == [
        ("spiral.py: error: training diverged: fit: the loss is inf at step 2 (epoch 1/3, batch "
        "2/10); training stopped before that update was applied; fit ran without a checkpoint")]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["binary_subtraction", "echo", "spiral"])
def test_fit_examples_turn_a_non_finite_error_into_exit_1(monkeypatch, capsys, name):
    def diverging_fit(*args, **kwargs):
        raise train.NonFiniteError("fit: the loss is nan at step 7 (epoch 1/1, batch 7/32); ...",
                                   0, 6, 7, History("loss", None))
    monkeypatch.setattr(train, "fit", diverging_fit)
    assert example(name).main(["--epochs", "1", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.endswith("error: training diverged: fit: the loss is nan at step 7 (epoch 1/1, "
                        "batch 7/32); ...\n")


def test_echo_reports_a_non_finite_mse_as_a_failure(monkeypatch, capsys):
    module = example("echo")
    monkeypatch.setattr(module, "run", lambda *a, **k: {"mse": float("nan"), "seconds": 0.0})
    assert module.main(["--no-progress"]) == 1
    assert capsys.readouterr().err.endswith("error: the held-out MSE is nan: the model's output "
                                            "is not finite\n")


# ---- examples with their own loop ------------------------------------------------------------

def test_sunspots_diverging_exits_1(tmp_path):
    pytest.importorskip("statsmodels")
    proc = run("sunspots.py", "--lr", "1e30", "--epochs", "2", cwd=tmp_path)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [("sunspots.py: error: training diverged: the loss is inf "
                                        "at epoch 1, batch 2; try a lower --lr")]
    assert "RMSE" not in proc.stdout


def test_sequence_digits_diverging_exits_1(tmp_path):
    pytest.importorskip("sklearn")
    proc = run("sequence_digits.py", "--lr", "1e300", "--epochs", "1", "--limit", "100",
               "--cells", "rnn", cwd=tmp_path)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [("sequence_digits.py: error: training diverged: the loss "
                                        "is nan at RNN epoch 1, batch 2; try a lower --lr")]
    assert "test acc" not in proc.stdout


def test_imdb_diverging_exits_1(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_examples_real_data import write_imdb
    path = tmp_path / "imdb.npz"
    write_imdb(path)
    proc = run("imdb_sentiment.py", "--path", str(path), "--epochs", "2", "--num-words", "100",
               "--maxlen", "20", "--hidden", "8", "--embed", "4", "--lr", "1e300", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith("imdb_sentiment.py: error: training diverged: the loss is ")
    assert "at epoch 1, batch " in line and "validation accuracy" not in proc.stdout


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_custom_cell_diverging_exits_1(capsys):
    assert example("custom_cell").main(["--lr", "1e6", "--steps", "50"]) == 1
    err = capsys.readouterr().err
    assert err.endswith("error: training diverged: the loss is inf at step 3; try a lower --lr\n")


def test_custom_cell_exits_1_when_the_gradient_check_fails(monkeypatch, capsys):
    module = example("custom_cell")

    def wrong(*args, **kwargs):
        raise module.tg.GradcheckError("gradcheck_module: w (1, 16) worst at (0, 3): ...")
    monkeypatch.setattr(module.tg, "gradcheck_module", wrong)
    assert module.main(["--steps", "2"]) == 1
    assert capsys.readouterr().err.endswith("error: the gradient check failed: "
                                            "gradcheck_module: w (1, 16) worst at (0, 3): ...\n")


@pytest.mark.parametrize("flags, code, says", [
    (["--lr", "1e300"], 1, "error: the clipped run diverged too (loss inf at step 1)"),
    (["--lr", "1e5", "--clip", "1e-300", "--steps", "30"], 0,
     "no clip: the loss turned inf at step 24: diverged, training stopped there"),
])
def test_gradient_flow_stops_a_diverging_run_and_says_so(tmp_path, monkeypatch, capsys, flags,
                                                         code, says):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert example("gradient_flow").main(["--T", "6", "--steps", "3", *flags]) == code
    out, err = capsys.readouterr()
    assert says in out + err


# ---- char_lm: divergence -----------------------------------------------------------------

CODE = "".join(f"def f{i % 7}(x, y):\n    return x * {i % 5} + y  # sum\n\n" for i in range(300))
TINY = ("--hidden", "16", "--embed", "8", "--seq-len", "16", "--batch-size", "8",
        "--sample-len", "10")


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "code.py"
    path.write_text(CODE, encoding="utf-8")
    return path


def test_char_lm_diverging_never_reports_or_samples_an_older_checkpoint(tmp_path, text):
    out = tmp_path / "runs" / "lm.npz"
    assert run("char_lm.py", "--text", str(text), "--steps", "4", "--eval-every", "2",
               "--out", str(out), *TINY, cwd=tmp_path).returncode == 0
    older = out.read_bytes()
    proc = run("char_lm.py", "--text", str(text), "--steps", "40", "--eval-every", "20",
               "--lr", "1e30", "--out", str(out), *TINY, cwd=tmp_path)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        (f"char_lm.py: error: training diverged: the loss is nan at step 2; this run saved no "
        f"checkpoint ({out} is as it was); try a lower --lr or --clip")]
    assert out.read_bytes() == older
    assert "sample" not in proc.stdout and "best validation" not in proc.stdout


class PoisonedF:
    """The functional module, except that training loss number `at` (1-based) is NaN."""

    def __init__(self, real, at):
        self.real, self.at, self.calls = real, at, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def cross_entropy(self, logits, target, **kwargs):
        loss = self.real.cross_entropy(logits, target, **kwargs)
        if logits.requires_grad:  # not validation, which runs under no_grad
            self.calls += 1
            if self.calls == self.at:
                return loss * float("nan")
        return loss


def test_char_lm_diverging_after_a_save_names_this_runs_checkpoint(tmp_path, text, monkeypatch,
                                                                  capsys):
    # PoisonedF counts calls in Python: a replayed step does not call it, so --no-jit
    module = example("char_lm")
    monkeypatch.setattr(module, "F", PoisonedF(module.F, at=4))
    out = tmp_path / "lm.npz"
    code = module.main(["--text", str(text), "--steps", "9", "--eval-every", "2",
                        "--out", str(out), "--no-jit", *TINY])
    assert code == 1
    stdout, err = capsys.readouterr()
    assert "error: training diverged: the loss is nan at step 4; this run's best checkpoint " \
           "(step 2, " in err
    assert err.endswith(f"bits/char) is in {out}; try a lower --lr or --clip\n")
    assert "sample" not in stdout and "best validation" not in stdout
    monkeypatch.undo()
    _, _, meta = module.load_checkpoint(str(out))  # finite, and this run's
    assert meta["step"] == 2


def test_char_lm_replayed_step_diverging_names_the_step_and_this_runs_checkpoint(
        tmp_path, text, monkeypatch, capsys):
    # the replay reads the parameters afresh: a NaN weight after update 3 makes the loss of
    # step 4 (a replayed step) NaN, and no update follows it
    module = example("char_lm")
    real = module.optim.Adam
    updates = []

    class Breaking(real):
        def step(self):
            super().step()
            updates.append(1)
            if len(updates) == 3:
                p = self.params[0]
                p._assign(np.full_like(p._data, np.nan))
    monkeypatch.setattr(module.optim, "Adam", Breaking)
    out = tmp_path / "lm.npz"
    code = module.main(["--text", str(text), "--steps", "9", "--eval-every", "2",
                        "--out", str(out), *TINY])
    assert code == 1 and len(updates) == 3
    stdout, err = capsys.readouterr()
    assert "error: training diverged: the loss is nan at step 4; this run's best checkpoint " \
           "(step 2, " in err
    assert "sample" not in stdout and "best validation" not in stdout
    monkeypatch.undo()
    _, _, meta = module.load_checkpoint(str(out))
    assert meta["step"] == 2


def test_char_lm_stops_on_a_non_finite_gradient_norm(monkeypatch, tmp_path, text, capsys):
    module = example("char_lm")
    real = module.optim.ClipGlobalNorm

    class Exploding(real):
        def __call__(self, params):
            for p in params:
                p.grad[...] = np.inf
            super().__call__(params)
    monkeypatch.setattr(module.optim, "ClipGlobalNorm", Exploding)
    out = tmp_path / "lm.npz"
    code = module.main(["--text", str(text), "--steps", "5", "--out", str(out), *TINY])
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "error: training diverged: the gradient norm is not finite at step 1 (" in err
    assert "embedding.weight" in err and "this run saved no checkpoint" in err


def test_char_lm_stops_on_a_non_finite_validation(monkeypatch, tmp_path, text, capsys):
    module = example("char_lm")
    monkeypatch.setattr(module, "evaluate", lambda *a, **k: float("nan"))
    code = module.main(["--text", str(text), "--steps", "5", "--eval-every", "3",
                        "--out", str(tmp_path / "lm.npz"), *TINY])
    assert code == 1
    assert "error: training diverged: the validation loss is nan at step 3; this run saved no " \
           "checkpoint" in capsys.readouterr().err


# ---- char_lm --sample-only: the checkpoint is checked before anything is allocated -----------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint written by char_lm (tiny) and its arrays."""
    folder = tmp_path_factory.mktemp("ckpt")
    text = folder / "code.py"
    text.write_text(CODE, encoding="utf-8")
    out = folder / "lm.npz"
    proc = run("char_lm.py", "--text", str(text), "--steps", "3", "--out", str(out), *TINY,
               cwd=folder)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as npz:
        return out, {k: npz[k] for k in npz.files}


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=array.dtype.kind == "O")
    return buf.getvalue()


def header_only(shape, descr="<f4") -> bytes:
    """An .npy header that claims `shape`, followed by no data at all."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def meta_bytes(text: str) -> np.ndarray:
    """A __meta__ entry as char_lm writes it: the JSON text's utf-8 bytes."""
    return np.frombuffer(text.encode("utf-8"), np.uint8)


def with_meta(state, **change):
    meta = json.loads(state["__meta__"].tobytes().decode("utf-8"))
    meta.update(change)
    return {**state, "__meta__": meta_bytes(json.dumps(meta))}


def write(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def arrays(state):
    return {f"{k}.npy": npy(v) for k, v in state.items()}


def crafted(kind, state):
    """Members of a bad checkpoint, and the regex its error must match."""
    n_head = state["head.bias"].shape[0]
    cases = {
        "huge hidden": (arrays(with_meta(state, hidden=10**6)),
                        r"__meta__ hidden must be an integer from 1 to 4096, got 1000000"),
        "zero embed": (arrays(with_meta(state, embed=0)),
                       r"__meta__ embed must be an integer from 1 to 4096, got 0"),
        "float layers": (arrays(with_meta(state, layers=1.0)),
                         r"__meta__ layers must be an integer from 1 to 16, got 1.0"),
        "bool hidden": (arrays(with_meta(state, hidden=True)),
                        r"__meta__ hidden must be an integer .* got True"),
        "string hidden": (arrays(with_meta(state, hidden="8")),
                          r"__meta__ hidden must be an integer .* got '8'"),
        "over budget": (arrays(with_meta(state, hidden=4096, layers=16)),
                        (r"__meta__ describes [\d,]+ parameters, more than this script's limit "
                        r"of 50,000,000")),
        "unknown cell": (arrays(with_meta(state, cell="transformer")),
                         r"__meta__ cell must be one of \['gru', 'lstm', 'rnn'\]"),
        "short vocab": (arrays(with_meta(state, vocab="\ufffd")), r"__meta__ vocab must be 2 to"),
        "vocab without UNK": (arrays(with_meta(state, vocab="abc")),
                              r"__meta__ vocab must be .* starting with U\+FFFD"),
        "repeated vocab": (arrays(with_meta(state, vocab="\ufffdaa")),
                           r"__meta__ vocab must be .* distinct"),
        "long vocab": (arrays(with_meta(state, vocab="\ufffd" + "".join(map(chr, range(300, 500))))),
                       r"__meta__ vocab must be 2 to 101"),
        "vocab not str": (arrays(with_meta(state, vocab=[1, 2])), r"__meta__ vocab must be"),
        "prime not str": (arrays(with_meta(state, prime=5)), r"__meta__ prime must be a string"),
        "val_bits not a number": (arrays(with_meta(state, val_bits="low")),
                                  r"__meta__ val_bits must be a number"),
        "meta not JSON": (arrays({**state, "__meta__": meta_bytes("{oops")}),
                          r"__meta__ is not valid JSON"),
        "meta a list": (arrays({**state, "__meta__": meta_bytes("[1, 2]")}),
                        r"__meta__ is not a JSON object"),
        "meta an array": (arrays({**state, "__meta__": np.array(["{}", "{}"])}),
                          r"no usable __meta__ entry"),
        "meta bytes": (arrays({**state, "__meta__": np.array(b"{}")}), r"no usable __meta__"),
        "meta huge": ({**arrays(state), "__meta__.npy": header_only((10**10,), "|u1")},
                      r"no usable __meta__ entry"),
        "meta a string": (arrays({**state, "__meta__": np.array("{}")}),
                          r"no usable __meta__ entry"),
        "meta not utf-8": (arrays({**state, "__meta__": np.array([0xff, 0xfe], np.uint8)}),
                           r"__meta__ is not valid JSON"),
        "no meta": (arrays({k: v for k, v in state.items() if k != "__meta__"}),
                    r"no usable __meta__ entry .* not written by char_lm\.py"),
        "claims 400 GB": ({**arrays(state), "head.weight.npy": header_only((10**6, 10**5))},
                          (r"arrays do not match its __meta__: head\.weight has shape "
                          r"\(1000000, 100000\) and dtype float32, expected \(\d+, 16\) float")),
        "wrong shape": (arrays({**state, "head.bias": np.zeros(n_head + 1, np.float32)}),
                        rf"head\.bias has shape \({n_head + 1},\) .*expected \({n_head},\)"),
        "int weights": (arrays({**state, "head.bias": np.zeros(n_head, np.int64)}),
                        r"head\.bias has shape .* and dtype int64, expected .* float"),
        "missing array": (arrays({k: v for k, v in state.items() if k != "head.bias"}),
                          r"arrays do not match its __meta__: missing head\.bias"),
        "extra array": (arrays({**state, "spy": np.zeros(2)}), r"unexpected spy"),
        "pickled member": ({**arrays(state), "evil.npy": npy(np.array([None], dtype=object))},
                           r"unexpected evil"),
        "pickled weights": ({**arrays(state),
                             "head.bias.npy": npy(np.array([None] * n_head, dtype=object))},
                            r"head\.bias has shape .* and dtype object, expected"),
        "not an array": ({**arrays(state), "notes.txt": b"hello"},
                         r"member 'notes\.txt' is not an array"),
        "npy version 9": ({**arrays(state), "head.bias.npy": b"\x93NUMPY\x09\x00" + b" " * 20},
                          r"not a checkpoint written by char_lm\.py|has \.npy format"),
        "NaN weights": (arrays({**state, "head.bias": np.full(n_head, np.nan, np.float32)}),
                        r"head\.bias holds NaN or inf \(saved from a diverged run\?\)"),
        "inf weights": (arrays({**state, "embedding.weight": state["embedding.weight"] * np.inf}),
                        r"embedding\.weight holds NaN or inf"),
    }
    return cases[kind]


CRAFTED = ["huge hidden", "zero embed", "float layers", "bool hidden", "string hidden",
           "over budget", "unknown cell", "short vocab", "vocab without UNK", "repeated vocab",
           "long vocab", "vocab not str", "prime not str", "val_bits not a number",
           "meta not JSON", "meta a list", "meta an array", "meta bytes", "meta huge", "no meta",
           "claims 400 GB", "wrong shape", "int weights", "missing array", "extra array",
           "pickled member", "pickled weights", "not an array", "npy version 9", "NaN weights",
           "inf weights"]


@pytest.mark.parametrize("kind", CRAFTED)
def test_sample_only_rejects_a_crafted_checkpoint_before_allocating(tmp_path, checkpoint, kind,
                                                                    monkeypatch):
    module = example("char_lm")
    members, match = crafted(kind, checkpoint[1])
    path = tmp_path / "bad.npz"
    write(path, members)
    built = []
    monkeypatch.setattr(module, "CharLM", lambda *a, **k: built.append(a))
    with pytest.raises(module.UsageError, match=rf"^--sample-only {path}: .*(?:{match})"):
        module.load_checkpoint(str(path))
    assert built == []  # no model was allocated


@pytest.mark.parametrize("content, match", [
    (b"not a zip", r"not a checkpoint written by char_lm\.py \(not a readable \.npz"),
    (None, r"no such file"),
    ("folder", r"a folder, not a checkpoint file"),
])
def test_sample_only_rejects_what_is_not_a_checkpoint(tmp_path, content, match):
    module = example("char_lm")
    path = tmp_path / "x.npz"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(module.UsageError, match=rf"^--sample-only {path}: {match}"):
        module.load_checkpoint(str(path))


def test_sample_only_with_a_crafted_checkpoint_exits_2_with_one_line(tmp_path, checkpoint):
    path = tmp_path / "big.npz"
    write(path, arrays(with_meta(checkpoint[1], hidden=10**6)))
    proc = run("char_lm.py", "--sample-only", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"char_lm.py: error: --sample-only {path}: __meta__ hidden must be an "
                           f"integer from 1 to 4096, got 1000000\n")


def test_sample_only_loads_a_good_checkpoint_and_samples_at_a_tiny_temperature(checkpoint,
                                                                                 capsys):
    module = example("char_lm")
    path, state = checkpoint
    model, _vocab, _meta = module.load_checkpoint(str(path))
    assert set(model.state_dict()) == set(state) - {"__meta__"}
    assert module.main(["--sample-only", str(path), "--sample-len", "20",
                        "--temperature", "1e-300"]) == 0  # greedy: no overflow, no NaN
    assert "sample (temperature 1e-300)" in capsys.readouterr().out


@pytest.mark.parametrize("cell, layers", [("rnn", 1), ("lstm", 2), ("gru", 3)])
def test_the_expected_shapes_are_the_models(cell, layers):
    module = example("char_lm")
    model = module.CharLM(7, 3, 5, layers, cell)
    assert module.shapes(7, 3, 5, layers, cell) == {k: v.shape for k, v in
                                                    model.state_dict().items()}


def test_sampling_from_overflowing_logits_is_an_error_not_a_nan_draw():
    module = example("char_lm")
    np.random.seed(0)
    vocab = module.Vocab("\ufffdab\n")
    model = module.CharLM(len(vocab), 3, 4, 1, "gru")
    model.head.bias.data[:] = [3e38, -3e38, 3e38, 3e38]
    model.head.weight.data[:] = 3e38  # finite weights whose logits overflow float32
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(
            module._cli.Diverged, match="the model's logits are not finite while sampling"):
        module.sample(model, vocab, "ab", 5, 0.7, np.random.default_rng(0))
