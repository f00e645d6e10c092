"""Three-class spiral (CS231n) with a two-hidden-layer ReLU MLP and cross-entropy.

Also shows how to write a Module: assign layers as attributes, define forward.

    python examples/spiral.py [--epochs 100] [--hidden 64] [--seed 0] [--plot h.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinygrad_rnn import Tensor, data, nn, optim, train
from tinygrad_rnn import functional as F


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
        train.plot_history(history, plot)
    return {"accuracy": train.accuracy(train.predict(model, X), y), "seconds": seconds,
            "history": history}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show the tqdm progress bar (on stderr)")
    parser.add_argument("--plot", metavar="PNG", help="write the loss curves here")
    args = parser.parse_args(argv)
    result = run(args.epochs, args.hidden, args.seed, args.per_class, args.batch_size,
                 args.lr, progress=args.progress, plot=args.plot)
    print(f"spiral: training accuracy {result['accuracy']:.2%} on {3 * args.per_class} points "
          f"({args.epochs} epochs, {result['seconds']:.1f} s)")
    return result


if __name__ == "__main__":
    main()
