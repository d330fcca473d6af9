"""Benchmark: ``mer-cli train`` LOSO locally vs ``--scheduler`` on a local Dask cluster (folds as tasks).

Builds a small synthetic store (face stages + MESTI), then trains the same run twice and prints both wall times,
the ratio (local / cluster) and whether the predictions are byte-identical (they must be). The cluster is one
worker per GPU (``mer.cluster.local_gpu_cluster``) where CUDA is available, else ``--workers`` single-threaded CPU
processes; which one is printed. The cluster run is timed twice: on fresh workers (each one's first fold also
imports the models and reads the store) and again on the same, now warm, workers (the inputs cached per worker
process, as for the later folds of a long run). The local run is timed in this already warm process. Defaults
finish in a few minutes on 2 CPU cores::

    python benchmarks/bench_train_cluster.py [--subjects 4 --clips-per-subject 3 --epochs 3 --workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from mer.cli import app


def _invoke(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise SystemExit(f"mer-cli {' '.join(args[:1])} failed: {result.output[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--clips-per-subject", type=int, default=3)
    ap.add_argument("--size", type=int, default=32, help="MESTI image size")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="CPU worker processes (without CUDA)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the local run and of each CPU fold")
    args = ap.parse_args()
    import distributed

    from mer.cluster import local_gpu_cluster

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = str(root / "store")
        t0 = time.perf_counter()
        _invoke(["synth", "--out", str(root / "data"), "--subjects", str(args.subjects), "--clips-per-subject",
                 str(args.clips_per_subject), "--size", "320x240"])
        _invoke(["preprocess", "--root", str(root / "data"), "--store", store, "--name", "synth", "--labels", "3class",
                 "--workers", "1", "--quiet"])
        _invoke(["build-mesti", "--store", store, "--dataset", "synth", "--size", str(args.size), "--workers", "1",
                 "--quiet"])
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.set_num_threads(args.threads)  # the CPU folds on the workers use this count too (the client's)
        print(f"store: {args.subjects} subjects x {args.clips_per_subject} clips, MESTI {args.size} px "
              f"({time.perf_counter() - t0:.1f} s); training LOSO, MEGANet, {args.epochs} epochs on {device}"
              f" ({args.threads} torch thread(s) per fold)")
        train = ["train", "--store", store, "--dataset", "synth", "--input", "mesti", "--epochs", str(args.epochs),
                 "--batch-size", "4", "--device", device, "--seed", "0"]
        t0 = time.perf_counter()
        _invoke([*train, "--out", str(root / "local")])
        local = time.perf_counter() - t0
        if device == "cuda":
            cluster, kind = local_gpu_cluster(), "one worker per GPU"
        else:
            cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None)
            kind = f"{args.workers} single-threaded CPU workers"
        with cluster:
            times = []
            for attempt in ("cold", "warm"):  # cold: each worker's first fold also imports the models, reads the store
                t0 = time.perf_counter()
                _invoke([*train, "--out", str(root / attempt), "--scheduler", cluster.scheduler_address])
                times.append(time.perf_counter() - t0)
        same = all(
            (root / "local" / "predictions.csv").read_bytes() == (root / r / "predictions.csv").read_bytes()
            for r in ("cold", "warm")
        )
        cold, warm = times
        print(f"local (sequential folds, in this warm process): {local:.1f} s")
        print(f"cluster ({kind}, {args.subjects} fold tasks): {cold:.1f} s on fresh workers, {warm:.1f} s on warm ones")
        print(f"ratio local / cluster (warm workers): {local / warm:.2f}x; predictions identical: {same}")
        if not same:
            raise SystemExit("the cluster's predictions differ from the local run's")


if __name__ == "__main__":
    main()
