"""Learn 4-bit binary subtraction a - b with a GRU: the borrow must travel from bit t to t+1.

Bits arrive least significant first; a GRU reads (bit of a, bit of b) per step and a Linear
layer on every step's state emits one logit for the bit of a - b.

    python examples/binary_subtraction.py [--epochs 15] [--hidden 12] [--seed 0] [--plot h.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tinygrad_rnn import data, nn, optim, train
from tinygrad_rnn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli


def run(epochs: int = 15, hidden: int = 12, seed: int = 0, train_size: int = 1000,
        batch_size: int = 32, lr: float = 0.03, bits: int = 4, progress: bool = False,
        plot: str | None = None) -> dict:
    """Train on `train_size` random pairs, test on 1000 fresh ones; returns the figures."""
    np.random.seed(seed)  # parameter initialisation draws from numpy's global generator
    X, Y = data.binary_subtraction_task(train_size, bits, rng=seed)  # (N, bits, 2), (N, bits, 1)
    X_test, Y_test = data.binary_subtraction_task(1000, bits, rng=seed + 1)
    model = nn.Sequential(nn.Recurrent(nn.GRUCell(2, hidden), return_sequences=True),
                          nn.Linear(hidden, 1))  # (B, bits, 2) -> (B, bits, 1) logits
    opt = optim.Adam(model.parameters(), lr=lr, hooks=[optim.ClipGlobalNorm(1.0)])
    start = time.perf_counter()
    history = train.fit(model, F.binary_cross_entropy_with_logits, opt, (X, Y), epochs,
                        batch_size, metrics={"bit_acc": train.binary_accuracy_logits},
                        progress=progress, rng=seed)
    seconds = time.perf_counter() - start
    correct = (train.predict(model, X_test) > 0) == (Y_test > 0.5)       # (1000, bits, 1)
    if plot:
        _cli.make_parent(plot)
        train.plot_history(history, plot)
    return {"bit_accuracy": float(correct.mean()),
            "number_accuracy": float(correct.all(axis=(1, 2)).mean()),
            "seconds": seconds, "history": history}


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=_cli.integer(1), default=15)
    parser.add_argument("--hidden", type=_cli.integer(1, 4096), default=12)
    parser.add_argument("--seed", type=_cli.seed, default=0)
    parser.add_argument("--train-size", type=_cli.integer(1, 10**6), default=1000)
    parser.add_argument("--batch-size", type=_cli.integer(1), default=32)
    parser.add_argument("--lr", type=_cli.number(0, above=True), default=0.03)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show the tqdm progress bar (on stderr)")
    parser.add_argument("--plot", metavar="PNG", type=_cli.output_file, help="write the loss curves here")
    args = parser.parse_args(argv)
    try:
        result = run(args.epochs, args.hidden, args.seed, args.train_size, args.batch_size,
                     args.lr, progress=args.progress, plot=args.plot)
    except train.NonFiniteError as err:
        return _cli.fail(f"training diverged: {err}")
    print(f"binary_subtraction: bit accuracy {result['bit_accuracy']:.2%}, whole-number "
          f"accuracy {result['number_accuracy']:.2%} on 1000 held-out pairs "
          f"({args.epochs} epochs, {result['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
