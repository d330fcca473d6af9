"""Benchmark: ``mer-cli train`` LOSO locally vs ``--scheduler`` on a local Dask cluster (folds as tasks).

Builds a small synthetic store (face stages + MESTI), then trains the same run twice and prints both wall times,
the ratio (local / cluster) and whether the predictions are byte-identical (they must be). The cluster is one
worker per GPU (``mer.cluster.local_gpu_cluster``) where CUDA is available, else ``--workers`` single-threaded CPU
processes; which one is printed. The cluster's time includes its workers' start-up (importing torch) and each
worker reading the inputs from the store once. Defaults finish in a few minutes on 2 CPU cores::

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
        print(f"store: {args.subjects} subjects x {args.clips_per_subject} clips, MESTI {args.size} px "
              f"({time.perf_counter() - t0:.1f} s); training LOSO, MEGANet, {args.epochs} epochs on {device}")
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
            t0 = time.perf_counter()
            _invoke([*train, "--out", str(root / "cluster"), "--scheduler", cluster.scheduler_address])
            remote = time.perf_counter() - t0
        same = (root / "local" / "predictions.csv").read_bytes() == (root / "cluster" / "predictions.csv").read_bytes()
        print(f"local (sequential folds): {local:.1f} s")
        print(f"cluster ({kind}, {args.subjects} fold tasks): {remote:.1f} s")
        print(f"ratio local / cluster: {local / remote:.2f}x; predictions identical: {same}")
        if not same:
            raise SystemExit("the cluster's predictions differ from the local run's")


if __name__ == "__main__":
    main()
