"""One clip's pass over a plan: claim each stage it lacks, compute it, commit it (commits finish on a background
thread while the next stage computes), and record a failure without stopping the other clips."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from mer.pipeline.context import ClipContext, clip_fingerprint
from mer.pipeline.graph import PlannedStage
from mer.pipeline.outcomes import ClipOutcome
from mer.store.commit_queue import CommitQueue
from mer.store.store import Entry, FeatureStore


def open_entries(store: FeatureStore, dataset: str, plan: list[PlannedStage]) -> dict[str, Entry]:
    """The plan's entries by stage name (each opened once per store: an entry's attributes never change)."""
    return {p.stage.name: store.entry(p.ref(dataset)) for p in plan}


def input_reader(store: FeatureStore, entries: dict[str, Entry], row: dict[str, Any]) -> Callable[..., Any]:
    """How a clip's context reads an upstream output that its pass did not compute: from the stage's entry."""

    def read_input(stage: str, name: str | None) -> Any:
        return store.read_entry(entries[stage], clip=row["clip_id"], name=name)

    return read_input


def process_clip(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    index: int,
    row: dict[str, Any],
    entries: dict[str, Entry] | None = None,
    computed: dict[str, dict[str, np.ndarray]] | None = None,
) -> ClipOutcome:
    """Compute every planned stage that this clip lacks, in order, decoding its frames at most once.

    Each stage's clip is claimed first; when another process holds the claim the clip is deferred (the caller
    comes back to it), so that no chunk is ever written by two workers. A stage's files are written as soon as it
    has computed; waiting for the disk, the commit marker and the claim's release run on a background thread
    (:class:`~mer.store.commit_queue.CommitQueue`) while the next stage computes from the values in memory, and
    this returns only once all of them are done (a failure there is this clip's failure).

    Parameters
    ----------
    store, dataset, plan
        The store written, the dataset and the stages to run, in order.
    index, row
        The clip's index and its clips-table row.
    entries : dict of str to Entry, optional
        The open entries by stage name, of ``plan`` and of every stage its inputs come from (default: ``plan``'s,
        opened here).
    computed : dict, optional
        Outputs of earlier stages that this clip already holds in memory (by stage, then output name; e.g. from a
        group's call): its stages take them from there instead of reading them back from the store.
    """
    start = time.perf_counter()
    entries = open_entries(store, dataset, plan) if entries is None else entries
    ctx = ClipContext(row, index, input_reader(store, entries, row))
    ctx.computed.update(computed or {})
    fingerprint = clip_fingerprint(row)
    outcome = ClipOutcome(index, row["clip_id"], pid=os.getpid())
    with CommitQueue(store) as commits:
        for planned in plan:
            name = planned.stage.name
            entry = entries[name]
            if commits.failure is not None:
                break  # an earlier stage's commit failed: stop, as a failed stage does
            if store.is_done(entry, index):
                continue
            if not store.try_claim(entry, index):
                outcome.deferred = True
                break
            queued = False  # once queued, the commit queue releases the claim
            try:
                if store.is_done(entry, index):
                    continue  # finished by another process between our check and our claim
                if store.reusable_source(entry, row["clip_id"], fingerprint) is not None:
                    if commits.wait() is not None:
                        break  # (the claim is released below; the failure is recorded after the loop)
                    if store.reuse_clip(entry, index, fingerprint):
                        outcome.reused.append(name)  # unchanged since an earlier table version: its bytes were copied
                        continue
                t0 = time.perf_counter()
                arrays = planned.stage.compute(ctx, planned.params)
                outcome.stage_seconds[name] = time.perf_counter() - t0
                outcome.compute_seconds += outcome.stage_seconds[name]
                pending = store.write_clip(entry, index, arrays, fingerprint)
                commits.submit(name, entry, index, pending)
                queued = True
            except Exception as exc:  # one clip's failure must not stop the others
                outcome.failed_stage = name
                outcome.error = f"{type(exc).__name__}: {exc}"
                store.record_failure(entry, index, name, outcome.error + "\n" + traceback.format_exc(limit=6))
                break
            finally:
                if not queued:
                    store.release_claim(entry, index)
            ctx.computed[name] = {o.name: arrays[o.name] for o in planned.stage.outputs}
            outcome.computed.append(name)
        failure = commits.wait()
    if failure is not None:  # an earlier stage than any failure seen here; its record is written
        outcome.failed_stage, outcome.error, outcome.deferred = failure.stage, failure.error, False
        if failure.stage in outcome.computed:
            del outcome.computed[outcome.computed.index(failure.stage):]
    outcome.frames = ctx.frames_decoded
    outcome.seconds = time.perf_counter() - start
    return outcome
