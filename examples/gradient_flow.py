"""Vanishing and exploding gradients measured: ||dLoss/dh_t|| over t, and clipping.

Part 1 runs an RNN, an LSTM and a GRU (default torch init, float64) over random sequences of
length T with the loss at the last step only, records ||dLoss/dh_t|| for every step with
`diagnostics.record`, prints a table every ~T/10 steps and saves one semilog plot.
Part 2 scales an RNN's recurrent weights up (`--scale`, so the step Jacobian has a spectral
radius above 1) and trains it with SGD with and without `optim.ClipGlobalNorm`, printing the
loss and the hook's `last_norm` (the global gradient norm before clipping). A run whose loss
turns non-finite stops there and says so; the script exits 1 if the clipped run does.

    python examples/gradient_flow.py [--T 100] [--steps 40] [--out gradient_flow.png]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from tinygrad_rnn import Tensor, diagnostics, nn, optim
from tinygrad_rnn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli

INPUT, HIDDEN, BATCH = 8, 32, 8


def measure(kind: str, steps: int, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """||dLoss/dh_t|| (and ||dLoss/dc_t|| for an LSTM), t = 0..T-1, loss at the last step.

    kind: "RNN", "LSTM", "GRU", or "LSTM f+1": an LSTM whose forget-gate bias starts at +1
    (Jozefowicz et al. 2015), so that c_t is mostly carried over at init. `scale`
    multiplies weight_hh_l0.
    """
    np.random.seed(seed)  # the layers draw their init from numpy's global generator
    cls = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind.split()[0]]
    rnn = cls(INPUT, HIDDEN, batch_first=True)
    if kind == "LSTM f+1":
        rnn.bias_ih_l0.data[HIDDEN:2 * HIDDEN] += 1.0  # gate order i, f, g, o
    rnn.weight_hh_l0.data *= scale
    head = nn.Linear(HIDDEN, 1)
    rnn.to(np.float64), head.to(np.float64)  # float64: 1e-25 norms must not underflow
    rng = np.random.default_rng(seed + 1)
    x, y = rng.standard_normal((BATCH, steps, INPUT)), rng.standard_normal((BATCH, 1))
    with diagnostics.record(rnn) as rec:
        out, _ = rnn(Tensor(x))
        F.mse_loss(head(out[:, -1]), y).backward()
    rec.check_finite(rnn)
    return rec.grad_norms()[0, "forward"]


def flow_table(norms: dict[str, dict[str, np.ndarray]], steps: int) -> str:
    """Rows t = 0, ~T/10, ..., T-1; one column per model and state; a ratio line last."""
    cols = [(kind, part) for kind, parts in norms.items() for part in parts]
    head = f"{'t':>5}" + "".join(f"{kind + ' ' + part:>14}" for kind, part in cols)
    rows = sorted(set(range(0, steps, max(1, steps // 10))) | {steps - 1})
    lines = [head] + [f"{t:>5}" + "".join(f"{norms[k][p][t]:>14.3e}" for k, p in cols)
                      for t in rows]
    ratio = "".join(f"{norms[k][p][0] / norms[k][p][-1]:>14.2e}" for k, p in cols)
    return "\n".join(lines + [f"{'ratio':>5}{ratio}   (||dL/d_0|| / ||dL/d_T-1||)"])


def train_exploding(steps: int, clip: float | None, length: int, scale: float,
                    lr: float = 0.1, seed: int = 0) -> list[tuple[int, float, float]]:
    """SGD on a tanh RNN whose weight_hh is multiplied by `scale`; the target mixes the first
    and last inputs. Returns (step, loss, global grad norm before clipping) per step; a step
    whose loss is not finite ends the run (its norm is NaN, nothing was updated)."""
    np.random.seed(seed)
    rnn = nn.RNN(4, HIDDEN, batch_first=True).to(np.float64)
    head = nn.Linear(HIDDEN, 1).to(np.float64)
    rnn.weight_hh_l0.data *= scale
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((32, length, 4))
    y = 0.5 * (x[:, :1, 0] + x[:, -1:, 1])
    hook = optim.ClipGlobalNorm(np.inf if clip is None else clip)  # inf: measure, never clip
    params = list(rnn.named_parameters()) + [("head." + n, p) for n, p in
                                             head.named_parameters()]
    opt = optim.SGD(params, lr=lr, hooks=[hook])
    log = []
    with np.errstate(over="ignore", invalid="ignore"):  # the unclipped run may overflow
        for step in range(steps):
            opt.zero_grad()
            out, _ = rnn(Tensor(x))
            loss = F.mse_loss(head(out[:, -1]), y)
            if not math.isfinite(loss.item()):  # diverged: stop before a NaN update
                log.append((step, loss.item(), math.nan))
                break
            loss.backward()
            opt.step()
            log.append((step, loss.item(), hook.last_norm))
    return log


def clip_table(runs: dict[str, list[tuple[int, float, float]]], every: int) -> str:
    """One row every `every` steps, plus each run's last step; '-' where a run had stopped."""
    logs = list(runs.values())
    n = max(len(log) for log in logs)
    lines = [f"{'step':>5}" + "".join(f"{n + ' loss':>18}{n + ' norm':>18}" for n in runs)]
    for i in range(n):
        if i % every == 0 or any(i == len(log) - 1 for log in logs):
            lines.append(f"{i:>5}" + "".join(f"{log[i][1]:>18.4g}{log[i][2]:>18.3e}"
                                             if i < len(log) else f"{'-':>18}{'-':>18}"
                                             for log in logs))
    return "\n".join(lines)


