"""The dynamics behind vanishing gradients: RNN, LSTM and GRU on the digits, read row by row.

    python examples/dynamics.py                    # about a minute on 2 cores; scikit-learn
    python examples/dynamics.py --epochs 1 --hidden 4 --drive 2 --limit 100   # a smoke run

For each cell, at initialisation and after brief training (Adam) on scikit-learn's 8x8 digits
(8 time steps of 8 pixels; a Linear head reads the class from the last hidden state):
  - the largest Lyapunov exponents of the trained state dynamics, along a long drive: each of
    4 sequences is --drive test digits one after another (T = 8 * drive),
  - the span norms ||d s_7 / d s_t||_2 (diagnostics.jacobian_norms) on a batch of test digits,
    beside what diagnostics.record measures on the same batch, ||dLoss/dh_t||: the loss reads
    only h_7, so per sequence ||dLoss/dh_t|| <= ||d s_7 / d s_t|| * ||dLoss/dh_7|| (chain rule),
and writes one PNG with the spectra and the span norms (--out), plus plot_dynamics' picture of
each trained cell on the drive (<out>_<cell>.png).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: BLAS threads only add overhead

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import tinygrad_rnn  # noqa: F401 (installed?)
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinygrad_rnn import diagnostics, optim
from tinygrad_rnn import functional as F
from tinygrad_rnn.data import batches

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_digits.py: the task
from _digits import STACKS, RowClassifier, accuracy, load

KEY = (0, "forward")
SHOWN = 3  # exponents printed per model


def measure(model: RowClassifier, xb: np.ndarray, yb: np.ndarray, drive: np.ndarray) -> dict:
    """Exponents on the drive; span norms, and record's gradients, on the batch (xb, yb)."""
    with diagnostics.record(model) as rec:
        F.cross_entropy(model(xb), yb).backward()
    model.zero_grad()
    grads = np.stack([rec.states[KEY][t][0].grad for t in range(8)])  # (8, B, H): dLoss/dh_t
    per_seq = np.linalg.norm(grads.astype(np.float64), axis=2)  # (8, B)
    norms = diagnostics.jacobian_norms(model.rnn, xb)[KEY]  # (8, B)
    bound = norms * per_seq[-1]  # chain rule: ||dL/dh_t|| <= ||d s_7/d s_t|| ||dL/dh_7||
    exps = diagnostics.lyapunov_exponents(model.rnn, drive)[KEY].mean(axis=0)
    return {"exps": exps, "norms": norms.mean(axis=1), "flow": rec.grad_norms()[KEY]["h"],
            "ratio": (per_seq / per_seq[-1]).mean(axis=1),
            "bound_ok": bool((per_seq <= bound * (1 + 1e-4) + 1e-12).all())}


def report(cell: str, phase: str, acc: float, m: dict) -> None:
    print(f"\n{cell.upper()} {phase}: test accuracy {acc:.1%}; largest Lyapunov exponents "
          f"(nats/step) " + " ".join(f"{e:+.3f}" for e in m["exps"][:SHOWN]))
    print(f"{'t':>3}{'||dL/dh_t||':>14}{'ratio to t=7':>14}{'||ds_7/ds_t||':>15}")
    for t in range(8):
        print(f"{t:>3}{m['flow'][t]:>14.3e}{m['ratio'][t]:>14.3e}{m['norms'][t]:>15.3e}")
    print(f"    per sequence ||dL/dh_t|| <= ||ds_7/ds_t|| * ||dL/dh_7||: "
          f"{'holds at every t' if m['bound_ok'] else 'VIOLATED'}")


def train(model: RowClassifier, data: tuple[np.ndarray, ...], args: argparse.Namespace) -> None:
    x_train, _, y_train, _ = data
    opt = optim.Adam(model.parameters(), lr=args.lr, hooks=[optim.ClipGlobalNorm(5.0)])
    for epoch in range(args.epochs):
        for xb, yb in batches(x_train, y_train, batch_size=32, shuffle=True,
                              rng=args.seed * 1000 + epoch):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()


