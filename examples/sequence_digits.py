"""RNN vs LSTM vs GRU on scikit-learn's bundled 8x8 handwritten digits, read row by row.

    python examples/sequence_digits.py               # ~1 minute on 2 cores; needs scikit-learn
    python examples/sequence_digits.py --epochs 1 --limit 300   # a smoke run

Each 8x8 image (pixel values 0..16, scaled to [0, 1]) becomes a sequence of 8 time steps,
one image row of 8 features per step, so the net must carry what it saw in the upper rows to
the last step, where a Linear layer reads the class from the final hidden state. The three
cells are trained identically: same split, hidden size, epochs, batch order and Adam settings.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: BLAS threads only add overhead

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import tinygrad_rnn  # noqa: F401 (installed?)
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinygrad_rnn import functional as F
from tinygrad_rnn import optim
from tinygrad_rnn.data import batches

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli
from _digits import STACKS, RowClassifier, accuracy, load


def run(cell: str, data: tuple[np.ndarray, ...], args: argparse.Namespace) -> dict:
    """Train one cell type; returns its losses per epoch, test accuracy and wall time."""
    x_train, x_test, y_train, y_test = data
    np.random.seed(args.seed)  # the same initial draw order and batch order for every cell
    model = RowClassifier(cell, args.hidden)
    opt = optim.Adam(model.parameters(), lr=args.lr, hooks=[optim.ClipGlobalNorm(5.0)])
    losses, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        opt.lr = args.lr * 0.1 ** ((epoch - 1) / args.epochs)  # decay towards lr / 10: settles
        total = 0.0
        for i, (xb, yb) in enumerate(batches(x_train, y_train, batch_size=args.batch_size,
                                             shuffle=True, rng=args.seed * 1000 + epoch)):
            loss = F.cross_entropy(model(xb), yb)
            value = _cli.check_loss(loss.item(), f"{cell.upper()} epoch {epoch}, batch {i + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += value * len(yb)
        losses.append(total / len(y_train))
        print(f"{cell:>4} epoch {epoch:2d}/{args.epochs}: train loss {losses[-1]:.4f}, "
              f"test accuracy {accuracy(model, x_test, y_test):.2%}", flush=True)
    params = sum(p.size for p in model.parameters())
    return {"cell": cell, "params": params, "losses": losses,
            "acc": accuracy(model, x_test, y_test), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    ap = _cli.Parser(description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cells", nargs="+", choices=sorted(STACKS), default=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", type=_cli.integer(1, 4096), default=64)
    ap.add_argument("--epochs", type=_cli.integer(1), default=30)
    ap.add_argument("--batch-size", type=_cli.integer(1), default=32)
    ap.add_argument("--lr", type=_cli.number(0, above=True), default=1e-2,
                    help="initial Adam learning rate")
    ap.add_argument("--limit", type=_cli.integer(40), default=None,
                    help="use only the first N images (at least 40: 4 per class for a "
                         "stratified split)")
    ap.add_argument("--seed", type=_cli.seed, default=0)
    args = ap.parse_args(argv)
    try:
        data = load(args.limit, args.seed)
    except ImportError:
        return _cli.fail("this example needs scikit-learn (pip install -e '.[examples]')", 2)
    print(f"digits: {len(data[2])} training and {len(data[3])} test images, each 8 steps of "
          f"8 pixels; hidden {args.hidden}, {args.epochs} epochs, Adam lr {args.lr}")
    try:
        results = [run(cell, data, args) for cell in args.cells]
    except _cli.Diverged as err:
        return _cli.fail(f"training diverged: {err}; try a lower --lr")
    print(f"\n{'cell':<6}{'params':>8}{'first loss':>12}{'last loss':>11}{'test acc':>10}"
          f"{'time':>8}")
    for r in results:
        print(f"{r['cell'].upper():<6}{r['params']:>8,}{r['losses'][0]:>12.4f}"
              f"{r['losses'][-1]:>11.4f}{r['acc']:>10.2%}{r['seconds']:>7.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
