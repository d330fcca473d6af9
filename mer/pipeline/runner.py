"""Runs planned stages over the clips of a dataset: one pass per clip, failures recorded, re-runs resume."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mer.config import to_jsonable
from mer.pipeline.context import ClipContext, clip_fingerprint
from mer.pipeline.graph import PlannedStage
from mer.pipeline.grouping import group_clips
from mer.store.commit_queue import CommitQueue
from mer.store.provenance import provenance_record, utc_now
from mer.store.store import Entry, FeatureStore, open_store


@dataclass
class ClipOutcome:
    """What happened to one clip in one run."""

    index: int
    clip_id: str
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    deferred: bool = False
    pid: int = 0

    def absorb(self, earlier: ClipOutcome) -> None:
        """Count work done on this clip in an earlier pass that ended in a deferral."""
        self.computed = earlier.computed + self.computed
        self.reused = earlier.reused + self.reused
        for stage, seconds in earlier.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.compute_seconds += earlier.compute_seconds
        self.frames += earlier.frames
        self.seconds += earlier.seconds


@dataclass
class RunReport:
    """Summary of a run: clips computed, already complete, and failed (with stage and error)."""

    dataset: str
    stages: list[str]
    n_clips: int
    outcomes: list[ClipOutcome] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    workers: int = 1

    @property
    def failures(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def computed(self) -> dict[str, int]:
        counts = {s: 0 for s in self.stages}
        for o in self.outcomes:
            for s in o.computed:
                counts[s] += 1
        return counts

    @property
    def reused(self) -> dict[str, int]:
        """Clips per stage copied from an entry of an earlier clips-table version (the clip did not change)."""
        counts = {s: 0 for s in self.stages}
        for o in self.outcomes:
            for s in o.reused:
                counts[s] += 1
        return counts

    @property
    def computed_clips(self) -> list[str]:
        """Clips for which at least one stage was computed (not reused) in this run."""
        return [o.clip_id for o in self.outcomes if o.computed]

    @property
    def compute_seconds(self) -> float:
        """Time spent inside the stages' compute functions, summed over clips (the kernels' share)."""
        return sum(o.compute_seconds for o in self.outcomes)

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Compute time per stage, summed over clips."""
        totals = dict.fromkeys(self.stages, 0.0)
        for o in self.outcomes:
            for stage, seconds in o.stage_seconds.items():
                totals[stage] += seconds
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "stages": self.stages,
            "n_clips": self.n_clips,
            "skipped": self.skipped,
            "computed": self.computed,
            "reused": self.reused,
            "computed_clips": self.computed_clips,
            "seconds": round(self.seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "workers": self.workers,
            "failures": [{"clip": o.clip_id, "stage": o.failed_stage, "error": o.error} for o in self.failures],
        }


_WORKER_STORES: dict[str, FeatureStore] = {}
_WORKER_THREAD = threading.local()


def _init_worker() -> None:
    """One OpenCV and one Numba thread per worker, so that workers do not oversubscribe the cores.

    Numba's thread count is a per-thread setting, so it is set in every thread that runs clips (a Dask worker
    may run tasks on several threads); OpenCV's is per process.
    """
    if getattr(_WORKER_THREAD, "ready", False):
        return
    import cv2

    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    _WORKER_THREAD.ready = True


@contextlib.contextmanager
def _as_one_worker() -> Iterator[None]:
    """Run this process's clips as a worker runs them: one OpenCV and one Numba thread (``--workers 1`` is one core).

    Without it an in-process run spreads some kernels (OpenCV's warps, Numba's pooling) over every core, so one
    worker is not one core and the figures of 1 and N workers do not compare. The process's counts come back after.
    """
    import cv2

    opencv_before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        import numba
    except ImportError:
        numba = None
    numba_before = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(opencv_before)
        if numba is not None and numba_before is not None:
            numba.set_num_threads(numba_before)


def _worker_store(location: str) -> FeatureStore:
    if location not in _WORKER_STORES:
        _WORKER_STORES[location] = open_store(location, mode="a")
    return _WORKER_STORES[location]


def process_clip(
    store: FeatureStore, dataset: str, plan: list[PlannedStage], index: int, row: dict[str, Any]
) -> ClipOutcome:
    """Compute every planned stage that this clip lacks, in order, decoding its frames at most once.

    Each stage's clip is claimed first; when another process holds the claim the clip is deferred (the caller
    comes back to it), so that no chunk is ever written by two workers. A stage's files are written as soon as it
    has computed; waiting for the disk, the commit marker and the claim's release run on a background thread
    (:class:`~mer.store.commit_queue.CommitQueue`) while the next stage computes from the values in memory, and
    this returns only once all of them are done (a failure there is this clip's failure).
    """
    start = time.perf_counter()
    entries: dict[str, Entry] = {p.stage.name: store.entry(p.ref(dataset)) for p in plan}

    def read_input(stage: str, name: str | None) -> Any:
        return store.read_entry(entries[stage], clip=row["clip_id"], name=name)

    ctx = ClipContext(row, index, read_input)
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


