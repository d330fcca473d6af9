"""Runs planned stages over the clips of a dataset: one pass per clip, failures recorded, re-runs resume.

The run prepares the entries, finds the clips that lack something, forms the tasks
(:func:`~mer.pipeline.group_pass.plan_tasks`), hands them to an executor (:mod:`mer.pipeline.executors`), comes back
to the clips another run holds, and writes the run report (:class:`~mer.pipeline.outcomes.RunReport`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from mer.config import to_jsonable
from mer.pipeline.executors import execute_clips, execute_groups
from mer.pipeline.graph import PlannedStage
from mer.pipeline.group_pass import plan_tasks
from mer.pipeline.outcomes import ClipOutcome, RunReport
from mer.store.provenance import provenance_record, utc_now
from mer.store.store import Entry, FeatureStore


def prepare_entries(store: FeatureStore, dataset: str, plan: list[PlannedStage]) -> list[Entry]:
    """Create each planned entry (attributes, provenance, dataset arrays) if it does not exist yet."""
    meta = store.manifest_meta(dataset)
    clip_ids = [row[meta["columns"].index("clip_id")] for row in meta["rows"]]
    entries = []
    for planned in plan:
        attrs = {
            "dataset": dataset,
            "stage": planned.stage.name,
            "key": planned.key,
            "recipe": planned.recipe,
            "version": planned.stage.version,
            "params": to_jsonable(planned.params),
            "inputs": planned.inputs,
            "primary": planned.stage.primary,
            "description": planned.stage.description,
            "clip_ids": clip_ids,
            "n_clips": len(clip_ids),
            "manifest_hash": meta["hash"],
            "label_set": meta.get("label_set"),
            "provenance": provenance_record(),
            **planned.stage.entry_attributes(planned.params),
        }
        entries.append(store.ensure_entry(planned.ref(dataset), planned.stage.output_specs(planned.params), attrs))
    return entries


def pending_clips(store: FeatureStore, dataset: str, plan: list[PlannedStage]) -> list[int]:
    """Clip indices that lack at least one planned stage, longest clips first (better load balance)."""
    meta = store.manifest_meta(dataset)
    n = len(meta["rows"])
    done_sets = [store.done_indices(p.ref(dataset)) for p in plan]
    pending = [i for i in range(n) if any(i not in done for done in done_sets)]
    n_col = meta["columns"].index("n_frames") if "n_frames" in meta["columns"] else None
    if n_col is not None:
        pending.sort(key=lambda i: (-int(meta["rows"][i][n_col]), i))
    return pending


def held_claims(store: FeatureStore, dataset: str, plan: list[PlannedStage], indices: list[int]) -> list[dict]:
    """The claim records (host, pid, time, clip) that hold the given clips in any planned entry."""
    wanted = set(indices)
    out = []
    for planned in plan:
        entry = store.entry(planned.ref(dataset))
        for index, holder in store.claims(entry.ref).items():
            if index in wanted and holder is not None:
                out.append({**holder, "clip": entry.clip_ids[index], "stage": planned.stage.name})
    return out


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_plan(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    workers: int | None = None,
    on_outcome: Callable[[ClipOutcome], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    scheduler: str | None = None,
    poll_seconds: float = 0.5,
    on_wait: Callable[[list[dict[str, Any]]], None] | None = None,
    batch_units: int | None = None,
) -> RunReport:
    """Run the plan over every clip that lacks something and report what happened.

    ``workers`` local processes (default: all cores; 1 runs in this process), or the Dask cluster at
    ``scheduler`` (``tcp://host:port``, default ``$DASK_SCHEDULER_ADDRESS`` when set) whose workers write straight
    to the store's location. Clips claimed by a concurrent run are awaited, and taken over if that run dies.
    A stage that computes groups of clips in one call (``Stage.batch``, e.g. ``flow`` with ``tvl1-torch``) gets
    groups of about ``batch_units`` work units (default: the stage's target for its device; ``<= 1``: one clip
    per call); the values stored do not depend on it.
    """
    start = time.perf_counter()
    workers = default_workers() if workers is None else max(1, workers)
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    prepare_entries(store, dataset, plan)
    for planned in plan:  # litter of a process killed between a clip's marker and its claim's release
        store.release_stale_claims(planned.ref(dataset))
    rows = store.manifest(dataset).to_dict(orient="records")
    pending = pending_clips(store, dataset, plan)
    report = RunReport(
        dataset, [p.stage.name for p in plan], len(rows), skipped=len(rows) - len(pending), workers=workers
    )
    if on_start is not None:
        on_start(len(pending), report.skipped)
    carried: dict[int, ClipOutcome] = {}  # stages computed before a clip was deferred, counted when it ends
    while pending:
        deferred = []
        tasks = plan_tasks(store, dataset, plan, pending, rows, workers, batch_units)
        if all(len(task) == 1 for task in tasks):
            outcomes = execute_clips(store, dataset, plan, pending, rows, workers, scheduler)
        else:
            outcomes = execute_groups(store, dataset, plan, tasks, rows, workers, scheduler)
        for outcome in outcomes:
            if outcome.index in carried:
                outcome.absorb(carried.pop(outcome.index))
            if outcome.deferred:
                carried[outcome.index] = outcome
                deferred.append(outcome.index)
                continue
            report.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        pending = sorted(deferred)
        if pending:
            if on_wait is not None:
                on_wait(held_claims(store, dataset, plan, pending))
            time.sleep(poll_seconds)  # another run holds these clips: wait for it, or for its claim to go stale
    report.seconds = time.perf_counter() - start
    name = f"{utc_now().replace(':', '')}_{dataset}_{os.getpid()}"
    store.write_run_report(name, report.to_json())
    return report
