"""Where a run's tasks execute: in this process, in joblib worker processes, or on a Dask cluster; each task is one
clip (:func:`~mer.pipeline.clip_pass.process_clip`) or one group (:func:`~mer.pipeline.group_pass.process_group`),
and the outcomes come back as they finish."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from mer.pipeline.clip_pass import process_clip
from mer.pipeline.graph import PlannedStage
from mer.pipeline.group_pass import process_group
from mer.pipeline.outcomes import ClipOutcome
from mer.pipeline.worker_setup import as_one_worker, init_worker, worker_store
from mer.store.store import FeatureStore


def _process_in_worker(
    location: str, dataset: str, plan: list[PlannedStage], index: int, row: dict[str, Any]
) -> ClipOutcome:
    """One clip's task in a worker process (or Dask worker thread), on that process's open store."""
    init_worker()
    return process_clip(worker_store(location), dataset, plan, index, row)


def _process_group_in_worker(
    location: str, dataset: str, plan: list[PlannedStage], indices: list[int], rows: list[dict[str, Any]]
) -> list[ClipOutcome]:
    """One group's task in a worker process (or Dask worker thread), on that process's open store."""
    init_worker()
    return process_group(worker_store(location), dataset, plan, indices, rows)


def execute_clips(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    pending: list[int],
    rows: list[dict[str, Any]],
    workers: int,
    scheduler: str | None,
) -> Iterable[ClipOutcome]:
    """The outcomes of the ``pending`` clips, one task each, as they finish: on the Dask cluster at ``scheduler``,
    else in ``workers`` joblib processes, or in this process (as one worker) for one worker or one clip."""
    if scheduler:
        yield from _execute_dask(store.location, dataset, plan, pending, rows, scheduler)
        return
    if workers <= 1 or len(pending) <= 1:
        with as_one_worker():
            for index in pending:
                yield process_clip(store, dataset, plan, index, rows[index])
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=min(workers, len(pending)), return_as="generator_unordered")
    yield from parallel(delayed(_process_in_worker)(store.location, dataset, plan, i, rows[i]) for i in pending)


def execute_groups(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    tasks: list[list[int]],
    rows: list[dict[str, Any]],
    workers: int,
    scheduler: str | None,
) -> Iterable[ClipOutcome]:
    """Like :func:`execute_clips`, for tasks of several clips: each worker receives a group and returns its outcomes."""
    if scheduler:
        from joblib import delayed

        calls = (delayed(_process_group_in_worker)(store.location, dataset, plan, t, [rows[i] for i in t])
                 for t in tasks)
        for outcomes in _run_on_dask(scheduler, calls):
            yield from outcomes
        return
    if workers <= 1 or len(tasks) <= 1:
        with as_one_worker():
            for task in tasks:
                yield from process_group(store, dataset, plan, task, [rows[i] for i in task])
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=min(workers, len(tasks)), return_as="generator_unordered")
    calls = (delayed(_process_group_in_worker)(store.location, dataset, plan, t, [rows[i] for i in t]) for t in tasks)
    for outcomes in parallel(calls):
        yield from outcomes


def dashboard_text(client: Any) -> str:
    """Where the Dask dashboard of a client's scheduler is served (it needs bokeh on the scheduler)."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return "no dashboard (install bokeh where the scheduler runs)"
    return f"dashboard {client.dashboard_link}"


def _execute_dask(
    location: str,
    dataset: str,
    plan: list[PlannedStage],
    pending: list[int],
    rows: list[dict[str, Any]],
    scheduler: str,
) -> Iterable[ClipOutcome]:
    """The same per-clip calls on a Dask ``distributed`` cluster, through joblib's Dask backend."""
    from joblib import delayed

    yield from _run_on_dask(
        scheduler, (delayed(_process_in_worker)(location, dataset, plan, i, rows[i]) for i in pending)
    )


def _run_on_dask(scheduler: str, calls: Iterable[Any]) -> Iterable[Any]:
    """Results of joblib ``delayed`` calls run on the Dask cluster at ``scheduler``, as they finish."""
    try:
        import joblib
        from dask.distributed import Client
    except ImportError:
        raise RuntimeError(
            "a Dask scheduler was given but dask.distributed is missing: pip install 'mer[cluster]'"
        ) from None
    from joblib import Parallel

    with Client(scheduler) as client, joblib.parallel_config(backend="dask"):
        info = client.scheduler_info()
        if not info.get("workers"):
            raise RuntimeError(f"the Dask scheduler at {scheduler} has no workers")
        print(f"Dask scheduler {scheduler}, {len(info['workers'])} workers: {dashboard_text(client)}",
              file=sys.stderr, flush=True)
        parallel = Parallel(n_jobs=-1, return_as="generator_unordered")
        yield from parallel(calls)
