"""Profile one contender of bench_lstm.py with cProfile: where does a training step's time go?

Usage:
  python benchmarks/profile_lstm.py tinygrad_lstm --config long --steps 5 [--top 25]
  python benchmarks/profile_lstm.py tinygrad_loop --config small --sort cumulative

Runs --warmup untimed steps, then --steps steps under cProfile, and prints the --top
functions by --sort (tottime: time inside the function itself; cumulative: with callees),
after the share of the total spent in each source file.
cProfile adds a roughly constant cost per Python call, so it overstates the Python share;
read it for the ranking, and bench_lstm.py for the times. For an unbiased sampling profile:
  py-spy record -r 1000 -f raw -o prof.txt -- python benchmarks/profile_lstm.py tinygrad_lstm \
      --config long --steps 40 --plain
  python benchmarks/profile_lstm.py --summarize prof.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
from collections import defaultdict

from bench_lstm import BUILDERS, CONFIGS, QUICK


def by_file(stats: pstats.Stats) -> dict[str, float]:
    """Own time (tottime) summed per source file; C functions under '<built-in>'. The numpy
    arithmetic behind an operator (a @ b, a * b) counts in the Python frame that uses it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    totals: dict[str, float] = defaultdict(float)
    for (path, _, _), (_, _, tottime, _, _) in stats.stats.items():
        name = "<built-in>" if path == "~" else os.path.relpath(path, root)
        totals[name if not name.startswith("..") else os.path.basename(path)] += tottime
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def summarize_collapsed(path: str, top: int) -> str:
    """Read py-spy's raw (collapsed) output: the share of samples per phase (forward, backward)
    and per innermost line. A C call (numpy) counts on the Python line that made it."""
    phases: dict[str, int] = defaultdict(int)
    lines: dict[str, int] = defaultdict(int)
    total = 0
    with open(path) as fh:
        for row in fh:
            stack, _, n = row.rstrip().rpartition(" ")
            frames, count = stack.split(";"), int(n)
            total += count
            phase = ("backward" if any(f.startswith("run_backward") for f in frames) else
                     "forward" if any(f.startswith("build_") for f in frames) else "other")
            phases[phase] += count
            lines[frames[-1]] += count
    out = [f"{total} samples: " + ", ".join(f"{k} {v / total:.0%}" for k, v in
                                              sorted(phases.items(), key=lambda kv: -kv[1]))]
    for frame, count in sorted(lines.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {count / total:6.1%}  {frame}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("contender", choices=list(BUILDERS), nargs="?")
    ap.add_argument("--summarize", metavar="RAW", help="summarise a py-spy raw file and exit")
    ap.add_argument("--config", choices=list({**CONFIGS, **QUICK}), default="small")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    ap.add_argument("--plain", action="store_true",
                    help="no cProfile: just run the steps, for a sampler such as py-spy")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS / torch threads (1: stable numbers on a busy machine)")
    args = ap.parse_args()
    if args.summarize:
        print(summarize_collapsed(args.summarize, args.top))
        return
    if args.contender is None:
        ap.error("a contender is needed unless --summarize is given")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # read when numpy is first imported, below
    if args.contender.startswith("torch"):
        import torch
        torch.set_num_threads(args.threads)
    step = BUILDERS[args.contender]({**CONFIGS, **QUICK}[args.config])
    for _ in range(args.warmup):
        step()
    if args.plain:
        for _ in range(args.steps):
            step()
        return
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.steps):
        step()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    print(f"{args.contender} at {args.config}: {total / args.steps * 1e3:.1f} ms per step "
          f"under cProfile ({args.threads} thread(s)). Own time per file:")
    for name, t in by_file(stats).items():
        if t / total >= 0.005:
            print(f"  {t / total:6.1%}  {name}")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
