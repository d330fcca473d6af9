"""Dask clusters for ``--scheduler``: SLURM jobs (dask-jobqueue) whose workers write straight into a shared store, and
one worker per GPU for folds as tasks.

Recipe (see README "Cluster runs")::

    from mer.cluster import slurm_cluster
    cluster = slurm_cluster(jobs=10, cores=8, memory="32GB", walltime="04:00:00", account="mylab")
    # then: mer-cli preprocess ... --store /shared/store --scheduler <cluster.scheduler_address>

or ``python -m mer.cluster --jobs 10 --cores 8 --memory 32GB`` keeps such a cluster up and prints its address.
For ``train``/``reproduce --scheduler`` on one multi-GPU machine, ``python -m mer.cluster --local-gpus all`` keeps up
one single-threaded worker per GPU, each seeing only its own (``CUDA_VISIBLE_DEVICES``) and declaring the resource
``GPU=1`` (:func:`local_gpu_cluster`; dask-cuda's ``LocalCUDACluster`` when installed).
Each SLURM job runs ``cores`` single-threaded worker processes (a clip is one task; OpenCV and numba get one thread
each, as in local runs). Jobs inherit the submitting shell's environment (``sbatch --export=ALL``, SLURM's
default), so ``AWS_*``/``MER_STORAGE_OPTIONS`` reach the workers of an ``s3://`` store.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

GPU_RESOURCE = "GPU"  # the worker resource a fold asks for (mer.train.distributed)
WORKER_PROLOGUE = ("export OMP_NUM_THREADS=1", "export MKL_NUM_THREADS=1", "export OPENBLAS_NUM_THREADS=1")


def slurm_cluster(
    jobs: int,
    cores: int = 8,
    memory: str = "32GB",
    walltime: str = "04:00:00",
    queue: str | None = None,
    account: str | None = None,
    prologue: Sequence[str] = (),
    gpu: bool = False,
    **kwargs: Any,
) -> Any:
    """Start a dask-jobqueue ``SLURMCluster`` of ``jobs`` SLURM jobs, each with ``cores`` single-thread workers.

    ``prologue``: shell lines run before the workers start (e.g. ``source /shared/mer/.venv/bin/activate``);
    ``gpu``: for ``train --scheduler``, each job asks SLURM for one GPU (``--gres=gpu:1``, which sets its
    ``CUDA_VISIBLE_DEVICES``) and runs one worker with ``cores`` threads for its data work that declares the
    resource ``GPU=1``. Other keyword arguments go to ``SLURMCluster`` unchanged."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise RuntimeError("the SLURM recipe needs dask-jobqueue: pip install 'mer[cluster]'") from None
    if gpu:
        kwargs["job_extra_directives"] = [*kwargs.get("job_extra_directives", []), "--gres=gpu:1"]
        kwargs["worker_extra_args"] = [*kwargs.get("worker_extra_args", []), "--resources", f"{GPU_RESOURCE}=1"]
    cluster = SLURMCluster(
        cores=cores,
        processes=1 if gpu else cores,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        job_script_prologue=[*WORKER_PROLOGUE, *prologue],
        **kwargs,
    )
    cluster.scale(jobs=jobs)
    return cluster


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` items (its own list when set, else 0..n-1)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def local_gpu_cluster(
    devices: Sequence[str] | None = None, host: str = "127.0.0.1", use_dask_cuda: bool = True, **kwargs: Any
) -> Any:
    """One single-threaded worker process per GPU of this machine, for folds as tasks (``train --scheduler``).

    Worker ``i`` sees only ``devices[i]`` (``CUDA_VISIBLE_DEVICES``, so it trains on ``cuda``) and declares the
    resource ``GPU=1``, which every fold asks for: one fold per GPU at a time. ``devices`` default to
    :func:`visible_gpus`. dask-cuda's ``LocalCUDACluster`` is used when installed (unless ``use_dask_cuda=False``),
    else plain ``distributed`` nannies, each with its device in its environment. Other keyword arguments go to the
    cluster unchanged."""
    devices = list(devices) if devices is not None else visible_gpus()
    if not devices:
        raise RuntimeError("no GPU is visible here (CUDA_VISIBLE_DEVICES is empty or torch sees none)")
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        LocalCUDACluster = None  # noqa: N806
    if use_dask_cuda and LocalCUDACluster is not None:
        return LocalCUDACluster(
            CUDA_VISIBLE_DEVICES=",".join(devices), threads_per_worker=1, resources={GPU_RESOURCE: 1}, host=host,
            **kwargs,
        )
    from distributed import Nanny, Scheduler, SpecCluster

    workers = {
        f"gpu{device}": {
            "cls": Nanny,
            "options": {"nthreads": 1, "resources": {GPU_RESOURCE: 1}, "env": {"CUDA_VISIBLE_DEVICES": device},
                        "host": host},
        }
        for device in devices
    }
    dashboard = kwargs.pop("dashboard_address", ":0")
    scheduler = {"cls": Scheduler, "options": {"host": host, "dashboard_address": dashboard}}
    return SpecCluster(workers=workers, scheduler=scheduler, **kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    """Keep a SLURM cluster up, print its scheduler and dashboard addresses, stop on Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m mer.cluster", description=main.__doc__)
    parser.add_argument("--jobs", type=int, help="SLURM jobs (each of --cores single-thread workers)")
    parser.add_argument("--local-gpus", help="instead of SLURM: one worker per GPU here, 'all' or a list such as 0,1")
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--memory", default="32GB")
    parser.add_argument("--walltime", default="04:00:00")
    parser.add_argument("--queue")
    parser.add_argument("--account")
    parser.add_argument("--prologue", action="append", default=[], help="shell line run before the workers")
    parser.add_argument("--gpu", action="store_true", help="one GPU per SLURM job, one fold worker each")
    args = parser.parse_args(argv)
    if args.local_gpus:
        cluster = local_gpu_cluster(None if args.local_gpus == "all" else args.local_gpus.split(","))
    elif args.jobs:
        cluster = slurm_cluster(
            args.jobs, args.cores, args.memory, args.walltime, args.queue, args.account, args.prologue, args.gpu
        )
    else:
        parser.error("give --jobs (a SLURM cluster) or --local-gpus (one worker per GPU of this machine)")
    print(f"export DASK_SCHEDULER_ADDRESS={cluster.scheduler_address}", flush=True)
    print(f"dashboard: {cluster.dashboard_link}", flush=True)
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
