"""Run every ``benchmarks/bench_*.py`` with sizes chosen by the device (``make bench``).

On a machine with a CUDA device each benchmark runs at its own (full, CASME II-sized) defaults. Without one,
each runs at the quick sizes below, so that the whole set finishes in minutes on a CPU; the figures are then
for the code paths, not for the throughput goals (bench_train's full size takes hours on a CPU). The sizes used
are printed before each benchmark. A benchmark missing from ``QUICK`` runs at its defaults everywhere (and is
named, so that it can be given quick sizes). ``--full`` forces the defaults, ``--quick`` the quick sizes.

    python benchmarks/run_all.py [--full | --quick] [--only bench_flow,bench_face]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK: dict[str, list[str]] = {
    "bench_apex": ["--subjects", "2", "--clips", "2"],
    "bench_codecs": ["--clips", "2", "--repeats", "2"],
    "bench_face": ["--frames", "16", "--repeats", "2"],
    "bench_flow": ["--repeats", "2", "--farneback-pairs", "30", "--tvl1-pairs", "3", "--cross-clips", "4"],
    "bench_overhead": ["--subjects", "1", "--clips-per-subject", "3", "--size", "320x240"],
    "bench_pipeline": ["--subjects", "2", "--clips-per-subject", "2", "--size", "320x240"],
    "bench_store": ["--clips", "4", "--frames", "30", "--s3-clips", "2"],
    "bench_temporal": ["--frames", "50", "--rounds", "5"],
    "bench_train": [
        *("--clips", "24", "--subjects", "4", "--size", "64", "--epochs", "2"),
        *("--max-folds", "4", "--workers", "1", "--fold-repeats", "2"),  # fold-parallel: 4 folds, 2 rounds
    ],
}
"""Arguments of each benchmark on a CPU-only machine (minutes in all on 2 cores)."""


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="every benchmark at its defaults")
    size.add_argument("--quick", action="store_true", help="every benchmark at the quick sizes")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    args = ap.parse_args()
    cuda = has_cuda()
    full = args.full or (cuda and not args.quick)
    print(
        f"device: {'CUDA' if cuda else 'no CUDA device (CPU only)'}; sizes: "
        f"{'full (each benchmark’s defaults)' if full else 'quick (benchmarks/run_all.py QUICK)'}",
        flush=True,
    )
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        wanted = set(args.only.split(","))
        names = [n for n in names if n in wanted]
    for name in names:
        extra = [] if full else QUICK.get(name, [])
        if not full and name not in QUICK:
            print(f"note: {name} has no quick sizes in run_all.py; it runs at its defaults", flush=True)
        print(f"\n=== {name} {' '.join(extra) or '(defaults)'}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *extra])
        print(f"=== {name}: exit {code}, {time.perf_counter() - t0:.0f} s", flush=True)
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
