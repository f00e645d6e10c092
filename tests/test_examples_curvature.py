"""examples/curvature.py: its Hessian-vector product equals a central difference of the
gradient, its power iteration finds the top eigenvalue (with its sign) of explicit matrices
and of a tiny model's dense Hessian, the --quick run prints the whole table, and bad flags
exit 2 with one line naming the flag."""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn import functional as F
from tinygrad_rnn.autograd import grad

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "curvature.py"


@functools.cache
def curvature():
    """examples/curvature.py imported as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("example_curvature", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(cell: str, hidden: int = 3, batch: int = 5, seed: int = 0):
    """A float64 RowClassifier, a batch of digits-shaped inputs and labels, its parameters."""
    np.random.seed(seed)
    model = curvature().RowClassifier(cell, hidden).to(np.float64)
    rng = np.random.default_rng(seed)
    x, y = rng.random((batch, 8, 8)), rng.integers(0, 10, batch)
    return model, x, y, list(model.parameters())


def gradient(model, x, y, params) -> list[np.ndarray]:
    return [g._data.copy() for g in grad(F.cross_entropy(model(x), y), params)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hvp_equals_a_central_difference_of_the_gradient(cell):
    model, x, y, params = tiny(cell)
    rng = np.random.default_rng(1)
    v = [rng.standard_normal(p.shape) for p in params]
    hv = curvature().hessian_vector_product(F.cross_entropy(model(x), y), params)(v)
    eps, base = 1e-5, [p._data.copy() for p in params]
    ends = []
    for sign in (1, -1):
        for p, b, vi in zip(params, base, v):
            p._assign(b + sign * eps * vi)
        ends.append(gradient(model, x, y, params))
    for p, b in zip(params, base):
        p._assign(b)
    for (name, p), h, gp, gm in zip(model.named_parameters(), hv, *ends):
        assert h.shape == p.shape, name
        np.testing.assert_allclose(h, (gp - gm) / (2 * eps), rtol=1e-5, atol=1e-8, err_msg=name)
    assert max(float(np.abs(h).max()) for h in hv) > 1e-3  # not trivially zero


def split_matvec(a: np.ndarray):
    """v -> A v on a vector stored as two arrays of shapes (2, 3) and (4,), as parameters are."""
    def matvec(v):
        w = a @ np.concatenate([v[0].ravel(), v[1]])
        return [w[:6].reshape(2, 3), w[6:]]
    return matvec


@pytest.mark.parametrize("top", [7.0, -7.0])
def test_power_iteration_finds_the_top_eigenvalue_of_an_explicit_matrix_with_its_sign(top):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    eigenvalues = np.array([top, 3.0, -2.5, 1.0, 0.5, 0.0, -0.1, 0.2, 2.0, -4.0])
    a = q @ np.diag(eigenvalues) @ q.T
    start = [rng.standard_normal((2, 3)), rng.standard_normal(4)]
    lam, used, converged = curvature().power_iteration(split_matvec(a), start, 500, 1e-12)
    assert converged and used < 500
    assert lam == pytest.approx(top, rel=1e-9)


def test_power_iteration_reports_an_estimate_that_did_not_settle():
    a = np.diag([5.0, -5.0, 1.0, 0, 0, 0, 0, 0, 0, 0])  # +-5: the Rayleigh quotient never settles
    start = [np.ones((2, 3)), np.ones(4)]
    lam, used, converged = curvature().power_iteration(split_matvec(a), start, 30, 1e-9)
    assert (used, converged) == (30, False) and abs(lam) <= 5.0 + 1e-12


def test_power_iteration_on_the_zero_matrix_gives_zero():
    start = [np.ones((2, 3)), np.ones(4)]
    assert curvature().power_iteration(split_matvec(np.zeros((10, 10))), start, 10, 1e-6) == (
        0.0, 1, True)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_power_iteration_with_hvps_matches_the_dense_hessian_of_a_tiny_model(cell):
    model, x, y, params = tiny(cell, hidden=2, batch=6)
    hvp = curvature().hessian_vector_product(F.cross_entropy(model(x), y), params)
    shapes, sizes = [p.shape for p in params], [p.size for p in params]
    cuts = np.cumsum(sizes)[:-1]

    def unflat(flat):
        return [part.reshape(s) for part, s in zip(np.split(flat, cuts), shapes)]

    n = sum(sizes)
    dense = np.stack([np.concatenate([h.ravel() for h in hvp(unflat(np.eye(n)[i]))])
                      for i in range(n)])
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)  # a Hessian is symmetric
    eig = np.linalg.eigvalsh(dense)
    top = eig[np.argmax(np.abs(eig))]
    start = [np.random.default_rng(3).standard_normal(s) for s in shapes]
    lam, _, converged = curvature().power_iteration(hvp, start, 5000, 1e-12)
    assert converged and lam == pytest.approx(top, rel=1e-6)


def test_measure_leaves_the_float32_model_as_it_was():
    pytest.importorskip("sklearn")
    mod = curvature()
    args = mod.parser().parse_args(["--quick"])
    args.hidden, args.iters = 2, 3
    data = mod.load(80, 0)
    np.random.seed(0)
    model = mod.RowClassifier("lstm", 4)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    row = mod.measure(model, "lstm", "init", data, args)
    after = model.state_dict()
    assert all(after[k].dtype == np.float32 and np.array_equal(after[k], before[k])
               for k in before)
    assert row["iters"] == 3 and math.isfinite(row["lambda"])


def run(*flags: str) -> subprocess.CompletedProcess:
    """The example in a fresh interpreter that finds this checkout of tinygrad_rnn."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(SCRIPT), *flags], check=False,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path})


