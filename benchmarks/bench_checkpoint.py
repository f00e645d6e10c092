"""Benchmark activation checkpointing: an LSTM training step, plain unroll vs checkpointed chunks.

The workload (issue 12, item 6): time-major X (T, B, I), one nn.LSTM layer (H hidden), the loss
mean((out - Y)^2) over every step's output, then backward to every weight. No optimizer
update. float32 throughout. Contenders:

  plain       out, _ = lstm(X); loss = mse(out, Y); loss.backward()
  checkpoint  the same over chunks of --chunk steps, each chunk's LSTM and its share of the
              loss inside checkpoint(...), the (h, c) state carried from chunk to chunk

Method: each contender runs in its own fresh process (`--worker`) with the same BLAS thread
count (--threads, default 1, set before numpy loads). A worker builds the model from the same seed, runs
one untimed warm-up step, then --repeats timed steps (wall time, perf_counter; min and median
reported), then one more step under tracemalloc: "peak" is the traced peak during that step
minus what was allocated before it (numpy reports its buffers to tracemalloc, so this is the
step's peak of arrays plus Python objects). "rss" is the worker's ru_maxrss at the end, the
whole process's high-water mark (interpreter and numpy included). The two losses must agree.
Target: checkpoint peak <= 1/4 of plain's, checkpoint time <= 1.5x plain's.

Usage:
  python benchmarks/bench_checkpoint.py                    # H=256, B=16, T=2048, chunks of 64
  python benchmarks/bench_checkpoint.py --threads 2 --repeats 5
  python benchmarks/bench_checkpoint.py --quick            # smoke test: tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONTENDERS = ("plain", "checkpoint")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2048)
    ap.add_argument("--input", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=64, help="time steps per checkpointed chunk")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads per worker (default 1: on a shared machine, more "
                         "threads spin-wait and time becomes noise)")
    ap.add_argument("--keep-heap", action="store_true",
                    help="run both workers with glibc's heap trimming off "
                         "(MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_): a checkpointed "
                         "chunk's recomputed arrays then reuse the pages the last chunk freed "
                         "instead of faulting fresh ones in")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    ap.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for name in ("hidden", "batch", "steps", "input", "chunk", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name} must be >= 1, got {value}")
    if args.quick:
        args.hidden, args.batch, args.steps, args.input, args.chunk = 8, 2, 12, 3, 4
        args.repeats = 1
    return args


# ---- worker: one contender in its own process ------------------------------------------------

def build(args: argparse.Namespace, name: str):
    """The model, the data and a step() -> loss for contender `name`."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from tinygrad_rnn import Tensor, nn
    from tinygrad_rnn.checkpoint import checkpoint
    np.random.seed(0)
    lstm = nn.LSTM(args.input, args.hidden)
    rng = np.random.default_rng(1)
    T, B = args.steps, args.batch
    x = Tensor(rng.standard_normal((T, B, args.input), dtype=np.float32))
    y = Tensor(rng.standard_normal((T, B, args.hidden), dtype=np.float32))
    n = float(T * B * args.hidden)

    def chunk_loss(x_c: Tensor, y_c: Tensor, h: Tensor, c: Tensor):
        out, (h, c) = lstm(x_c, (h, c))
        d = out - y_c
        return (d * d).sum() / n, h, c

    def plain() -> float:
        out, _ = lstm(x)
        d = out - y
        loss = (d * d).sum() / n
        loss.backward()
        return loss.item()

    def chunked() -> float:
        h = c = Tensor(np.zeros((1, B, args.hidden), np.float32))
        loss = Tensor(np.zeros((), np.float32))
        for t in range(0, T, args.chunk):
            part, h, c = checkpoint(chunk_loss, x[t:t + args.chunk], y[t:t + args.chunk], h, c)
            loss = loss + part
        loss.backward()
        return loss.item()

    def step() -> float:
        for p in lstm.parameters():
            p.grad = None
        return plain() if name == "plain" else chunked()
    return step


def run_worker(args: argparse.Namespace) -> dict:
    import resource
    import tracemalloc
    step = build(args, args.worker)
    step()  # warm-up
    times, cpu = [], []
    for _ in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux
    return {"name": args.worker, "times": times, "cpu": cpu, "loss": loss, "peak_mb": peak / 2**20,
            "rss_mb": rss}


# ---- driver ---------------------------------------------------------------------------------

def launch(args: argparse.Namespace, name: str, threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if args.keep_heap:  # both contenders alike
        env["MALLOC_TRIM_THRESHOLD_"] = env["MALLOC_MMAP_THRESHOLD_"] = str(2**31)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
           "--hidden", str(args.hidden), "--batch", str(args.batch), "--steps", str(args.steps),
           "--input", str(args.input), "--chunk", str(args.chunk),
           "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return
    threads = args.threads
    print(f"LSTM H={args.hidden} B={args.batch} T={args.steps} I={args.input}, chunks of "
          f"{args.chunk}, float32; {threads} BLAS threads; {machine()}"
          + ("; glibc heap trimming off" if args.keep_heap else ""))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = {name: launch(args, name, threads) for name in CONTENDERS}
    plain, ckpt = results["plain"], results["checkpoint"]
    if abs(plain["loss"] - ckpt["loss"]) > 1e-4 * max(1.0, abs(plain["loss"])):
        raise RuntimeError(f"the losses differ: plain {plain['loss']}, checkpoint "
                           f"{ckpt['loss']}")
    print(f"{'contender':<12}{'min s':>9}{'median s':>10}{'min cpu s':>11}{'peak MB':>10}"
          f"{'rss MB':>9}")
    for r in (plain, ckpt):
        ts = sorted(r["times"])
        print(f"{r['name']:<12}{ts[0]:>9.3f}{ts[len(ts) // 2]:>10.3f}{min(r['cpu']):>11.3f}"
              f"{r['peak_mb']:>10.1f}{r['rss_mb']:>9.1f}")
    mem = ckpt["peak_mb"] / plain["peak_mb"]
    wall = min(ckpt["times"]) / min(plain["times"])
    cpu = min(ckpt["cpu"]) / min(plain["cpu"])
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"checkpoint / plain: peak {mem:.3f} (target <= 0.25), time {wall:.2f}x wall, "
          f"{cpu:.2f}x cpu (target <= 1.5x); load average {load:.2f} at start, {end:.2f} at end")


if __name__ == "__main__":
    main()
