"""Benchmark the dynamics diagnostics: all step Jacobians and the full Lyapunov spectrum.

The target (issue 13): an LSTM with H=128 (state S = 2H = 256), B=4, T=256 gets every step
Jacobian (T*B matrices 256x256, from T batched backward passes of B*S = 1024 rows) and its
full Lyapunov spectrum (k = S: T batched QR factorisations) in under 10 s on a 2-core machine.

Timed, each --repeats times (min and median reported), float64 throughout:
  state_jacobians            the trajectory, then one batched backward per step
  lyapunov(jacobians=J)      the QR method on the Jacobians just computed
  jacobian_norms(jacobians=J)  one SVD of the running product per step (not in the target)
  lyapunov_exponents         from scratch: Jacobians streamed into the QR method, none stored
  torch jacrev + QR          (--torch) torch.func.jacrev of the torch cell, vmapped over the
                             batch, per step, then torch.linalg.qr: a reference point

Usage:
  python benchmarks/bench_dynamics.py                  # the target config, all cores
  python benchmarks/bench_dynamics.py --threads 1 --repeats 5 --torch
  python benchmarks/bench_dynamics.py --quick          # smoke test: tiny sizes, a second
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET_S = 10.0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--input", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS (and torch) threads; default: all cores")
    ap.add_argument("--torch", action="store_true", help="also time torch's jacrev + QR")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    args = ap.parse_args(argv)
    for name in ("hidden", "batch", "steps", "input", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name} must be >= 1, got {value}")
    if args.quick:
        args.hidden, args.batch, args.steps, args.input, args.repeats = 4, 2, 6, 3, 1
    return args


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def torch_reference(args, module, x):
    """Step Jacobians with torch.func.jacrev (vmapped over the batch) and the QR method."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    make = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}
    cell = make[args.cell](args.input, args.hidden).double()
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(torch.tensor(getattr(module, name + "_l0").data, dtype=torch.float64))
    H, lstm = args.hidden, args.cell == "lstm"

    def advance(x_t, s):  # (B, I), (B, S) -> (B, S)
        if lstm:
            return torch.cat(cell(x_t, (s[:, :H], s[:, H:])), 1)
        return cell(x_t, s)

    jac_fn = torch.func.vmap(torch.func.jacrev(lambda x_t, s: advance(x_t[None], s[None])[0],
                                               argnums=1))

    def run():
        xs = torch.tensor(x)
        size = 2 * H if lstm else H
        state = torch.zeros(args.batch, size, dtype=torch.float64)
        frame = torch.eye(size, dtype=torch.float64).expand(args.batch, size, size)
        total = torch.zeros(args.batch, size, dtype=torch.float64)
        for t in range(args.steps):
            jac = jac_fn(xs[:, t], state)
            with torch.no_grad():
                state = advance(xs[:, t], state)
                frame, r = torch.linalg.qr(jac @ frame)
                total += torch.log(torch.abs(torch.diagonal(r, dim1=1, dim2=2)))
        return total / args.steps
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:  # before numpy loads its BLAS
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    sys.path.insert(0, ROOT)
    import numpy as np

    from tinygrad_rnn import diagnostics, nn

    np.random.seed(0)
    stack = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[args.cell]
    module = stack(args.input, args.hidden, batch_first=True)
    x = np.random.default_rng(1).standard_normal((args.batch, args.steps, args.input))
    size = args.hidden * (2 if args.cell == "lstm" else 1)
    print(f"{args.cell.upper()} H={args.hidden} (S={size}), B={args.batch}, T={args.steps}, "
          f"input {args.input}, threads {args.threads or 'all'} ({os.cpu_count()} cores), "
          f"{args.repeats} repeats")

    rows = []
    t_jac, jacs = timed(lambda: diagnostics.state_jacobians(module, x), args.repeats)
    rows.append(("state_jacobians", t_jac))
    t_lyap, exps = timed(lambda: diagnostics.lyapunov_exponents(module, x, jacobians=jacs),
                         args.repeats)
    rows.append(("lyapunov(jacobians=J)", t_lyap))
    rows.append(("jacobian_norms(jacobians=J)", timed(
        lambda: diagnostics.jacobian_norms(module, x, jacobians=jacs), args.repeats)[0]))
    t_stream, streamed = timed(lambda: diagnostics.lyapunov_exponents(module, x), args.repeats)
    rows.append(("lyapunov_exponents", t_stream))
    assert np.array_equal(streamed[0, "forward"], exps[0, "forward"])
    ref = None
    if args.torch:
        t_torch, ref = timed(torch_reference(args, module, x), args.repeats)
        rows.append(("torch jacrev + QR", t_torch))

    print("\n| stage | min s | median s |\n|---|---:|---:|")
    for name, times in rows:
        print(f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} |")
    total = min(t_jac) + min(t_lyap)
    verdict = "met" if total < TARGET_S else "NOT met"
    print(f"\nall step Jacobians + full Lyapunov spectrum: {total:.2f} s (min state_jacobians "
          f"+ min lyapunov(jacobians=J)); target < {TARGET_S:.0f} s: {verdict}")
    print(f"from scratch, state_jacobians + lyapunov_exponents as two calls: "
          f"{min(t_jac) + min(t_stream):.2f} s")
    top = exps[0, "forward"]
    print(f"largest exponent (batch mean): {top[:, 0].mean():+.4f} nats/step; "
          f"smallest: {top[:, -1].mean():+.4f}")
    if ref is not None:
        gap = float(np.abs(np.sort(ref.numpy(), axis=1)[:, ::-1] - top).max())
        print(f"torch's spectrum differs by at most {gap:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