def norms_for_plot(norms: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """{kind: {(0, "forward"): parts}}: the shape `diagnostics.plot` takes for several models."""
    return {kind: {(0, "forward"): parts} for kind, parts in norms.items()}


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=_cli.integer(1, 10_000), default=100, help="sequence length")
    parser.add_argument("--steps", type=_cli.integer(1, 100_000), default=40,
                        help="SGD steps in part 2")
    parser.add_argument("--out", type=_cli.output_file, default="gradient_flow.png",
                        help="the PNG of part 1")
    parser.add_argument("--scale", type=_cli.number(), default=4.0, help="weight_hh multiplier")
    parser.add_argument("--clip", type=_cli.number(0, above=True), default=1.0,
                        help="ClipGlobalNorm max_norm")
    parser.add_argument("--lr", type=_cli.number(0, above=True), default=0.1,
                        help="SGD learning rate in part 2")
    args = parser.parse_args(argv)
    _cli.make_parent(args.out)

    norms = {kind: measure(kind, args.T) for kind in ("RNN", "LSTM", "GRU", "LSTM f+1")}
    print(f"Part 1: ||dLoss/dh_t|| (LSTM: and dc_t), loss at t={args.T - 1}, default init "
          f"(LSTM f+1: forget-gate bias +1)")
    print(flow_table(norms, args.T))
    diagnostics.plot(norms_for_plot(norms), args.out,
                     title=f"||dLoss/dstate_t||, loss at the last of {args.T} steps")
    print(f"plot: {args.out}")

    print(f"\nPart 2: tanh RNN with weight_hh x{args.scale}, T={args.T}, SGD lr {args.lr:g}")
    big = measure("RNN", args.T, scale=args.scale)["h"]
    print(f"at init ||dL/dh_0|| / ||dL/dh_{args.T - 1}|| = {big[0] / big[-1]:.2e} (unscaled: "
          f"{norms['RNN']['h'][0] / norms['RNN']['h'][-1]:.2e})")
    runs = {"no clip": train_exploding(args.steps, None, args.T, args.scale, args.lr),
            f"clip {args.clip:g}": train_exploding(args.steps, args.clip, args.T, args.scale,
                                                   args.lr)}
    print(clip_table(runs, every=max(1, args.steps // 8)))
    for name, log in runs.items():
        if not math.isfinite(log[-1][1]):
            print(f"{name}: the loss turned {log[-1][1]} at step {log[-1][0]}: diverged, "
                  "training stopped there")
    clipped = runs[f"clip {args.clip:g}"][-1]
    if not math.isfinite(clipped[1]):
        return _cli.fail(f"the clipped run diverged too (loss {clipped[1]} at step "
                         f"{clipped[0]}): try a smaller --lr, --clip or --scale")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