ROW = re.compile(r"^(RNN|LSTM|GRU)\s+(init|trained|epoch \d+)\s+(\S+)\s+(\d+)(\*?)\s+(\S+)"
                 r"\s+([\d.]+)%$", re.MULTILINE)


def test_quick_run_prints_the_table_for_every_cell_and_phase():
    pytest.importorskip("sklearn")
    proc = run("--quick", "--every", "1", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^cell\s+phase\s+lambda_max\s+iterations\s+loss\s+accuracy$",
                     proc.stdout, re.MULTILINE), proc.stdout
    rows = ROW.findall(proc.stdout)
    assert [(c, p) for c, p, *_ in rows] == [(c, p) for c in ("RNN", "LSTM", "GRU")
                                             for p in ("init", "epoch 1", "trained")]
    for _, _, lam, iters, mark, loss, acc in rows:
        assert math.isfinite(float(lam)) and float(lam) != 0.0
        assert 1 <= int(iters) <= 20 and (mark == "*") == (int(iters) == 20)
        assert 0 < float(loss) < 10 and 0 <= float(acc) <= 100
    assert "2/lr = 10:" in proc.stdout
    progress = re.findall(r"^(RNN|LSTM|GRU): lambda_max (\S+) at init, (\S+) trained$",
                          proc.stdout, re.MULTILINE)
    table = {(c, p): lam for c, p, lam, *_ in rows}
    assert progress == [(c, table[c, "init"], table[c, "trained"]) for c in ("RNN", "LSTM", "GRU")]


@pytest.mark.parametrize("argv, flag, expected", [
    (["--hidden", "0"], "--hidden", "an integer from 1 to 4096"),
    (["--hidden", "5000"], "--hidden", "an integer from 1 to 4096"),
    (["--epochs", "1.5"], "--epochs", "an integer >= 1"),
    (["--batch-size", "0"], "--batch-size", "an integer >= 1"),
    (["--lr", "0"], "--lr", "a number > 0"),
    (["--lr", "nan"], "--lr", "a number > 0"),
    (["--iters", "0"], "--iters", "an integer from 1 to 100000"),
    (["--tol", "0"], "--tol", "a number > 0 and < 1"),
    (["--tol", "1"], "--tol", "a number > 0 and < 1"),
    (["--every", "-1"], "--every", "an integer >= 0"),
    (["--limit", "10"], "--limit", "an integer >= 40"),
    (["--seed", "-1"], "--seed", "an integer from 0 to 4294967295"),
    (["--quick", "--hidden", "x"], "--hidden", "an integer from 1 to 4096"),
])
def test_bad_flags_exit_2_with_one_line_naming_the_flag(argv, flag, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        curvature().main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.count("\n") == 1 and f"argument {flag}: expected {expected}" in err, err


def test_an_unknown_cell_is_refused_by_name(capsys):
    with pytest.raises(SystemExit, match="2"):
        curvature().main(["--cells", "lstm", "tcn"])
    out, err = capsys.readouterr()
    assert out == "" and "argument --cells: invalid choice: 'tcn'" in err


def test_a_bad_flag_from_the_command_line_runs_nothing():
    proc = run("--tol", "nan")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("curvature.py: error: argument --tol: expected a number > 0 and < 1 "
                           "(finite), got 'nan' (see --help)\n")


def test_divergence_exits_1_naming_the_step():
    pytest.importorskip("sklearn")
    proc = run("--quick", "--cells", "rnn", "--lr", "1e300")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == ("curvature.py: error: training diverged: the loss "
                                            "is nan at RNN epoch 1, batch 2; try a lower --lr")
    assert "cell  phase" not in proc.stdout  # no table after a divergence


def test_a_non_finite_eigenvalue_exits_1(monkeypatch, capsys):
    pytest.importorskip("sklearn")
    mod = curvature()
    monkeypatch.setattr(mod, "power_iteration", lambda *a: (math.nan, 1, False))
    assert mod.main(["--quick", "--cells", "gru"]) == 1
    out, err = capsys.readouterr()
    assert "lambda_max of GRU init is nan" in err and "cell  phase" not in out
