"""The sharpness of an RNN's loss: the largest Hessian eigenvalue, at initialisation and trained.

    python examples/curvature.py              # about 20 s on 1 core; needs scikit-learn
    python examples/curvature.py --quick      # a few seconds: tiny model, 1 epoch, 200 images

For RNN, LSTM and GRU on scikit-learn's 8x8 digits read row by row (8 steps of 8 pixels; a
Linear head reads the class from the last hidden state), power iteration with exact
Hessian-vector products finds lambda_max, the eigenvalue of largest magnitude (with its sign)
of the Hessian of the mean training cross-entropy with respect to every trainable parameter.
It is measured in float64 at initialisation and after training with plain minibatch SGD, and
printed as a table beside 2/lr, the sharpness above which gradient descent on a quadratic with
that curvature is unstable.

Each Hessian-vector product is two calls of tinygrad_rnn.autograd.grad: g = grad(loss, params,
create_graph=True) once per measurement, then Hv = grad(sum_i (g_i * v_i), params) per
iteration, through the recorded backward (the derived BPTT) of the unrolled cell.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: BLAS threads only add overhead

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import tinygrad_rnn as tg
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import optim
from tinygrad_rnn.autograd import grad
from tinygrad_rnn.data import batches

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli
from _digits import STACKS, RowClassifier, accuracy, load

QUICK = {"hidden": 8, "epochs": 1, "limit": 200, "iters": 20}  # --quick: a few seconds

Vector = list[np.ndarray]  # one array per parameter: a point of parameter space


def hessian_vector_product(loss: tg.Tensor, params: list[tg.Tensor]) -> Callable[[Vector], Vector]:
    """v -> H v, H the Hessian of the scalar `loss` with respect to `params`.

    The gradient is recorded once (create_graph=True); each call differentiates <g, v>
    through that record again, so the forward and first backward are not recomputed.
    Shapes: v and H v hold one array per parameter, of its shape.
    """
    g = grad(loss, params, create_graph=True)

    def hvp(v: Vector) -> Vector:
        dot = sum((gi * tg.Tensor(vi)).sum() for gi, vi in zip(g, v))
        return [h._data for h in grad(dot, params, retain_graph=True)]
    return hvp


def power_iteration(matvec: Callable[[Vector], Vector], start: Vector, iters: int,
                    tol: float) -> tuple[float, int, bool]:
    """The eigenvalue of largest magnitude of a symmetric operator, with its sign.

    v <- A v / ||A v|| from `start`; the estimate is the Rayleigh quotient <v, A v>, stopped
    when two successive estimates differ by at most tol * |estimate|.
    Returns (eigenvalue, iterations used, converged).
    """
    norm = math.sqrt(sum(float((s * s).sum()) for s in start))
    v = [s / norm for s in start]
    previous = None
    for i in range(1, iters + 1):
        av = matvec(v)
        lam = sum(float((a * b).sum()) for a, b in zip(v, av))
        if not math.isfinite(lam):
            return lam, i, False
        if previous is not None and abs(lam - previous) <= tol * abs(lam):
            return lam, i, True
        size = math.sqrt(sum(float((a * a).sum()) for a in av))
        if size == 0.0:
            return 0.0, i, True  # A v = 0: v is in the null space, and so is every A
        v, previous = [a / size for a in av], lam
    return lam, iters, False


def measure(model: RowClassifier, cell: str, phase: str, data: tuple[np.ndarray, ...],
            args: argparse.Namespace) -> dict:
    """lambda_max of the training loss's Hessian, in float64; the model stays float32."""
    x_train, x_test, y_train, y_test = data
    model.to(np.float64)
    try:
        params = [p for p in model.parameters() if p.requires_grad]
        loss = F.cross_entropy(model(x_train.astype(np.float64)), y_train)
        rng = np.random.default_rng(args.seed)
        start = [rng.standard_normal(p.shape) for p in params]
        lam, used, converged = power_iteration(hessian_vector_product(loss, params), start,
                                               args.iters, args.tol)
        value = loss.item()
    finally:
        model.to(np.float32)  # float32 -> float64 -> float32 gives back the same values
    if not math.isfinite(lam):
        raise _cli.Diverged(f"lambda_max of {cell.upper()} {phase} is {lam}")
    return {"cell": cell, "phase": phase, "lambda": lam, "iters": used,
            "converged": converged, "loss": value, "acc": accuracy(model, x_test, y_test)}