def _process_in_worker(
    location: str, dataset: str, plan: list[PlannedStage], index: int, row: dict[str, Any]
) -> ClipOutcome:
    _init_worker()
    return process_clip(_worker_store(location), dataset, plan, index, row)


# ----------------------------------------------------------------------------------------- groups of clips
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
    of a plan without such a stage, are tasks of their own, as :func:`process_clip` runs them.
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
    clip by clip (:func:`process_clip` on that part of the plan), then the batching stage for the clips that
    reached it, then the stages after it clip by clip. Each clip is claimed, committed, failed and reported on its
    own: a clip that fails (or is held by another process) leaves the group; the others go on.
    """
    k = batch_stage_position(plan)
    if k is None or len(indices) == 1:
        return [process_clip(store, dataset, plan, i, row) for i, row in zip(indices, rows, strict=True)]
    by_index = dict(zip(indices, rows, strict=True))
    outcomes: dict[int, ClipOutcome] = {}
    for i, row in by_index.items():
        if k > 0:
            outcomes[i] = process_clip(store, dataset, plan[:k], i, row)
        else:
            outcomes[i] = ClipOutcome(i, row["clip_id"], pid=os.getpid())
    reached = [i for i, o in outcomes.items() if o.error is None and not o.deferred]
    _compute_group_stage(store, dataset, plan, k, reached, by_index, outcomes)
    if k + 1 < len(plan):
        for i in reached:
            earlier = outcomes[i]
            if earlier.error is None and not earlier.deferred:  # stages up to the batching one: done, skipped
                outcomes[i] = process_clip(store, dataset, plan, i, by_index[i])
                outcomes[i].absorb(earlier)
    return [outcomes[i] for i in indices]


def _compute_group_stage(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    k: int,
    indices: list[int],
    rows: dict[int, dict[str, Any]],
    outcomes: dict[int, ClipOutcome],
) -> None:
    """Claim the group's clips for stage ``k``, compute the claimed ones in one call, commit each on its own."""
    planned = plan[k]
    name, batch = planned.stage.name, planned.stage.batch
    entries: dict[str, Entry] = {p.stage.name: store.entry(p.ref(dataset)) for p in plan}
    entry = entries[name]
    start = time.perf_counter()
    claimed: list[int] = []

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
            return
        ctxs = [ClipContext(rows[i], i, _input_reader(store, entries, rows[i]), private_frames=True) for i in claimed]
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


def _input_reader(store: FeatureStore, entries: dict[str, Entry], row: dict[str, Any]) -> Callable[..., Any]:
    def read_input(stage: str, name: str | None) -> Any:
        return store.read_entry(entries[stage], clip=row["clip_id"], name=name)

    return read_input


def _compute_alone(planned: PlannedStage, ctx: ClipContext) -> dict[str, Any] | Exception:
    try:
        return planned.stage.compute(ctx, planned.params)
    except Exception as exc:
        return exc


def _process_group_in_worker(
    location: str, dataset: str, plan: list[PlannedStage], indices: list[int], rows: list[dict[str, Any]]
) -> list[ClipOutcome]:
    _init_worker()
    return process_group(_worker_store(location), dataset, plan, indices, rows)


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
            outcomes = _execute(store, dataset, plan, pending, rows, workers, scheduler)
        else:
            outcomes = _execute_groups(store, dataset, plan, tasks, rows, workers, scheduler)
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


def _execute(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    pending: list[int],
    rows: list[dict[str, Any]],
    workers: int,
    scheduler: str | None,
) -> Iterable[ClipOutcome]:
    if scheduler:
        yield from _execute_dask(store.location, dataset, plan, pending, rows, scheduler)
        return
    if workers <= 1 or len(pending) <= 1:
        with _as_one_worker():
            for index in pending:
                yield process_clip(store, dataset, plan, index, rows[index])
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=min(workers, len(pending)), return_as="generator_unordered")
    yield from parallel(delayed(_process_in_worker)(store.location, dataset, plan, i, rows[i]) for i in pending)


def _execute_groups(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    tasks: list[list[int]],
    rows: list[dict[str, Any]],
    workers: int,
    scheduler: str | None,
) -> Iterable[ClipOutcome]:
    """:func:`_execute` for tasks of several clips: each worker receives a group and returns its outcomes."""
    if scheduler:
        from joblib import delayed

        calls = (delayed(_process_group_in_worker)(store.location, dataset, plan, t, [rows[i] for i in t])
                 for t in tasks)
        for outcomes in _run_on_dask(scheduler, calls):
            yield from outcomes
        return
    if workers <= 1 or len(tasks) <= 1:
        with _as_one_worker():
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