def save_figure(results: dict, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax_exp, ax_norm = fig.subplots(1, 2)
    for (cell, phase), m in results.items():
        style = "-" if phase == "trained" else "--"
        color = {"rnn": "C0", "lstm": "C1", "gru": "C2"}[cell]
        label = f"{cell.upper()} {phase}"
        ax_exp.plot(np.arange(1, len(m["exps"]) + 1), m["exps"], style, color=color, label=label)
        ax_norm.semilogy(m["norms"], style, color=color, label=f"{label} ||ds_7/ds_t||")
        ax_norm.semilogy(m["ratio"], "o", color=color, ms=3, fillstyle="none" if
                         phase == "init" else "full")
    ax_exp.set(xlabel="index i", ylabel="Lyapunov exponent (nats per step)",
               title="spectra along a drive of test digits")
    ax_norm.set(xlabel="time step t (image row)", ylabel="mean over the batch",
                title="||ds_7/ds_t|| (lines), record's ratio to t=7 (dots)")
    for ax in (ax_exp, ax_norm):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cells", nargs="+", choices=sorted(STACKS), default=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    ap.add_argument("--drive", type=int, default=32, help="test digits per drive sequence")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images")
    ap.add_argument("--out", default="dynamics.png", help="PNG of spectra and span norms")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for flag in ("hidden", "epochs", "drive"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.limit is not None and args.limit < 40:
        ap.error(f"--limit must be at least 40 (4 images per class for a stratified split), "
                 f"got {args.limit}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        ap.error(f"--out: directory {folder} does not exist")
    try:
        data = load(args.limit, args.seed)
        import matplotlib  # noqa: F401  (the figures)
    except ImportError:
        print(f"{Path(sys.argv[0]).name}: error: this example needs scikit-learn and "
              "matplotlib (pip install -e '.[examples]')", file=sys.stderr)
        return 2
    x_test, y_test = data[1], data[3]
    rng = np.random.default_rng(args.seed)
    xb, yb = x_test[:8], y_test[:8]
    pick = rng.integers(0, len(x_test), (4, args.drive))
    drive = x_test[pick].reshape(4, 8 * args.drive, 8)  # digits one after another
    print(f"digits: {len(data[2])} training and {len(y_test)} test images, 8 rows of 8 pixels; "
          f"hidden {args.hidden}, {args.epochs} epochs of Adam (lr {args.lr})\nexponents along "
          f"4 drives of {args.drive} test digits in a row (T={8 * args.drive}); span norms and "
          f"gradients on {len(yb)} test digits")
    results, stem = {}, os.path.splitext(args.out)[0]
    for cell in args.cells:
        np.random.seed(args.seed)
        model = RowClassifier(cell, args.hidden)
        for phase in ("init", "trained"):
            if phase == "trained":
                train(model, data, args)
            results[cell, phase] = measure(model, xb, yb, drive)
            report(cell, "at initialisation" if phase == "init" else "after training",
                   accuracy(model, x_test, y_test), results[cell, phase])
        diagnostics.plot_dynamics(model.rnn, drive, f"{stem}_{cell}.png", k=None)
    print(f"\n{'model':<14}{'lambda_1':>10}{'lambda_2':>10}{'lambda_3':>10}"
          f"{'||ds_7/ds_0||':>15}{'record ratio t=0':>18}")
    for (cell, phase), m in results.items():
        top = "".join(f"{e:>+10.3f}" for e in m["exps"][:SHOWN])
        print(f"{cell.upper() + ' ' + phase:<14}{top}{m['norms'][0]:>15.3e}"
              f"{m['ratio'][0]:>18.3e}")
    save_figure(results, args.out)
    print(f"\nwrote {args.out} and " + ", ".join(f"{stem}_{c}.png" for c in args.cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
