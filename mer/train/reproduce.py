"""Run one of the paper's experiments (:mod:`mer.train.paper_grids`) on a store: build the missing inputs, train
each run of the grid in its own run folder, and write the table with the published number beside ours.

- Inputs go through the stage DAG (``build_plan``/``run_plan``): a clip already in the store is never recomputed,
  and ``run_plan`` is not even called when nothing is missing.
- Each run writes ``<out>/runs/<slug>-<identity>/`` through :func:`mer.train.experiment.run_experiment`; a folder
  with ``metrics.json`` (written last) is finished and skipped, so an interrupted reproduction resumes.
- Nothing is chosen on a test fold: a fixed number of epochs, no inner validation, no early stopping.
- ``quick=True`` shrinks the same grid for a synthetic store on the CPU (tiny images, few epochs, every paper
  dataset mapped to a stored one, the store's own labels); it exists so the command is tested end to end.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.pipeline.graph import build_plan
from mer.pipeline.runner import pending_clips, run_plan
from mer.store.store import FeatureStore
from mer.train.paper_grids import Cell, Experiment, InputSpec, RunSpec, get_experiment, published
from mer.train.results import METRICS_FILE, read_json, write_json
from mer.train.store_inputs import TrainingData, load_joined
from mer.train.trainer import TrainConfig

Log = Callable[[str], None]
TIMM_MODELS = ("vgg19", "resnet50", "efficientnet_b0")


@dataclass(frozen=True)
class ReproduceOptions:
    """Training and build options shared by every run of a grid (paper defaults).

    ``scheduler``: a Dask scheduler address; missing inputs are built there and every fold of every run is a task
    on its workers (:mod:`mer.train.distributed`), each run written once its folds are in."""

    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    workers: int | None = None
    pretrained: bool = False
    subject_independent: bool = False
    scheduler: str | None = None

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
            device=self.device,
            amp=self.amp,
            val_fraction=0.0,
            early_stopping=False,
        )


TINY_MEGANET = {"widths": [8, 8, 8, 8], "stem_channels": 8}


@dataclass(frozen=True)
class QuickSizes:
    """What ``--quick`` shrinks: network input sizes, epochs, batch size and, with ``tiny_networks``, the networks:
    MEGANet keeps its options at widths of 8, and every other network becomes a 2-block tiny MEGANet (VGG19 alone
    takes minutes per run on a CPU). The grid of cells stays the same; runs that become identical are run once."""

    image_size: int = 32
    flow_size: int = 32
    epochs: int = 2
    batch_size: int = 8
    tiny_networks: bool = True


@dataclass
class ReproduceResult:
    """The filled table (one row per cell) and what was computed or skipped; ``mer.report.reproduce_report`` writes
    it as Markdown, LaTeX, CSV and a figure."""

    experiment: Experiment
    cells: pd.DataFrame
    runs_trained: int = 0
    runs_skipped: int = 0
    clips_computed: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ grid rewriting
def _map_protocol(protocol: str, mapping: dict[str, str]) -> str:
    if not protocol.startswith("cross:"):
        return protocol
    _, train, test = protocol.split(":")
    train_m = [mapping.get(d, d) for d in train.split("+")]
    test_m = mapping.get(test, test)
    if test_m in train_m:  # one stored dataset stands for both sides: hold out whole subjects instead
        return "holdout:0.5:0:grouped"
    return f"cross:{'+'.join(dict.fromkeys(train_m))}:{test_m}"


def _shrink_input(spec: InputSpec, sizes: QuickSizes) -> InputSpec:
    params = {}
    for stage, p in spec.params.items():
        p = dict(p)
        if "size" in p:
            p["size"] = sizes.flow_size if stage == "flow-image" else sizes.image_size
        params[stage] = p
    return InputSpec(spec.label, spec.stage, params)


def rewrite_grid(
    exp: Experiment,
    dataset_map: dict[str, str] | None = None,
    sizes: QuickSizes | None = None,
    keep_labels: bool = True,
    subject_independent: bool = False,
) -> Experiment:
    """The same grid on other datasets (``dataset_map``), shrunk inputs (``sizes``), the store's own labels
    (``keep_labels=False``) and/or grouped hold-outs (``subject_independent``)."""
    mapping = dataset_map or {}
    cache: dict[str, RunSpec] = {}

    def run_of(run: RunSpec) -> RunSpec:
        if run.identity not in cache:
            protocol = _map_protocol(run.protocol, mapping)
            if subject_independent and protocol.startswith("holdout") and not protocol.endswith(":grouped"):
                protocol += ":grouped"
            model, options = run.model, dict(run.model_options)
            if sizes is not None and sizes.tiny_networks:
                options = (options if model == "meganet" else {"blocks": 2}) | TINY_MEGANET
                model = "meganet"
            cache[run.identity] = dataclasses.replace(
                run,
                model=model,
                model_options=options,
                input=_shrink_input(run.input, sizes) if sizes else run.input,
                datasets=tuple(dict.fromkeys(mapping.get(d, d) for d in run.datasets)),
                protocol=protocol,
                labels=run.labels if keep_labels else None,
            )
        return cache[run.identity]

    cells = [
        dataclasses.replace(c, run=run_of(c.run), source=c.source if c.source == "all" else mapping.get(c.source))
        for c in exp.cells
    ]
    return dataclasses.replace(exp, cells=cells)


# ------------------------------------------------------------------------------------------------ inputs
def ensure_input(
    store: FeatureStore, dataset: str, spec: InputSpec, workers: int | None, log: Log, scheduler: str | None = None
) -> tuple[str, int]:
    """Build what ``spec`` lacks for ``dataset`` (and its upstream stages; on the Dask cluster at ``scheduler`` when
    given); return its entry key and clips computed."""
    plan = build_plan(store, dataset, [spec.stage], spec.params)
    if not pending_clips(store, dataset, plan):
        return plan[-1].key, 0
    log(f"building {spec.label} ({spec.stage}) for {dataset}")
    report = run_plan(store, dataset, plan, workers=workers, scheduler=scheduler)
    if report.failures:
        first = report.failures[0]
        log(f"{len(report.failures)} clip(s) of {dataset} failed in {spec.stage}, e.g. row {first.index}: "
            f"{first.error}")
    return plan[-1].key, sum(report.computed.values())


def load_run_data(store: FeatureStore, run: RunSpec, keys: dict[str, str]) -> TrainingData:
    """The run's training tensor: each dataset's entry (its own key) through ``load_training_data``, concatenated."""
    return load_joined(store, run.datasets, run.input.stage, keys, run.labels)


def run_folder(out: Path, run: RunSpec) -> Path:
    """``<out>/runs/<input>-<model>-<datasets>-<protocol>-<identity>`` (readable, unique per run spec)."""
    text = f"{run.input.label}-{run.model}-{'+'.join(run.datasets)}-{run.protocol}"
    slug = re.sub(r"[^A-Za-z0-9+.]+", "-", text).strip("-").lower()
    return out / "runs" / f"{slug}-{run.identity}"


# ------------------------------------------------------------------------------------------------ the command
def reproduce(
    name: str,
    store: FeatureStore,
    out: str | Path,
    options: ReproduceOptions | None = None,
    quick: QuickSizes | None = None,
    dataset_map: dict[str, str] | None = None,
    log: Log = print,
) -> ReproduceResult:
    """Run experiment ``name`` on ``store``, each run into its folder under ``out``; the filled table comes back.

    ``quick``: shrink the grid (see :class:`QuickSizes`); every paper dataset then maps to the store's first
    dataset unless ``dataset_map`` says otherwise, and the store's labels are used.
    """
    from mer.train.distributed import ClusterRun, fold_line, joined_inputs, run_on_cluster
    from mer.train.experiment import run_experiment

    options = options or ReproduceOptions()
    out = Path(out)
    exp = get_experiment(name)
    if quick is not None:
        stored = store.datasets()
        if not stored:
            raise ValueError(f"{store.location} holds no dataset")
        wanted = {d for c in exp.cells for d in c.run.datasets}
        dataset_map = {d: stored[0] for d in wanted} | (dataset_map or {})
        options = dataclasses.replace(options, epochs=quick.epochs, batch_size=quick.batch_size)
    exp = rewrite_grid(
        exp, dataset_map, quick, keep_labels=quick is None, subject_independent=options.subject_independent
    )
    missing = sorted({d for c in exp.cells for d in c.run.datasets} - set(store.datasets()))
    if missing:
        raise ValueError(
            f"{name} needs dataset(s) {', '.join(missing)}, not in {store.location} "
            f"(stored: {', '.join(store.datasets()) or 'none'}); preprocess them first"
        )
    config = options.train_config()
    result = ReproduceResult(exp, pd.DataFrame())
    metrics: dict[str, dict[str, Any]] = {}
    folders: dict[str, Path] = {}
    cluster_runs: list[ClusterRun] = []
    on_cluster: dict[str, str] = {}  # run folder name -> run identity, for the runs trained on the cluster
    for run in exp.runs():
        folder = run_folder(out, run)
        folders[run.identity] = folder
        if (folder / METRICS_FILE).exists():
            result.runs_skipped += 1
            metrics[run.identity] = read_json(folder / METRICS_FILE)
            continue
        keys = {}
        for ds in run.datasets:
            keys[ds], computed = ensure_input(store, ds, run.input, options.workers, log, options.scheduler)
            result.clips_computed[f"{ds}/{run.input.stage}"] = (
                result.clips_computed.get(f"{ds}/{run.input.stage}", 0) + computed
            )
        data = load_run_data(store, run, keys)
        model_options = dict(run.model_options)
        if options.pretrained and run.model in TIMM_MODELS:
            model_options["pretrained"] = True
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "reproduce.json", {"experiment": name, "run": run.to_dict(), "train": config.to_dict()})
        if options.scheduler:
            on_cluster[folder.name] = run.identity
            cluster_runs.append(
                ClusterRun(
                    joined_inputs(store, data, run.input.stage, keys, run.labels), data.meta, data.class_names,
                    run.protocol, run.model, model_options, config, folder, data.provenance, run.input.label,
                    label=folder.name,
                )
            )
            continue
        log(f"training {folder.name}: {len(data.meta)} clips, {run.protocol}")
        res = run_experiment(
            data.X,
            data.meta,
            run.protocol,
            run.model,
            model_options,
            config,
            folder,
            class_names=data.class_names,
            provenance=data.provenance,
            input_name=run.input.label,
        )
        metrics[run.identity] = res.metrics
        result.runs_trained += 1
    if cluster_runs:
        for done, res in run_on_cluster(cluster_runs, options.scheduler, on_fold=lambda f: log(fold_line(f)), log=log):
            metrics[on_cluster[done.label]] = res.metrics
            result.runs_trained += 1
    result.cells = cell_table(exp, metrics, folders)
    return result


def build_quick_store(folder: str | Path, subjects: int = 3, clips_per_subject: int = 3, workers: int = 1) -> str:
    """A synthetic 3-class dataset ``synth`` (320×240 frames) preprocessed through the face stages, for ``--quick``.

    Reused when ``folder/store`` already holds it (only what is missing is computed).
    """
    from mer.datasets import load
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.pipeline.catalog import expand_stages
    from mer.store import open_store
    from mer.synthetic.clips import generate_synthetic

    folder = Path(folder)
    data, location = folder / "data", str(folder / "store")
    if not (data / "annotations.csv").exists():
        generate_synthetic(data, subjects=subjects, clips_per_subject=clips_per_subject, classes=3, seed=0,
                           frame_size=(320, 240))
    store = open_store(location, "a")
    if "synth" not in store.datasets():
        result = load("folder", data, labels="3class", dataset_name="synth")
        write_dataset_manifest(store, "synth", result.manifest, data, result.adapter, result.label_set.to_dict())
    plan = build_plan(store, "synth", expand_stages("ingest,face"))
    if pending_clips(store, "synth", plan):
        run_plan(store, "synth", plan, workers=workers)
    return location


def _value(cell: Cell, m: dict[str, Any]) -> float | None:
    source = m if cell.source == "all" else m.get("per_dataset", {}).get(cell.source, {})
    value = source.get(cell.metric)
    return None if value is None else float(value)


def cell_table(exp: Experiment, metrics: dict[str, dict[str, Any]], folders: dict[str, Path]) -> pd.DataFrame:
    """One row per table cell: row, column, ours, paper, run folder, protocol and its subject independence."""
    paper = published(exp.name)
    rows = []
    for cell in exp.cells:
        folder = folders[cell.run.identity]
        cfg_path = folder / "config.json"
        independent = read_json(cfg_path).get("subject_independent") if cfg_path.exists() else None
        rows.append(
            {
                "row": cell.row,
                "column": cell.column,
                "ours": _value(cell, metrics[cell.run.identity]),
                "paper": paper.get(cell.row, {}).get(cell.column),
                "run": folder.name,
                "protocol": cell.run.protocol,
                "subject_independent": independent,
            }
        )
    for row, reason in exp.not_reproduced.items():
        for column in exp.columns:
            rows.append(
                {"row": row, "column": column, "ours": None, "paper": paper.get(row, {}).get(column), "run": None,
                 "protocol": None, "subject_independent": None, "not_reproduced": reason}
            )
    return pd.DataFrame(rows)
