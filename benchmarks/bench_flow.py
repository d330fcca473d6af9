"""Throughput of the flow kernels at 256×256: pairs per second for 1 and 2 worker processes (joblib/loky)
and 1 or 2 OpenCV threads per worker, with the parallel efficiency on 2 cores.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_flow.py [--repeats 3] [--farneback-pairs 120]
                                                           [--tvl1-pairs 12] [--size 256]

Columns: pairs/s over the batch's wall time (best and median of ``--repeats``); wall efficiency = pairs/s
÷ (workers × best pairs/s of 1 worker with 1 thread); CPU ms/pair = process CPU time per pair (best);
CPU efficiency = CPU per pair of 1 worker × 1 thread ÷ CPU per pair of the configuration (100 % means
running side by side costs the kernel nothing extra: no memory-bandwidth or cache contention); CPU/wall =
a worker's CPU time over its wall time (> 1 only when OpenCV's extra threads actually get a core). The
pool is warmed up first so process start-up is not counted; configurations are interleaved per repeat.
Frames: the Grace Hopper face, warped by a smooth ≈1.5 px field.

Measured on the shared 2-core development machine, OpenCV 5.0.0, with other agents' jobs running
(load average 3.4–5.5, i.e. the two cores were never free; wall-clock figures are noisy, CPU figures
are not). Two runs (``--tvl1-pairs 6 --repeats 3``):

    method     workers threads | run 1: pairs/s best  wall eff  CPU eff | run 2: pairs/s best  wall eff
    farneback  1       1       |        72.2          100 %     100 %   |        67.1          100 %
    farneback  1       2       |        73.7          102 %     101 %   |        68.3          102 %
    farneback  2       1       |       125.0           87 %     100 %   |        67.8           51 %
    farneback  2       2       |        85.1           59 %      99 %   |        65.5           49 %
    tvl1       1       1       |         2.27         100 %     100 %   |         2.22         100 %
    tvl1       1       2       |         2.41         106 %      96 %   |         2.19          99 %
    tvl1       2       1       |         4.56         100 %     101 %   |         2.15          48 %
    tvl1       2       2       |         2.83          62 %      95 %   |         2.05          46 %

CPU per pair: Farneback ≈14 ms, TV-L1 ≈0.43–0.45 s (defaults). Run 1 had spare CPU at times: 2 workers ×
1 thread reached 87 % (Farneback) and 100 % (TV-L1) wall efficiency, above the 85 % goal; in run 2 another
agent held a full core throughout, so 2 workers could not beat 1 (wall ≈50 %) although the CPU cost per
pair stayed within 3–4 % (CPU efficiency 96–97 %): the kernels scale across processes, the machine did not
have the second core to give. Threads: Farneback never gains from a second OpenCV thread (CPU/wall ≈1);
TV-L1 has parallel loops but gained ≤ 6 % here, as the cores were busy; 2 workers × 2 threads
oversubscribes the cores and was the worst configuration in both runs (59–62 % in run 1). Hence
``recommended_cv_threads``: Farneback 1 thread per worker always; TV-L1 ``cores // workers`` (2 for a
lone worker on 2 cores, 1 with 2 workers) — processes first, threads only for idle cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed


def make_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A real face (Grace Hopper) resized to ``size`` and a copy warped by a smooth ≈1.5 px field."""
    import matplotlib
    from scipy import ndimage

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)[120:376, 140:396]
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    gx = xx - 1.5 * np.sin(2 * np.pi * yy / (0.7 * size))
    gy = yy - 1.0 * np.cos(2 * np.pi * xx / (0.6 * size))
    b = ndimage.map_coordinates(grey, [gy, gx], order=3, mode="reflect")
    return grey.astype(np.uint8), np.clip(np.rint(b), 0, 255).astype(np.uint8)


def work(method: str, a: np.ndarray, b: np.ndarray, n: int, threads: int) -> tuple[float, float]:
    """Run ``n`` flows with ``threads`` OpenCV threads in this process → (wall s, process CPU s)."""
    from mer.pipeline.flow import compute_flow

    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            compute_flow(a, b, method)  # type: ignore[arg-type]
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        cv2.setNumThreads(before)


def run_config(pool, method, a, b, n, workers, threads) -> tuple[float, float, float]:
    """``workers`` processes each doing ``n`` pairs → (pairs/s over the batch's wall time, CPU s per pair,
    CPU/wall ratio of a worker: ≈1 single-threaded, up to ``threads`` when OpenCV's threads do work)."""
    t0 = time.perf_counter()
    if workers == 1:
        out = [work(method, a, b, n, threads)]
    else:
        out = pool(delayed(work)(method, a, b, n, threads) for _ in range(workers))
    wall = time.perf_counter() - t0
    cpu = sum(c for _, c in out) / (workers * n)
    return workers * n / wall, cpu, statistics.mean(c / w for w, c in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--farneback-pairs", type=int, default=120)
    ap.add_argument("--tvl1-pairs", type=int, default=12)
    ap.add_argument("--methods", default="farneback,tvl1")
    args = ap.parse_args()

    a, b = make_pair(args.size)
    cores = os.cpu_count() or 1
    print(
        f"flow benchmark: {args.size}×{args.size} grey, {cores} cores, OpenCV {cv2.__version__}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    configs = [(1, 1), (1, 2), (2, 1), (2, 2)]
    rows = []
    with Parallel(n_jobs=2, backend="loky") as pool:
        pool(delayed(work)("farneback", a, b, 1, 1) for _ in range(2))  # warm the workers up
        for method in args.methods.split(","):
            n = args.farneback_pairs if method == "farneback" else args.tvl1_pairs
            res: dict[tuple[int, int], list[tuple[float, float, float]]] = {c: [] for c in configs}
            for _ in range(args.repeats):  # interleave configs so that load changes hit them alike
                for workers, threads in configs:
                    res[(workers, threads)].append(run_config(pool, method, a, b, n, workers, threads))
            base = max(r[0] for r in res[(1, 1)])
            base_cpu = min(r[1] for r in res[(1, 1)])
            for c in configs:
                best, med = max(r[0] for r in res[c]), statistics.median(r[0] for r in res[c])
                cpu, ratio = min(r[1] for r in res[c]), statistics.median(r[2] for r in res[c])
                eff = 100 * best / (c[0] * base)
                rows.append((method, *c, best, med, eff, 1000 * cpu, 100 * base_cpu / cpu, ratio))
    print(
        f"{'method':10} {'workers':>7} {'threads':>7} {'pairs/s best':>12} {'median':>7} {'wall eff':>9} "
        f"{'CPU ms/pair':>11} {'CPU eff':>8} {'CPU/wall':>8}"
    )
    for method, workers, threads, best, med, eff, cpu, ceff, ratio in rows:
        print(
            f"{method:10} {workers:7d} {threads:7d} {best:12.2f} {med:7.2f} {eff:8.1f}% "
            f"{cpu:11.1f} {ceff:7.1f}% {ratio:8.2f}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at end (the machine is shared: expect ±10–20 % noise)")
    from mer.pipeline.flow import recommended_cv_threads

    for method in args.methods.split(","):
        print(
            f"recommended_cv_threads({method!r}, workers=1/2) = "
            f"{recommended_cv_threads(method, 1)}/{recommended_cv_threads(method, 2)}"
        )  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
