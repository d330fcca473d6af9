"""Groups of clips for a plan's batching stage (``Stage.batch``): which clips go together, and one group's pass,
the batching stage in one call for the group and the other stages clip by clip."""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import numpy as np

from mer.pipeline.clip_pass import input_reader, open_entries, process_clip
from mer.pipeline.context import ClipContext, clip_fingerprint
from mer.pipeline.graph import PlannedStage
from mer.pipeline.grouping import group_clips
from mer.pipeline.outcomes import ClipOutcome
from mer.store.store import Entry, FeatureStore


def batch_stage_position(plan: list[PlannedStage]) -> int | None:
    """Where the first stage that computes groups of clips in one call (``Stage.batch``) is in the plan."""
    return next((k for k, p in enumerate(plan) if p.stage.batch is not None), None)


def plan_tasks(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    pending: list[int],
    rows: list[dict[str, Any]],
    workers: int = 1,
    batch_units: int | None = None,
) -> list[list[int]]:
    """The clips each task runs: groups for the plan's batching stage, one clip per task otherwise.

    Clips that lack the batching stage are grouped by :func:`~mer.pipeline.grouping.group_clips` to the stage's
    target for its params (``batch_units`` overrides it; ``<= 1`` turns grouping off); the others, and every clip
    of a plan without such a stage, are tasks of their own, as :func:`~mer.pipeline.clip_pass.process_clip` runs them.
    """
    k = batch_stage_position(plan)
    if k is None:
        return [[i] for i in pending]
    planned = plan[k]
    batch = planned.stage.batch
    target = batch.target(planned.params) if batch_units is None else batch_units
    if target <= 1:
        return [[i] for i in pending]
    done = store.done_indices(planned.ref(dataset))
    needing = [i for i in pending if i not in done]
    groups = group_clips([(i, batch.units(rows[i], planned.params)) for i in needing], target, workers)
    return groups + [[i] for i in pending if i in done]


def process_group(
    store: FeatureStore, dataset: str, plan: list[PlannedStage], indices: list[int], rows: list[dict[str, Any]]
) -> list[ClipOutcome]:
    """Run the plan over a group of clips, the plan's batching stage in one call for the whole group.

    ``rows`` are the clips' table rows, in the order of ``indices``. The stages before the batching stage run
    clip by clip (:func:`~mer.pipeline.clip_pass.process_clip` on that part of the plan), then the batching stage
    for the clips that reached it, then the stages after it clip by clip, from the batching stage's values in
    memory (the entries are opened once, and no stage's commit marker is checked again). Each clip is claimed,
    committed, failed and reported on its own: a clip that fails (or is held by another process) leaves the group;
    the others go on.
    """
    k = batch_stage_position(plan)
    if k is None or len(indices) == 1:
        return [process_clip(store, dataset, plan, i, row) for i, row in zip(indices, rows, strict=True)]
    by_index = dict(zip(indices, rows, strict=True))
    entries = open_entries(store, dataset, plan)
    outcomes: dict[int, ClipOutcome] = {}
    for i, row in by_index.items():
        if k > 0:
            outcomes[i] = process_clip(store, dataset, plan[:k], i, row, entries)
        else:
            outcomes[i] = ClipOutcome(i, row["clip_id"], pid=os.getpid())
    reached = [i for i, o in outcomes.items() if o.error is None and not o.deferred]
    computed = _compute_group_stage(store, plan, k, reached, by_index, outcomes, entries)
    if k + 1 < len(plan):
        for i in reached:
            earlier = outcomes[i]
            if earlier.error is None and not earlier.deferred:  # the stages up to the batching one are done
                outcomes[i] = process_clip(store, dataset, plan[k + 1 :], i, by_index[i], entries, computed.pop(i, {}))
                outcomes[i].absorb(earlier)
    return [outcomes[i] for i in indices]


def _compute_group_stage(
    store: FeatureStore,
    plan: list[PlannedStage],
    k: int,
    indices: list[int],
    rows: dict[int, dict[str, Any]],
    outcomes: dict[int, ClipOutcome],
    entries: dict[str, Entry],
) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """Claim the group's clips for stage ``k``, compute the claimed ones in one call, commit each on its own.

    Returns the stage's outputs of each clip committed here (by clip index, then stage and output name), for the
    stages after it."""
    planned = plan[k]
    name, batch = planned.stage.name, planned.stage.batch
    entry = entries[name]
    start = time.perf_counter()
    claimed: list[int] = []
    computed: dict[int, dict[str, dict[str, np.ndarray]]] = {}

    def fail(i: int, exc: BaseException) -> None:
        outcomes[i].failed_stage = name
        outcomes[i].error = f"{type(exc).__name__}: {exc}"
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=6))
        store.record_failure(entry, i, name, outcomes[i].error + "\n" + text)

    try:
        for i in indices:
            if store.is_done(entry, i):
                continue
            if not store.try_claim(entry, i):
                outcomes[i].deferred = True
                continue
            claimed.append(i)
            try:
                if store.is_done(entry, i):
                    claimed.remove(i)  # finished by another process between our check and our claim
                    store.release_claim(entry, i)
                elif store.reuse_clip(entry, i, clip_fingerprint(rows[i])):
                    outcomes[i].reused.append(name)
                    claimed.remove(i)
                    store.release_claim(entry, i)
            except Exception as exc:
                fail(i, exc)
                claimed.remove(i)
                store.release_claim(entry, i)
        if not claimed:
            return computed
        ctxs = [ClipContext(rows[i], i, input_reader(store, entries, rows[i]), private_frames=True) for i in claimed]
        t0 = time.perf_counter()
        seconds: list[float] | None = None
        try:
            results = batch.compute_many(ctxs, planned.params)
            if len(results) != len(ctxs):
                raise RuntimeError(f"{name}: compute_many gave {len(results)} results for {len(ctxs)} clips")
        except Exception:  # the group's call failed: each clip alone, so that each fails with its own error
            results, seconds = [], []
            for ctx in ctxs:
                t1 = time.perf_counter()
                results.append(_compute_alone(planned, ctx))
                seconds.append(time.perf_counter() - t1)
        if seconds is None:  # the call's time, shared by the clips' work units
            units = [max(1, batch.units(rows[i], planned.params)) for i in claimed]
            seconds = [(time.perf_counter() - t0) * n / sum(units) for n in units]
        claiming = (t0 - start) / len(ctxs)  # the claims and checks before the call, shared evenly
        for i, ctx, result, spent in zip(list(claimed), ctxs, results, seconds, strict=True):
            outcome = outcomes[i]
            outcome.stage_seconds[name] = spent
            outcome.compute_seconds += spent
            t1 = time.perf_counter()
            try:
                if isinstance(result, BaseException):
                    fail(i, result)
                    continue
                store.commit_clip(entry, i, result, clip_fingerprint(rows[i]))
                outcome.computed.append(name)
                computed[i] = {name: {o.name: result[o.name] for o in planned.stage.outputs}}
            except Exception as exc:
                fail(i, exc)
            finally:
                claimed.remove(i)
                store.release_claim(entry, i)
                outcome.frames += ctx.frames_decoded
                outcome.seconds += claiming + spent + time.perf_counter() - t1
    finally:
        for i in claimed:  # interrupted before the commit loop: leave no claim behind
            store.release_claim(entry, i)
    return computed


def _compute_alone(planned: PlannedStage, ctx: ClipContext) -> dict[str, Any] | Exception:
    try:
        return planned.stage.compute(ctx, planned.params)
    except Exception as exc:
        return exc
