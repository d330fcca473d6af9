"""The folds of a run (or of every run of a reproduction) as tasks on a Dask ``distributed`` cluster.

A fold task is a pure function of plain values: where the store is (location and storage options), which entries
to read (their keys, pinned on the client when the run starts), the labels, protocol, model, training config and
the fold's index. The worker reads its inputs from the shared store itself (no tensor travels from the client) and
trains the fold through :func:`mer.train.experiment.run_experiment` (``folds_to_train``), the same code as a local
run. It returns plain values: predictions and history as ``.npz`` bytes of one array per column, the fold's
record and the run's config as JSON text, its checkpoint as bytes. The client accepts results only as msgpack
(it refuses pickled ones; a fold's error comes back as text), pools the folds'
predictions as a local run does, so a fixed seed gives the same ``predictions.csv`` and metrics, and writes a
run folder only once all its folds are in (``metrics.json`` last): a failed fold leaves nothing half-written.

One fold runs at a time in a worker process (torch's global RNG and deterministic switches are per process).
On a GPU cluster start one single-threaded worker per GPU declaring the resource ``GPU=1``; folds then ask for
``{"GPU": 1}``, so each GPU trains one fold at a time (README "Training on a cluster").
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.cluster import GPU_RESOURCE as GPU  # the worker resource a fold asks for when the cluster has it
from mer.store import open_store
from mer.store.store import FeatureStore
from mer.train.experiment import run_experiment, summarise
from mer.train.protocols import Fold, parse_protocol, subject_keys
from mer.train.results import ExperimentResult, write_run
from mer.train.store_inputs import TrainingData, load_joined, load_training_inputs
from mer.train.threads import training_threads
from mer.train.trainer import SINGLE, TrainConfig

PLAIN = ["msgpack"]  # what the client sends and accepts: plain values (str, bytes, numbers, lists, dicts)


class FoldTaskError(RuntimeError):
    """A fold task failed (on its worker, or the worker died); the message names the fold and its test subjects."""


@dataclass(frozen=True)
class StoreInputs:
    """Where a worker reads a run's inputs: the store, the datasets, each input's source and pinned entry keys.

    ``joined``: each dataset is read alone and the rows joined (``reproduce``'s
    :func:`~mer.train.store_inputs.load_joined`, one input), else all at once through
    :func:`~mer.train.store_inputs.load_training_inputs` (``train``). ``digest``: of the clip table and classes
    the client saw; a worker that reads another table refuses the fold.
    """

    location: str
    storage_options: dict[str, Any] | None
    datasets: tuple[str, ...]
    inputs: dict[str, str]
    keys: dict[str, dict[str, str]]
    labels: str | None = None
    joined: bool = False
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"datasets": list(self.datasets)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoreInputs:
        return cls(**(dict(d) | {"datasets": tuple(d["datasets"])}))

    def load(self) -> TrainingData:
        """Read the inputs from the store (as the client did, the entries fixed by their keys)."""
        store = open_store(self.location, "r", storage_options=self.storage_options)
        if self.joined:
            (stage,) = self.inputs.values()
            keys = {ds: next(iter(k.values())) for ds, k in self.keys.items()}
            return load_joined(store, self.datasets, stage, keys, self.labels)
        return load_training_inputs(store, "+".join(self.datasets), self.inputs, self.labels, self.keys)


def table_digest(meta: pd.DataFrame, class_names: Sequence[str]) -> str:
    """SHA-256 of the clip table a run trains on (dataset, subject, clip, label per row) and its class names."""
    table = meta[["dataset", "subject", "clip_id", "label"]].astype(str).to_csv(index=False)
    return hashlib.sha256((table + json.dumps(list(class_names))).encode()).hexdigest()


def _storage_options(store: FeatureStore) -> dict[str, Any] | None:
    options = getattr(store.backend, "storage_options", None)
    return dict(options) if options is not None else None


def train_inputs(store: FeatureStore, data: TrainingData, inputs: Mapping[str, str], labels: str | None) -> StoreInputs:
    """The :class:`StoreInputs` of ``mer-cli train``: ``data`` as loaded on the client, its entries pinned by key."""
    entries = data.provenance["entries"]
    keys: dict[str, dict[str, str]] = {}
    for ds, records in entries.items():
        by_name = {next(iter(inputs)): records} if len(inputs) == 1 else records
        keys[ds] = {n: rec["entry"].rsplit("/", 1)[-1] for n, rec in by_name.items() if "entry" in rec}
    return StoreInputs(
        store.location, _storage_options(store), tuple(entries), dict(inputs), keys, labels, False,
        table_digest(data.meta, data.class_names),
    )


def joined_inputs(
    store: FeatureStore, data: TrainingData, stage: str, keys: Mapping[str, str], labels: str | None
) -> StoreInputs:
    """The :class:`StoreInputs` of a ``reproduce`` run: ``stage`` of each dataset at ``keys[dataset]``, joined."""
    pinned = {ds: {SINGLE: k} for ds, k in keys.items()}
    return StoreInputs(
        store.location, _storage_options(store), tuple(keys), {SINGLE: stage}, pinned, labels, True,
        table_digest(data.meta, data.class_names),
    )


@dataclass
class ClusterRun:
    """One run whose folds are cluster tasks: what to train, and where its folder goes (``None``: not written).

    ``torch_threads``: PyTorch's intra-op threads on a worker training on its CPU, by default the count a local run
    of this process would use (:func:`mer.train.threads.training_threads`: a CPU's float reductions, hence the
    predictions, depend on it, so the same count gives a local run's numbers)."""

    source: StoreInputs
    meta: pd.DataFrame
    class_names: list[str]
    protocol: str
    model: str
    model_options: dict[str, Any]
    config: TrainConfig
    out_dir: Path | None
    provenance: dict[str, Any] | None = None
    input_name: str | None = None
    recipe: str | None = None
    save_checkpoints: bool = False
    label: str = ""
    torch_threads: int = field(default_factory=training_threads)
    folds: list[Fold] = field(init=False)

    def __post_init__(self) -> None:
        self.meta = self.meta.reset_index(drop=True)
        self.folds = list(parse_protocol(self.protocol).folds(self.meta))

    def job(self, fold_index: int) -> dict[str, Any]:
        """The plain values a worker needs to train fold ``fold_index``."""
        return {
            "source": self.source.to_dict(),
            "protocol": self.protocol,
            "model": self.model,
            "model_options": dict(self.model_options),
            "config": self.config.to_dict(),
            "fold": fold_index,
            "input_name": self.input_name,
            "recipe": self.recipe,
            "checkpoint": self.save_checkpoints,
            "torch_threads": self.torch_threads,
        }

    def describe_fold(self, fold_index: int) -> str:
        """``fold 'synth/s02' (2 of 3, test subject synth/s02)``, prefixed with the run's label when it has one."""
        fold = self.folds[fold_index]
        subjects = sorted(set(subject_keys(self.meta.iloc[fold.test_idx])))
        shown = ", ".join(subjects[:3]) + (f" and {len(subjects) - 3} more" if len(subjects) > 3 else "")
        text = (f"fold {fold.name!r} ({fold_index + 1} of {len(self.folds)}, "
                f"test subject{'s' if len(subjects) != 1 else ''} {shown})")
        return f"{self.label}: {text}" if self.label else text


@dataclass(frozen=True)
class FoldDone:
    """A finished fold, for progress display."""

    run: ClusterRun
    fold_index: int
    worker: str
    seconds: float
    record: dict[str, Any]


def fold_line(done: FoldDone) -> str:
    """``run: fold synth/s01 done on tcp://… (host) in 6.0 s, UF1 0.556``: one finished fold, for a log."""
    run = f"{done.run.label}: " if done.run.label else ""
    uf1 = done.record.get("uf1")
    score = f", UF1 {uf1:.3f}" if isinstance(uf1, float) else ""
    return f"{run}fold {done.run.folds[done.fold_index].name} done on {done.worker} in {done.seconds:.1f} s{score}"


# ------------------------------------------------------------------------------------------------ on a worker
_ONE_FOLD_AT_A_TIME = threading.Lock()
_LOADED: dict[str, TrainingData] = {}  # the last inputs read by this worker process (folds of a run share them)


def _read_inputs(source: StoreInputs) -> TrainingData:
    tag = json.dumps(source.to_dict(), sort_keys=True)
    if tag not in _LOADED:
        _LOADED.clear()
        _LOADED[tag] = source.load()
    data = _LOADED[tag]
    if table_digest(data.meta, data.class_names) != source.digest:
        raise ValueError(
            f"the clips or labels read from {source.location} differ from those the run started with "
            "(the store changed since): start the run again"
        )
    return data


def _columns(df: pd.DataFrame) -> dict[str, Any]:
    """A frame as plain values: its column names and an ``.npz`` of one array per column (strings as unicode
    arrays, never object arrays), read back without pickle."""
    buffer = io.BytesIO()
    arrays = {}
    for i, name in enumerate(df.columns):
        col = df[name]
        numeric = pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        arrays[f"c{i}"] = col.to_numpy() if numeric else np.array([str(v) for v in col], dtype=str)
    np.savez(buffer, **arrays)
    return {"columns": [str(c) for c in df.columns], "npz": buffer.getvalue()}


def _frame(cols: Mapping[str, Any]) -> pd.DataFrame:
    with np.load(io.BytesIO(cols["npz"]), allow_pickle=False) as npz:
        return pd.DataFrame({name: npz[f"c{i}"] for i, name in enumerate(cols["columns"])})


def _json(obj: Any) -> str:
    return json.dumps(obj, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def _where() -> str:
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = "local"
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{address} ({socket.gethostname()}" + (f", CUDA_VISIBLE_DEVICES={gpus})" if gpus else ")")


def train_fold(job: Mapping[str, Any]) -> dict[str, Any]:
    """Train one fold on this worker from plain values (:meth:`ClusterRun.job`); return plain values.

    Never raises: a failure comes back as ``{"error": "<type>: <message>"}`` (one line)."""
    start = time.perf_counter()
    try:
        with _ONE_FOLD_AT_A_TIME:
            out = _train_fold(job)
    except Exception as exc:  # the client reports it as one line naming the fold
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        return {"error": f"{type(exc).__name__}: {message}", "worker": _where()}
    return out | {"worker": _where(), "seconds": time.perf_counter() - start}


def _train_fold(job: Mapping[str, Any]) -> dict[str, Any]:
    fi = int(job["fold"])
    data = _read_inputs(StoreInputs.from_dict(job["source"]))
    with tempfile.TemporaryDirectory() if job["checkpoint"] else contextlib.nullcontext() as tmp:
        return _fold_outcome(job, fi, data, tmp)


def _fold_outcome(job: Mapping[str, Any], fi: int, data: TrainingData, tmp: str | None) -> dict[str, Any]:
    """Fold ``fi`` through :func:`run_experiment` (its checkpoint saved in ``tmp`` when given), as plain values."""
    res = run_experiment(
        data.inputs if set(data.inputs) != {SINGLE} else data.X,
        data.meta,
        job["protocol"],
        job["model"],
        dict(job["model_options"]),
        TrainConfig.from_dict(job["config"]),
        tmp,
        class_names=data.class_names,
        provenance=data.provenance,
        input_name=job["input_name"],
        save_checkpoints=tmp is not None,
        recipe=job["recipe"],
        folds_to_train={fi},
        torch_threads=int(job["torch_threads"]),  # the client's count, not this worker's OMP_NUM_THREADS
    )
    return {
        "fold": fi,
        "predictions": _columns(res.predictions),
        "history": _columns(res.history),
        "record": _json(res.metrics["per_fold"][0]),
        "config": _json(res.config),
        "checkpoint": (Path(tmp) / "checkpoints" / f"fold{fi:03d}.pt").read_bytes() if tmp is not None else None,
    }


# ------------------------------------------------------------------------------------------------ on the client
@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A Dask client of ``scheduler`` that accepts no pickled data; a clear error when it cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise RuntimeError("a Dask scheduler was given but dask.distributed is missing: pip install 'mer[cluster]'") \
            from None
    try:
        client = Client(scheduler, serializers=PLAIN, deserializers=PLAIN)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"Dask scheduler {scheduler}: cannot connect ({exc})") from None
    with client:
        yield client


