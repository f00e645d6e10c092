"""Echo task with a plain tanh RNN: the output at step t is the input at step t-1.

The state must keep the current input for one step while a Linear read-out, applied to every
step's state, recovers the previous one.

    python examples/echo.py [--epochs 12] [--hidden 8] [--steps 10] [--seed 0] [--plot h.png]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from tinygrad_rnn import data, nn, optim, train
from tinygrad_rnn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli


def run(epochs: int = 12, hidden: int = 8, seed: int = 0, train_size: int = 1000,
        steps: int = 10, batch_size: int = 32, lr: float = 0.01, progress: bool = False,
        plot: str | None = None) -> dict:
    """Train on `train_size` random sequences, test on 500 fresh ones; returns the figures."""
    np.random.seed(seed)  # parameter initialisation draws from numpy's global generator
    X, Y = data.echo_task(train_size, steps, rng=seed)  # (N, T, 1) each
    X_test, Y_test = data.echo_task(500, steps, rng=seed + 1)
    model = nn.Sequential(nn.Recurrent(nn.RNNCell(1, hidden), return_sequences=True),
                          nn.Linear(hidden, 1))  # (B, T, 1) -> (B, T, 1)
    opt = optim.Adam(model.parameters(), lr=lr, hooks=[optim.ClipGlobalNorm(1.0)])
    start = time.perf_counter()
    history = train.fit(model, F.mse_loss, opt, (X, Y), epochs, batch_size,
                        validation=(X_test, Y_test), progress=progress, rng=seed)
    seconds = time.perf_counter() - start
    mse = float(((train.predict(model, X_test) - Y_test) ** 2).mean())
    if plot:
        _cli.make_parent(plot)
        train.plot_history(history, plot)
    return {"mse": mse, "seconds": seconds, "history": history}


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=_cli.integer(1), default=12)
    parser.add_argument("--hidden", type=_cli.integer(1, 4096), default=8)
    parser.add_argument("--seed", type=_cli.seed, default=0)
    parser.add_argument("--train-size", type=_cli.integer(1, 10**6), default=1000)
    parser.add_argument("--steps", type=_cli.integer(1, 10**4), default=10, help="sequence length T")
    parser.add_argument("--batch-size", type=_cli.integer(1), default=32)
    parser.add_argument("--lr", type=_cli.number(0, above=True), default=0.01)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show the tqdm progress bar (on stderr)")
    parser.add_argument("--plot", metavar="PNG", type=_cli.output_file, help="write the loss curves here")
    args = parser.parse_args(argv)
    try:
        result = run(args.epochs, args.hidden, args.seed, args.train_size, args.steps,
                     args.batch_size, args.lr, progress=args.progress, plot=args.plot)
    except train.NonFiniteError as err:
        return _cli.fail(f"training diverged: {err}")
    if not math.isfinite(result["mse"]):
        return _cli.fail(f"the held-out MSE is {result['mse']}: the model's output is not finite")
    print(f"echo: held-out MSE {result['mse']:.2e} on 500 sequences of {args.steps} steps "
          f"({args.epochs} epochs, {result['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
