"""A SLURM cluster for ``preprocess``/``build-*`` through dask-jobqueue: workers write straight into a shared store.

Recipe (see README "Cluster runs")::

    from mer.cluster import slurm_cluster
    cluster = slurm_cluster(jobs=10, cores=8, memory="32GB", walltime="04:00:00", account="mylab")
    # then: mer-cli preprocess ... --store /shared/store --scheduler <cluster.scheduler_address>

or ``python -m mer.cluster --jobs 10 --cores 8 --memory 32GB`` keeps such a cluster up and prints its address.
Each SLURM job runs ``cores`` single-threaded worker processes (a clip is one task; OpenCV and numba get one thread
each, as in local runs). Jobs inherit the submitting shell's environment (``sbatch --export=ALL``, SLURM's
default), so ``AWS_*``/``MER_STORAGE_OPTIONS`` reach the workers of an ``s3://`` store.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

WORKER_PROLOGUE = ("export OMP_NUM_THREADS=1", "export MKL_NUM_THREADS=1", "export OPENBLAS_NUM_THREADS=1")


def slurm_cluster(
    jobs: int,
    cores: int = 8,
    memory: str = "32GB",
    walltime: str = "04:00:00",
    queue: str | None = None,
    account: str | None = None,
    prologue: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """Start a dask-jobqueue ``SLURMCluster`` of ``jobs`` SLURM jobs, each with ``cores`` single-thread workers.

    ``prologue``: shell lines run before the workers start (e.g. ``source /shared/mer/.venv/bin/activate``);
    other keyword arguments go to ``SLURMCluster`` unchanged."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise RuntimeError("the SLURM recipe needs dask-jobqueue: pip install 'mer[cluster]'") from None
    cluster = SLURMCluster(
        cores=cores,
        processes=cores,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        job_script_prologue=[*WORKER_PROLOGUE, *prologue],
        **kwargs,
    )
    cluster.scale(jobs=jobs)
    return cluster


def main(argv: Sequence[str] | None = None) -> None:
    """Keep a SLURM cluster up, print its scheduler and dashboard addresses, stop on Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m mer.cluster", description=main.__doc__)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--memory", default="32GB")
    parser.add_argument("--walltime", default="04:00:00")
    parser.add_argument("--queue")
    parser.add_argument("--account")
    parser.add_argument("--prologue", action="append", default=[], help="shell line run before the workers")
    args = parser.parse_args(argv)
    cluster = slurm_cluster(args.jobs, args.cores, args.memory, args.walltime, args.queue, args.account, args.prologue)
    print(f"export DASK_SCHEDULER_ADDRESS={cluster.scheduler_address}", flush=True)
    print(f"dashboard: {cluster.dashboard_link}", flush=True)
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