def _workers(client: Any) -> dict[str, dict[str, Any]]:
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker (newer versions list 5 by default)
    except TypeError:  # distributed before 2025.1 lists them all
        info = client.scheduler_info()
    return info.get("workers", {})


def fold_resources(client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when a worker of the cluster declares the GPU resource, else None (any worker takes a fold)."""
    workers = _workers(client)
    if not workers:
        raise ValueError(f"the Dask scheduler at {client.scheduler.address} has no workers")
    return {GPU: 1} if any(GPU in (w.get("resources") or {}) for w in workers.values()) else None


def cluster_summary(client: Any) -> str:
    """``3 workers (2 with a GPU resource), 1 thread each``: what the folds will run on."""
    workers = _workers(client).values()
    gpus = sum(1 for w in workers if GPU in (w.get("resources") or {}))
    threads = sorted({int(w.get("nthreads", 1)) for w in workers})
    return (f"{len(workers)} worker(s) ({gpus} with a {GPU} resource), "
            f"{'/'.join(map(str, threads))} thread(s) each")


def assemble(
    run: ClusterRun, outcomes: Mapping[int, Mapping[str, Any]], seconds: float, scheduler: str
) -> ExperimentResult:
    """Pool the folds' results into the run's result as :func:`run_experiment` does; write its folder if any."""
    order = sorted(outcomes)
    if order != list(range(len(run.folds))):
        raise AssertionError(f"{run.label or 'run'}: folds {order} of {len(run.folds)} came back")
    preds = pd.concat([_frame(outcomes[i]["predictions"]) for i in order], ignore_index=True)
    history = pd.concat([_frame(outcomes[i]["history"]) for i in order], ignore_index=True)
    for i in order:
        rows = preds.loc[preds["fold_index"] == i, "row"].to_numpy()
        if not np.array_equal(rows, run.folds[i].test_idx):
            raise AssertionError(f"{run.describe_fold(i)}: predicted rows differ from the fold's test rows")
    per_fold = [json.loads(outcomes[i]["record"]) for i in order]
    metrics = summarise(preds, len(run.class_names), list(run.class_names), per_fold)
    metrics["train_seconds"] = seconds
    config = json.loads(outcomes[order[0]]["config"]) if order else {}
    config["parallel_folds"] = 1
    config["parallel_folds_basis"] = "one fold per task on the cluster"
    config["cluster"] = {
        "scheduler": scheduler,
        "workers": {run.folds[i].name: outcomes[i]["worker"] for i in order},
        "fold_seconds": {run.folds[i].name: outcomes[i]["seconds"] for i in order},
    }
    if run.out_dir is not None:
        if run.save_checkpoints:
            ckpt_dir = Path(run.out_dir) / "checkpoints"
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            for i in order:
                (ckpt_dir / f"fold{i:03d}.pt").write_bytes(outcomes[i]["checkpoint"])
        write_run(run.out_dir, config, run.provenance, preds, history, metrics)
    return ExperimentResult(metrics, preds, history, config, Path(run.out_dir) if run.out_dir is not None else None)


def run_on_cluster(
    runs: Sequence[ClusterRun],
    scheduler: str,
    on_fold: Callable[[FoldDone], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[tuple[ClusterRun, ExperimentResult]]:
    """Train every fold of ``runs`` as a task on the cluster at ``scheduler``; yield each run as its last fold ends.

    Folds of earlier runs are scheduled first. ``on_fold`` is called as each fold finishes. The first fold that
    fails cancels the rest and raises :class:`FoldTaskError` (runs already yielded are complete and written).
    """
    from distributed import as_completed

    with connect(scheduler) as client:
        resources = fold_resources(client)
        if log is not None:
            log(f"Dask scheduler {scheduler}: {cluster_summary(client)}; "
                f"{sum(len(r.folds) for r in runs)} fold task(s)")
        which: dict[Any, tuple[int, int]] = {}
        started = time.perf_counter()
        for ri, run in enumerate(runs):
            for fi in range(len(run.folds)):
                future = client.submit(train_fold, run.job(fi), pure=False, resources=resources, priority=-ri)
                which[future] = (ri, fi)
        done: list[dict[int, Mapping[str, Any]]] = [{} for _ in runs]
        try:
            for future in as_completed(list(which)):
                ri, fi = which.pop(future)
                run = runs[ri]
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died (KilledWorker) or the task could not start
                    outcome = {"error": f"{type(exc).__name__}: {exc}", "worker": "?"}
                if "error" in outcome:
                    error = "; ".join(line.strip() for line in str(outcome["error"]).splitlines() if line.strip())
                    raise FoldTaskError(f"{run.describe_fold(fi)} failed on {outcome['worker']}: {error}")
                done[ri][fi] = outcome
                if on_fold is not None:
                    record = json.loads(outcome["record"])
                    on_fold(FoldDone(run, fi, outcome["worker"], outcome["seconds"], record))
                if len(done[ri]) == len(run.folds):
                    yield run, assemble(run, done[ri], time.perf_counter() - started, scheduler)
                    done[ri] = {}
        finally:
            if which:
                client.cancel(list(which))
