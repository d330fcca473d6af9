"""The dask-jobqueue SLURM recipe: its job script, and a run where a LocalCluster stands in for the SLURM jobs."""

from __future__ import annotations

import pytest
from test_store_s3 import STAGE, STAGES, _expected_images, _prepare, committed

from mer.pipeline.runner import run_plan
from mer.store import open_store

pytest.importorskip("dask.distributed")


def test_slurm_recipe_runs_single_thread_workers_with_the_prologue():
    pytest.importorskip("dask_jobqueue")
    from mer.cluster import slurm_cluster

    cluster = slurm_cluster(jobs=0, cores=4, memory="8GB", walltime="01:00:00", account="mylab",
                            prologue=["source /shared/mer/.venv/bin/activate"])
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -A mylab" in script and "#SBATCH --cpus-per-task=4" in script and "#SBATCH -t 01:00:00" in script
    assert "--nworkers 4" in script and "--nthreads 1" in script
    lines = script.splitlines()
    worker = next(i for i, line in enumerate(lines) if "dask_worker" in line)
    assert lines.index("export OMP_NUM_THREADS=1") < lines.index("source /shared/mer/.venv/bin/activate") < worker


def test_workers_of_a_cluster_write_straight_into_the_shared_store(tiny_dataset, tmp_path, capfd):
    from dask.distributed import LocalCluster

    _, manifest = tiny_dataset
    reference = str(tmp_path / "reference")
    st, plan = _prepare(reference, tiny_dataset)
    run_plan(st, "tiny", plan, workers=1)

    shared = str(tmp_path / "shared")
    st, plan = _prepare(shared, tiny_dataset)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        report = run_plan(st, "tiny", plan, scheduler=cluster.scheduler_address)
        assert f"Dask scheduler {cluster.scheduler_address}, 2 workers" in capfd.readouterr().err
    assert report.computed == {s: 4 for s in STAGES} and report.failures == []
    assert committed(shared) == committed(reference)
    reader = open_store(shared, "r")
    assert reader.verify() == []
    assert reader.read("tiny", STAGE, name="image").tolist() == _expected_images(manifest).tolist()


def test_gpu_slurm_jobs_ask_for_one_gpu_and_declare_it_to_the_folds():
    pytest.importorskip("dask_jobqueue")
    from mer.cluster import slurm_cluster

    cluster = slurm_cluster(jobs=0, cores=4, memory="16GB", gpu=True)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script
    assert "--resources GPU=1" in script and "--nworkers" not in script  # one worker, one fold at a time per GPU


def test_local_gpu_cluster_gives_each_worker_its_own_device():
    import os

    from distributed import Client

    from mer.cluster import local_gpu_cluster

    with local_gpu_cluster(["0", "1"], use_dask_cuda=False) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert sorted(seen.values()) == ["0", "1"]
        assert {w["nthreads"] for w in workers.values()} == {1}
        assert [w["resources"] for w in workers.values()] == [{"GPU": 1}, {"GPU": 1}]