def train(model: RowClassifier, cell: str, data: tuple[np.ndarray, ...],
          args: argparse.Namespace) -> list[dict]:
    """Plain minibatch SGD (no momentum, no clipping): the setting where 2/lr is the bound.
    Returns the measurements taken every --every epochs on the way (none by default)."""
    x_train, _, y_train, _ = data
    opt = optim.SGD(model.parameters(), lr=args.lr)
    rows = []
    for epoch in range(1, args.epochs + 1):
        for i, (xb, yb) in enumerate(batches(x_train, y_train, batch_size=args.batch_size,
                                             shuffle=True, rng=args.seed * 1000 + epoch)):
            loss = F.cross_entropy(model(xb), yb)
            _cli.check_loss(loss.item(), f"{cell.upper()} epoch {epoch}, batch {i + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
        if args.every and epoch % args.every == 0 and epoch < args.epochs:
            rows.append(measure(model, cell, f"epoch {epoch}", data, args))
    return rows


def table(rows: list[dict], lr: float) -> str:
    """The results, one line per (cell, phase); a * marks an estimate that did not settle."""
    head = (f"{'cell':<6}{'phase':<10}{'lambda_max':>12}{'iterations':>12}{'loss':>11}"
            f"{'accuracy':>10}")
    lines = [head]
    for r in rows:
        mark = "" if r["converged"] else "*"
        lines.append(f"{r['cell'].upper():<6}{r['phase']:<10}{r['lambda']:>12.5g}"
                     f"{str(r['iters']) + mark:>12}{r['loss']:>11.5g}{r['acc']:>10.2%}")
    lines.append(f"2/lr = {2 / lr:.4g}: plain gradient descent with lr {lr:g} is unstable "
                 f"along a direction of curvature above it")
    if not all(r["converged"] for r in rows):
        lines.append("* not settled within --iters: the two largest |eigenvalues| are close")
    return "\n".join(lines)


def parser() -> _cli.Parser:
    ap = _cli.Parser(description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cells", nargs="+", choices=sorted(STACKS), default=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", type=_cli.integer(1, 4096), default=64)
    ap.add_argument("--epochs", type=_cli.integer(1), default=30)
    ap.add_argument("--batch-size", type=_cli.integer(1), default=32)
    ap.add_argument("--lr", type=_cli.number(0, above=True), default=0.2,
                    help="SGD learning rate")
    ap.add_argument("--every", type=_cli.integer(0), default=0,
                    help="also measure after every N epochs of training (0: only at the end)")
    ap.add_argument("--iters", type=_cli.integer(1, 100000), default=200,
                    help="most power iterations per measurement")
    ap.add_argument("--tol", type=_cli.number(0, 1, above=True, below=True), default=1e-5,
                    help="stop when successive estimates differ by at most tol * |lambda|")
    ap.add_argument("--limit", type=_cli.integer(40), default=None,
                    help="use only the first N images (at least 40: 4 per class for a "
                         "stratified split)")
    ap.add_argument("--seed", type=_cli.seed, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="tiny run for tests: " + ", ".join(f"--{k} {v}" for k, v in
                                                           QUICK.items()) + " unless given")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    if ap.parse_known_args(argv)[0].quick:
        ap.set_defaults(**QUICK)  # flags given on the command line still win
    args = ap.parse_args(argv)
    try:
        data = load(args.limit, args.seed)
    except ImportError:
        return _cli.fail("this example needs scikit-learn (pip install -e '.[examples]')", 2)
    print(f"digits: {len(data[2])} training and {len(data[3])} test images, 8 steps of 8 "
          f"pixels; hidden {args.hidden}; SGD lr {args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epoch{'s' * (args.epochs > 1)}\nlambda_max: Hessian of the mean training cross-entropy over "
          f"all parameters, float64, power iteration (at most {args.iters}, tol {args.tol:g})",
          flush=True)
    rows, start = [], time.perf_counter()
    try:
        for cell in args.cells:
            np.random.seed(args.seed)  # the same initial draws and batch order for every cell
            model = RowClassifier(cell, args.hidden)
            init = measure(model, cell, "init", data, args)
            rows += [init, *train(model, cell, data, args)]
            rows.append(measure(model, cell, "trained", data, args))
            print(f"{cell.upper()}: lambda_max {init['lambda']:.5g} at init, "
                  f"{rows[-1]['lambda']:.5g} trained", flush=True)
    except _cli.Diverged as err:
        return _cli.fail(f"training diverged: {err}; try a lower --lr")
    print()
    print(table(rows, args.lr))
    print(f"\ntook {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
