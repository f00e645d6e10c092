"""Benchmark one LSTM training step against a hand-written numpy BPTT (and torch, if installed).

The workload: batch-first X (B, T, I), one LSTM layer, a linear readout of the last h into
C = 10 classes, softmax cross-entropy (mean), then full BPTT and every weight gradient. No
optimizer update. float32 throughout. Contenders:

  tinygrad_lstm  tinygrad_rnn.nn.LSTM(batch_first=True) + nn.Linear + functional.cross_entropy
  tinygrad_replay  tinygrad_lstm's forward and backward through tinygrad_rnn.jit: recorded once,
                 then replayed as one generated straight-line function (no Tensor or graph
                 objects per op); its builder runs the recording and the first replay, so the
                 timed and measured steps are the steady state
  tinygrad_loop  the same LSTM as a user's Python loop of Tensor ops (x_t @ W_ih + h @ W_hh + b,
                 chunk, sigmoid, tanh), then nn.Linear + functional.cross_entropy
  numpy          benchmarks/numpy_lstm.py: hand-written forward + BPTT (the baseline, ratio 1)
  torch_lstm     torch.nn.LSTM (fused) + nn.Linear + F.cross_entropy   (if torch is installed)
  torch_loop     the cell loop of tinygrad_loop written with torch tensors (if installed)

Method: before anything is timed, numpy_lstm.check() asserts in float64 that the baseline's
gradients equal the framework's. Each contender then runs in its own process (`--worker`), so
numpy's and torch's thread pools never share one; every worker gets the same thread count
(--threads, default: all cores) for OpenBLAS (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, set
before numpy loads) and torch (torch.set_num_threads). A worker builds its model from the same
seeded parameters, runs --warmup untimed steps, then --reps timed steps (time.perf_counter for
wall time, time.process_time for the process's CPU time), and prints JSON. --rounds rounds run every contender once each, in an order rotated by one
per round, so slow drifts of the machine hit all contenders alike. Reported: median and min
wall time over all timed steps, median CPU time, and their ratios to numpy's. On a busy
machine with --threads 1, CPU time is the steadiest of the three (time spent waiting for a
core is not counted); with more threads it also counts BLAS threads spinning.

Memory, two columns: "py peak" is tracemalloc's peak during one extra (untimed) step, minus
what was allocated before it: Python objects plus numpy buffers (numpy reports its data
allocations to tracemalloc); torch's own allocator is invisible to it (so tiny for torch).
"rss growth" is the growth of the process's ru_maxrss high-water mark from after model set-up
to after the last step: the whole process, allocator caches included (coarse, KB pages).

Usage:
  python benchmarks/bench_lstm.py                       # all configs
  python benchmarks/bench_lstm.py --configs small long --reps 20 --rounds 5
  python benchmarks/bench_lstm.py --quick               # smoke test: tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

CLASSES = 10
CONFIGS = {  # name: (B, T, I, H)
    "small": (16, 32, 32, 64),
    "medium": (32, 64, 64, 128),
    "large": (64, 64, 128, 512),
    "long": (8, 512, 32, 64),
}
QUICK = {"quick": (4, 6, 5, 8)}
CONTENDERS = ("tinygrad_lstm", "tinygrad_replay", "tinygrad_loop", "numpy", "torch_lstm", "torch_loop")
BASELINE = "numpy"


# ---- contenders: each returns a zero-argument training step --------------------------------

def _data(cfg):
    import numpy as np
    from numpy_lstm import init_params, make_batch
    B, T, I, H = cfg
    return init_params(I, H, CLASSES, seed=0, dtype=np.float32), *make_batch(
        B, T, I, CLASSES, seed=1, dtype=np.float32)


def build_numpy(cfg):
    from numpy_lstm import lstm_step
    p, x, y = _data(cfg)
    return lambda: lstm_step(p, x, y)[0]


def _tinygrad_model(cfg):
    from tinygrad_rnn import Tensor, nn
    p, x, y = _data(cfg)
    _, _, I, H = cfg
    lstm, fc = nn.LSTM(I, H, batch_first=True), nn.Linear(H, CLASSES)
    lstm.load_state_dict({f"{n}_l0": p[n] for n in ("weight_ih", "weight_hh", "bias_ih",
                                                    "bias_hh")})
    fc.load_state_dict({"weight": p["fc_weight"], "bias": p["fc_bias"]})
    return lstm, fc, Tensor(x), y


def build_tinygrad_lstm(cfg):
    from tinygrad_rnn import functional as F
    lstm, fc, X, y = _tinygrad_model(cfg)

    def step():
        lstm.zero_grad()
        fc.zero_grad()
        _, (h_n, _) = lstm(X)
        loss = F.cross_entropy(fc(h_n[-1]), y)
        loss.backward()
        return loss.item()
    return step


def build_tinygrad_replay(cfg):
    import tinygrad_rnn as tg
    from tinygrad_rnn import functional as F
    lstm, fc, X, y = _tinygrad_model(cfg)

    @tg.jit
    def forward_backward(X, y):
        _, (h_n, _) = lstm(X)
        loss = F.cross_entropy(fc(h_n[-1]), y)
        loss.backward()
        return loss

    def step():
        lstm.zero_grad()
        fc.zero_grad()
        return forward_backward(X, y).item()
    # the recording, the first replay (which writes the generated function), then 8 calls of
    # that function: CPython 3.11 specialises a function's bytecode after 8 calls (its loops
    # would count too; a straight-line function has none), and a training run is past that
    for _ in range(2 + 8):
        step()
    return step


def build_tinygrad_loop(cfg):
    import numpy as np

    from tinygrad_rnn import Tensor, nn
    from tinygrad_rnn import functional as F
    p, x, y = _data(cfg)
    B, T, _, H = cfg
    w_ih = Tensor(p["weight_ih"].T.copy(), requires_grad=True)  # (I, 4H)
    w_hh = Tensor(p["weight_hh"].T.copy(), requires_grad=True)  # (H, 4H)
    b = Tensor(p["bias_ih"] + p["bias_hh"], requires_grad=True)
    fc = nn.Linear(H, CLASSES)
    fc.load_state_dict({"weight": p["fc_weight"], "bias": p["fc_bias"]})
    X = Tensor(x)

    def step():
        for q in (w_ih, w_hh, b):
            q.grad = None
        fc.zero_grad()
        h = c = Tensor(np.zeros((B, H), np.float32))
        for t in range(T):
            i, f, g, o = (X[:, t] @ w_ih + h @ w_hh + b).chunk(4, axis=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
        loss = F.cross_entropy(fc(h), y)
        loss.backward()
        return loss.item()
    return step


def _torch_model(cfg):
    import torch
    p, x, y = _data(cfg)
    _, _, I, H = cfg
    lstm, fc = torch.nn.LSTM(I, H, batch_first=True), torch.nn.Linear(H, CLASSES)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{n}_l0").copy_(torch.from_numpy(p[n]))
        fc.weight.copy_(torch.from_numpy(p["fc_weight"]))
        fc.bias.copy_(torch.from_numpy(p["fc_bias"]))
    return lstm, fc, torch.from_numpy(x), torch.from_numpy(y)


def build_torch_lstm(cfg):
    import torch
    lstm, fc, X, y = _torch_model(cfg)

    def step():
        lstm.zero_grad()
        fc.zero_grad()
        _, (h_n, _) = lstm(X)
        loss = torch.nn.functional.cross_entropy(fc(h_n[-1]), y)
        loss.backward()
        return loss.item()
    return step


def build_torch_loop(cfg):
    import torch
    lstm, fc, X, y = _torch_model(cfg)
    B, T, _, H = cfg
    w_ih = lstm.weight_ih_l0.detach().T.contiguous().requires_grad_()  # (I, 4H)
    w_hh = lstm.weight_hh_l0.detach().T.contiguous().requires_grad_()  # (H, 4H)
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().requires_grad_()

    def step():
        for q in (w_ih, w_hh, b):
            q.grad = None
        fc.zero_grad()
        h = c = torch.zeros(B, H)
        for t in range(T):
            i, f, g, o = (X[:, t] @ w_ih + h @ w_hh + b).chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
        loss = torch.nn.functional.cross_entropy(fc(h), y)
        loss.backward()
        return loss.item()
    return step


BUILDERS = {"numpy": build_numpy, "tinygrad_lstm": build_tinygrad_lstm,
            "tinygrad_replay": build_tinygrad_replay,
            "tinygrad_loop": build_tinygrad_loop, "torch_lstm": build_torch_lstm,
            "torch_loop": build_torch_loop}


# ---- worker: one contender, one config, in its own process ---------------------------------

def _maxrss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux


def run_worker(name: str, cfg: tuple[int, ...], reps: int, warmup: int, threads: int) -> dict:
    """Time `reps` steps of contender `name` after `warmup` untimed ones; JSON-able dict."""
    import tracemalloc
    if name.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
    step = BUILDERS[name](cfg)
    rss0 = _maxrss_mb()
    for _ in range(warmup):
        loss = step()
    times, cpu = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rss1 = _maxrss_mb()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"name": name, "config": list(cfg), "times": times, "cpu": cpu, "loss": loss,
            "py_peak_mb": peak / 2**20, "rss_growth_mb": rss1 - rss0, "threads": threads}


# ---- driver ---------------------------------------------------------------------------------

def available_contenders() -> list[str]:
    if importlib.util.find_spec("torch") is not None:  # not imported here: that is slow
        return list(CONTENDERS)
    return [c for c in CONTENDERS if not c.startswith("torch")]


def launch(name: str, cfg_name: str, reps: int, warmup: int, threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--config", cfg_name,
           "--reps", str(reps), "--warmup", str(warmup),
           "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"worker {name} at {cfg_name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_loss(res: dict, runs: dict[str, list[dict]]) -> None:
    """Every contender must compute the same loss (float32 tolerance) as the first one run."""
    first = next(r for rs in runs.values() for r in rs)
    if abs(res["loss"] - first["loss"]) > 1e-4 * max(1.0, abs(first["loss"])):
        raise RuntimeError(f"{res['name']} computed loss {res['loss']}, but {first['name']} "
                           f"computed {first['loss']}: the contenders do not run the same step")


def machine_info(threads: int) -> str:
    import numpy as np
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info
        libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            blas = f"{libs[0]['internal_api']} {libs[0]['version']}"
    except ImportError:
        pass
    try:
        torch_v = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_v = "not installed"
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy "
            f"{np.__version__} ({blas}), torch {torch_v}; {threads} thread(s) per worker")


def _ms(s: float) -> str:
    return f"{s * 1e3:.2f}" if s < 1 else f"{s * 1e3:.0f}"


def report(results: dict[str, dict[str, list[dict]]], configs: dict) -> str:
    """Markdown: one detailed table per config, then a summary of median ratios."""
    lines = []
    summary = {}
    for cfg_name, per in results.items():
        stats = {}
        for name, runs in per.items():
            times = [t for r in runs for t in r["times"]]
            cpu = [t for r in runs for t in r["cpu"]]
            stats[name] = (statistics.median(times), min(times), statistics.median(cpu),
                           len(times), max(r["py_peak_mb"] for r in runs),
                           max(r["rss_growth_mb"] for r in runs))
        base = stats.get(BASELINE)
        lines += [f"### {cfg_name} (B, T, I, H) = {tuple(configs[cfg_name])}", "",
                  ("| contender | median ms | min ms | cpu median ms | median / numpy "
                   "| min / numpy | cpu / numpy | steps | py peak MB | rss growth MB |"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, (med, mn, cp, n, peak, rss) in stats.items():
            rm, rn, rc = (f"{v / b:.2f}x" if base else "-"
                          for v, b in zip((med, mn, cp), base or (1, 1, 1)))
            lines.append(f"| {name} | {_ms(med)} | {_ms(mn)} | {_ms(cp)} | {rm} | {rn} | {rc} "
                         f"| {n} | {peak:.1f} | {rss:.1f} |")
            summary.setdefault(cfg_name, {})[name] = f"{rm} ({rn}, {rc})"
        lines.append("")
    names = [c for c in CONTENDERS if any(c in s for s in summary.values())]
    lines += ["### step time relative to numpy: median (min, cpu median)", "",
              "| config (B,T,I,H) | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for cfg_name, row in summary.items():
        lines.append(f"| {cfg_name} {tuple(configs[cfg_name])} | "
                     + " | ".join(row.get(n, "-") for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="LSTM training-step benchmark (see module doc)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=None)
    ap.add_argument("--reps", type=int, default=10, help="timed steps per worker launch")
    ap.add_argument("--rounds", type=int, default=3, help="launches of each contender")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per launch")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 round: a smoke test")
    ap.add_argument("--json", metavar="PATH", help="also write the raw timings here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)  # the worker's config name
    args = ap.parse_args(argv)

    if args.worker:
        cfg = {**CONFIGS, **QUICK}[args.config]
        print(json.dumps(run_worker(args.worker, cfg, args.reps, args.warmup, args.threads)))
        return

    from numpy_lstm import check
    # the baseline must compute the framework's gradients before it is a yardstick
    refs = check(with_torch=not args.quick)  # --quick skips torch here: its import is slow
    configs = QUICK if args.quick else {c: CONFIGS[c] for c in args.configs}
    if args.quick:
        args.reps, args.rounds, args.warmup = 2, 1, 2
    names = [c for c in (args.contenders or available_contenders())]
    load_start = os.getloadavg()[0]
    print(f"baseline gradients checked against: {', '.join(refs)}", file=sys.stderr)
    results: dict[str, dict[str, list[dict]]] = {}
    for cfg_name, cfg in configs.items():
        results[cfg_name] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                res = launch(name, cfg_name, args.reps, args.warmup, args.threads)
                results[cfg_name][name].append(res)
                check_loss(res, results[cfg_name])
                print(f"{cfg_name} round {r + 1}/{args.rounds} {name}: median "
                      f"{_ms(statistics.median(res['times']))} ms", file=sys.stderr)
    cmd = " ".join(["python benchmarks/bench_lstm.py"] + (argv if argv is not None
                                                          else sys.argv[1:]))
    print(f"Machine: {machine_info(args.threads)}; 1-minute load average {load_start:.1f} at "
          f"start, {os.getloadavg()[0]:.1f} at end")
    print(f"Command: `{cmd}` ({args.rounds} rounds x {args.reps} timed steps, "
          f"{args.warmup} warm-up steps per launch)\n")
    print(report(results, configs))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine_info(args.threads), "command": cmd,
                       "configs": configs, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
