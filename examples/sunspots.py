"""Forecast next year's sunspot number with a GRU: statsmodels' bundled yearly series, 1700-2008.

    python examples/sunspots.py --plot runs/sunspots.png     # ~15 s; needs statsmodels
    python examples/sunspots.py --epochs 3 --hidden 8        # a smoke run

Each sample is a window of the previous k years (k steps of 1 feature); the GRU's output at
the last step goes through Linear to the next year's number (regression, MSE loss). The split
is chronological: the last `--test-years` years are forecast (each from the true previous k
years), everything before is training data. Numbers are standardised with the training mean
and standard deviation; RMSE is reported in sunspot units beside the persistence baseline
(next year = this year).
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
    import tinygrad_rnn as tg
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn, optim
from tinygrad_rnn.data import batches

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli


class Forecaster(nn.Module):
    """GRU over the window, Linear on the last output. Shape: x (B, k, 1) -> (B, 1)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: np.ndarray) -> tg.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def windows(series: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, k, 1) of k consecutive values and targets (N, 1): the value right after."""
    idx = np.arange(len(series) - k)[:, None] + np.arange(k)
    return series[idx][..., None], series[k:, None]


def predict(model: Forecaster, x: np.ndarray) -> np.ndarray:
    model.eval()
    with tg.no_grad():
        out = model(x).data
    model.train()
    return out


def plot(path: str, years: np.ndarray, truth: np.ndarray, forecast: np.ndarray,
         persistence: np.ndarray, rmse: float, base: float) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(years, truth, "k-", lw=2, label="observed")
    ax.plot(years, forecast, "C0o-", ms=3, label=f"GRU forecast (RMSE {rmse:.1f})")
    ax.plot(years, persistence, "C1--", lw=1, label=f"persistence (RMSE {base:.1f})")
    ax.set(xlabel="year", ylabel="sunspot number", title="One-year-ahead forecast, test years")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(model: Forecaster, opt: optim.Adam, x: np.ndarray, y: np.ndarray,
          args: argparse.Namespace) -> None:
    """Adam over shuffled batches, lr decaying towards lr / 10; Diverged on a non-finite loss."""
    for epoch in range(1, args.epochs + 1):
        opt.lr = args.lr * 0.1 ** ((epoch - 1) / args.epochs)
        total = 0.0
        for i, (xb, yb) in enumerate(batches(x, y, batch_size=args.batch_size, shuffle=True,
                                             rng=args.seed * 100_000 + epoch)):
            loss = F.mse_loss(model(xb), yb)
            value = _cli.check_loss(loss.item(), f"epoch {epoch}, batch {i + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += value * len(yb)
        if epoch == 1 or epoch % max(1, args.epochs // 10) == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d}/{args.epochs}: train loss {total / len(y):.4f} "
                  "(MSE, standardised)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = _cli.Parser(description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--window", type=_cli.integer(1, 300), default=12,
                    help="k: years the GRU sees")
    ap.add_argument("--test-years", type=_cli.integer(1, 300), default=60,
                    help="last years held out")
    ap.add_argument("--hidden", type=_cli.integer(1, 4096), default=32)
    ap.add_argument("--epochs", type=_cli.integer(1), default=60)
    ap.add_argument("--batch-size", type=_cli.integer(1), default=32)
    ap.add_argument("--lr", type=_cli.number(0, above=True), default=1e-2,
                    help="initial Adam learning rate")
    ap.add_argument("--plot", metavar="PATH", type=_cli.output_file,
                    help="save a PNG of forecast vs truth")
    ap.add_argument("--seed", type=_cli.seed, default=0)
    args = ap.parse_args(argv)
    try:
        import statsmodels.api as sm
    except ImportError:
        return _cli.fail("this example needs statsmodels (pip install -e '.[examples]')", 2)
    data = sm.datasets.sunspots.load_pandas().data
    years = data["YEAR"].to_numpy().astype(int)
    series = data["SUNACTIVITY"].to_numpy().astype(np.float64)
    if args.test_years + 2 * args.window > len(series):
        ap.error(f"--window {args.window} and --test-years {args.test_years} leave too few "
                 f"of the {len(series)} years for training")

    split = len(series) - args.test_years        # the first forecast year is series[split]
    mean, std = series[:split].mean(), series[:split].std()
    scaled = ((series - mean) / std).astype(np.float32)
    x_all, y_all = windows(scaled, args.window)  # y_all[i] is series[i + window]
    n_train = split - args.window
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_test = x_all[n_train:]  # its targets are series[split:], compared in sunspot units
    print(f"sunspots {years[0]}-{years[-1]}: {n_train} training windows, forecasting "
          f"{years[split]}-{years[-1]} from the previous {args.window} years each")

    np.random.seed(args.seed)
    model = Forecaster(args.hidden)
    opt = optim.Adam(model.parameters(), lr=args.lr, hooks=[optim.ClipGlobalNorm(1.0)])
    try:
        train(model, opt, x_train, y_train, args)
    except _cli.Diverged as err:
        return _cli.fail(f"training diverged: {err}; try a lower --lr")

    truth = series[split:]
    forecast = predict(model, x_test)[:, 0].astype(np.float64) * std + mean
    persistence = series[split - 1:-1]           # next year = this year
    rmse = float(np.sqrt(np.mean((forecast - truth) ** 2)))
    base = float(np.sqrt(np.mean((persistence - truth) ** 2)))
    if not np.isfinite(rmse):
        return _cli.fail(f"the forecast's RMSE is {rmse}: the model's output is not finite")
    verdict = (f"beats persistence: {1 - rmse / base:.0%} lower RMSE" if rmse < base
               else "does NOT beat persistence")
    print(f"\ntest RMSE over {years[split]}-{years[-1]} (sunspot number):\n"
          f"  GRU forecast   {rmse:7.2f}\n  persistence    {base:7.2f}\nthe GRU {verdict}")
    if args.plot:
        try:
            _cli.make_parent(args.plot)
            plot(args.plot, years[split:], truth, forecast, persistence, rmse, base)
            print(f"plot saved to {args.plot}")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
