"""Three-class spiral (CS231n) with a two-hidden-layer ReLU MLP and cross-entropy.

Also shows how to write a Module: assign layers as attributes, define forward.

    python examples/spiral.py [--epochs 100] [--hidden 64] [--seed 0] [--plot h.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tinygrad_rnn import Tensor, data, nn, optim, train
from tinygrad_rnn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli


class MLP(nn.Module):
    """Linear -> relu -> Linear -> relu -> Linear. Shape: (B, 2) -> logits (B, classes)."""

    def __init__(self, hidden: int, classes: int = 3):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.fc2(self.fc1(x).relu()).relu())


def run(epochs: int = 100, hidden: int = 64, seed: int = 0, per_class: int = 100,
        batch_size: int = 32, lr: float = 0.02, progress: bool = False,
        plot: str | None = None) -> dict:
    """Train on 3 * `per_class` points; returns the training accuracy of the final model."""
    np.random.seed(seed)  # parameter initialisation draws from numpy's global generator
    X, y = data.spiral_task(per_class, classes=3, rng=seed)  # (N, 2), (N,)
    model = MLP(hidden)
    opt = optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = train.fit(model, F.cross_entropy, opt, (X, y), epochs, batch_size,
                        metrics={"acc": train.accuracy}, progress=progress, rng=seed)
    seconds = time.perf_counter() - start
    if plot:
        _cli.make_parent(plot)
        train.plot_history(history, plot)
    return {"accuracy": train.accuracy(train.predict(model, X), y), "seconds": seconds,
            "history": history}


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=_cli.integer(1), default=100)
    parser.add_argument("--hidden", type=_cli.integer(1, 4096), default=64)
    parser.add_argument("--seed", type=_cli.seed, default=0)
    parser.add_argument("--per-class", type=_cli.integer(1, 10**6), default=100)
    parser.add_argument("--batch-size", type=_cli.integer(1), default=32)
    parser.add_argument("--lr", type=_cli.number(0, above=True), default=0.02)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show the tqdm progress bar (on stderr)")
    parser.add_argument("--plot", metavar="PNG", type=_cli.output_file, help="write the loss curves here")
    args = parser.parse_args(argv)
    try:
        result = run(args.epochs, args.hidden, args.seed, args.per_class, args.batch_size,
                     args.lr, progress=args.progress, plot=args.plot)
    except train.NonFiniteError as err:
        return _cli.fail(f"training diverged: {err}")
    print(f"spiral: training accuracy {result['accuracy']:.2%} on {3 * args.per_class} points "
          f"({args.epochs} epochs, {result['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
