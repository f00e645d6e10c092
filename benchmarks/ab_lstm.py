"""Paired A/B of the LSTM training step: a git revision of tinygrad_rnn against the work tree.

Both versions are imported into one process (the revision's package is extracted with
`git archive` into a temporary directory and imported under the same name, after which the
module cache is swapped), then their steps run alternately with the numpy baseline, single
threaded, timed with time.process_time. Each repetition gives a ratio new/old from adjacent
steps, so a machine whose speed drifts (other processes, a shared core) affects both sides
alike; the median ratio is reported. Use it to judge Python-level overhead; it cannot see
allocator effects: in one long-lived process the heap is already grown, whereas a fresh
process per contender (bench_lstm.py) pays a page fault for every page a step's peak memory
adds, which on this VM costs several microseconds. `--trim` puts that cost back: every step
starts after malloc_trim(0), so it touches fresh pages as a fresh process does. A change that
moves peak memory must be judged with --trim or with bench_lstm.py (see docs/performance.md).

Usage:
  python benchmarks/ab_lstm.py HEAD~1 --configs small long --steps 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: steadier CPU times

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_lstm import BUILDERS, CONFIGS


def import_steps(root: str, names: list[str], configs: list[str]) -> dict:
    """Import tinygrad_rnn from `root` (dropping any cached copy) and build each step."""
    for mod in [m for m in sys.modules if m.split(".")[0] == "tinygrad_rnn"]:
        del sys.modules[mod]
    sys.path.insert(0, root)
    try:
        import tinygrad_rnn
        if not tinygrad_rnn.__file__.startswith(root):
            raise RuntimeError(f"imported {tinygrad_rnn.__file__}, expected one under {root}")
        return {(n, c): BUILDERS[n](CONFIGS[c]) for n in names for c in configs}
    finally:
        sys.path.remove(root)


def _malloc_trim():
    """glibc's malloc_trim(0): hand every free page of the heap back to the OS."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    return lambda: libc.malloc_trim(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="git revision to compare against (e.g. HEAD~1)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["small", "long"])
    ap.add_argument("--contenders", nargs="+", default=["tinygrad_lstm", "tinygrad_loop"],
                    choices=["tinygrad_lstm", "tinygrad_loop"])
    ap.add_argument("--steps", type=int, default=20, help="paired repetitions per config")
    ap.add_argument("--trim", action="store_true",
                    help="malloc_trim(0) before every step: each step then pays for the pages "
                         "its peak memory touches, as in a fresh process (glibc only)")
    args = ap.parse_args()
    trim = _malloc_trim() if args.trim else (lambda: None)
    with tempfile.TemporaryDirectory() as old_root:
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.rev, "tinygrad_rnn"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", old_root], input=archive, check=True)
        old = import_steps(old_root, args.contenders, args.configs)
        new = import_steps(ROOT, args.contenders, args.configs)
        print(f"work tree vs {args.rev}: CPU time per step, median over {args.steps} pairs")
        for cfg in args.configs:
            base = BUILDERS["numpy"](CONFIGS[cfg])
            for name in args.contenders:
                f_old, f_new = old[(name, cfg)], new[(name, cfg)]
                for f in (base, f_old, f_new):
                    f()
                ratio, r_old, r_new = [], [], []
                for i in range(args.steps):
                    spent = {}
                    for f in (base, f_old, f_new) if i % 2 else (base, f_new, f_old):
                        trim()
                        t0 = time.process_time()
                        f()
                        spent[f] = time.process_time() - t0
                    ratio.append(spent[f_new] / spent[f_old])
                    r_old.append(spent[f_old] / spent[base])
                    r_new.append(spent[f_new] / spent[base])
                med = statistics.median
                print(f"  {cfg:6s} {name:14s} new/old {med(ratio):.3f}   vs numpy: "
                      f"{args.rev} {med(r_old):.2f}x, work tree {med(r_new):.2f}x")


if __name__ == "__main__":
    main()
