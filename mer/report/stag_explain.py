"""Explain a finished STAG run: per clip and per class, the learned adjacency and the ROI importance.

Reads a run folder written by the trainer with checkpoints (``mer-cli train --checkpoints``):

* ``config.json``: ``model`` (``stag``), ``model_options``, ``num_classes``, ``class_names``;
* ``provenance.json``: ``store`` and, per dataset, the ``roi-flow`` entry it trained on
  (``entries[dataset]["roi_flow"]["entry"]``, or ``entries[dataset]["entry"]`` for a single input);
* ``predictions.csv``: ``dataset``, ``clip``, ``fold_index``, ``y_true`` of every test clip;
* ``checkpoints/fold<NNN>.pt``: the fold's weights (loaded with ``weights_only=True``).

Each clip is explained by the model of the fold that tested it (never one that saw it in training). The
face drawn is the clip's first aligned, equalised frame with the ROI boxes of its aligned landmarks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mer.models import create
from mer.models.stag import STAG
from mer.pipeline.flow.roi import roi_boxes
from mer.report.stag_figures import (
    Explanation,
    explanation_figure,
    frame_weighted_adjacency,
    importance_table,
    mean_by_class,
    save_figure,
)
from mer.train.results import CONFIG_FILE, PREDICTIONS_FILE, PROVENANCE_FILE, read_json

INPUT_STAGE = "roi-flow"


class RunExplainError(ValueError):
    """The run folder cannot be explained (missing file, not a STAG run, clip not in the run)."""


@dataclass(frozen=True)
class ClipExplanation:
    """One test clip: its class, importance R and frame-weighted adjacency R×R from its fold's model."""

    dataset: str
    clip: str
    y_true: int
    importance: np.ndarray
    adjacency: np.ndarray


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if any(k.startswith("net.") for k in state):  # a network wrapped by the trainer (e.g. input standardisation)
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    return state


class StagRun:
    """A finished STAG run folder and the store it read (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike, store: str | None = None) -> None:
        from mer.store import open_store

        self.run_dir = Path(run_dir)
        for name in (CONFIG_FILE, PROVENANCE_FILE, PREDICTIONS_FILE):
            if not (self.run_dir / name).is_file():
                raise RunExplainError(f"{self.run_dir}: no {name} (is it a finished run folder?)")
        self.config = read_json(self.run_dir / CONFIG_FILE)
        if str(self.config.get("model", "")).lower() != "stag":
            raise RunExplainError(f"{self.run_dir} trained model {self.config.get('model')!r}, not stag")
        self.provenance = read_json(self.run_dir / PROVENANCE_FILE)
        self.predictions = pd.read_csv(self.run_dir / PREDICTIONS_FILE, dtype={"clip": str, "dataset": str})
        self.class_names: list[str] = list(self.config["class_names"])
        location = store or self.provenance.get("store")
        if not location:
            raise RunExplainError(f"{self.run_dir}/{PROVENANCE_FILE} names no store; pass --store")
        self.store = open_store(str(location), "r")
        self._models: dict[int, STAG] = {}
        self._entries: dict[str, object] = {}

    def model(self, fold_index: int) -> STAG:
        """The trained model of fold ``fold_index`` (cached)."""
        if fold_index not in self._models:
            path = self.run_dir / "checkpoints" / f"fold{fold_index:03d}.pt"
            if not path.is_file():
                raise RunExplainError(f"{path} is missing: train with --checkpoints to explain a run")
            net = create("stag", num_classes=int(self.config["num_classes"]), **self.config.get("model_options", {}))
            net.load_state_dict(_checkpoint_state(path))
            self._models[fold_index] = net.eval()
        return self._models[fold_index]

    def _entry(self, dataset: str):
        if dataset not in self._entries:
            record = (self.provenance.get("entries") or {}).get(dataset, {})
            record = record.get("roi_flow", record)  # entries[dataset][input name] for a multi-input run
            ref = str(record.get("entry", ""))
            parts = ref.split("/")
            key = parts[2] if len(parts) == 3 and parts[1] == INPUT_STAGE else None
            self._entries[dataset] = self.store.find(dataset, INPUT_STAGE, key, complete_only=False)
        return self._entries[dataset]

    def inputs(self, dataset: str, clip: str, model: STAG) -> dict[str, torch.Tensor]:
        """A batch of one clip: ``roi_flow`` 1×T×R×2 from the run's entry and ``au`` 1×21 from the manifest."""
        entry = self._entry(dataset)
        model.check_entry(entry.attrs["params"])
        batch = {"roi_flow": torch.from_numpy(np.asarray(self.store.read_entry(entry, clip=clip), np.float32))[None]}
        if model.use_au:
            row = self.store.manifest(dataset).set_index("clip_id").loc[clip]
            batch["au"] = torch.as_tensor(np.asarray(list(row["au_vector"]), dtype=np.float32))[None]
        return batch

    def row(self, clip: str) -> pd.Series:
        """The predictions row of ``clip`` (``dataset:clip`` when several datasets share clip ids)."""
        dataset, _, name = clip.rpartition(":") if ":" in clip else ("", "", clip)
        hits = self.predictions[self.predictions["clip"] == name]
        if dataset:
            hits = hits[hits["dataset"] == dataset]
        if hits.empty:
            raise RunExplainError(f"clip {clip!r} is not a test clip of {self.run_dir}")
        if len(hits) > 1:
            raise RunExplainError(f"clip {clip!r} is in several datasets; write it as DATASET:CLIP")
        return hits.iloc[0]

    def explain_clip(self, dataset: str, clip: str, fold_index: int, y_true: int) -> ClipExplanation:
        """Importance and frame-weighted adjacency of one clip from its own fold's model."""
        model = self.model(int(fold_index))
        info = model.explain(self.inputs(dataset, clip, model))
        adjacency = frame_weighted_adjacency(info["adjacency"][0].numpy(), info["frame_weights"][0].numpy())
        return ClipExplanation(dataset, clip, int(y_true), info["roi_importance"][0].double().numpy(), adjacency)

    def explain_all(self) -> list[ClipExplanation]:
        """Every test clip of the run."""
        return [
            self.explain_clip(r["dataset"], r["clip"], int(r["fold_index"]), int(r["y_true"]))
            for _, r in self.predictions.iterrows()
        ]

    def face(self, dataset: str, clip: str, roi_set: str) -> tuple[np.ndarray, dict]:
        """The clip's first aligned, equalised frame and its ROI boxes."""
        frame = self.store.read(dataset, "equalize", clip=clip)[0]
        landmarks = self.store.read(dataset, "align", clip=clip, name="landmarks")[0]
        return frame, roi_boxes(landmarks, roi_set, frame.shape)


def roi_importance_per_class(run: StagRun, explanations: list[ClipExplanation] | None = None) -> pd.DataFrame:
    """Mean ROI importance per true class over the run's test clips (a table for ``report``)."""
    explanations = explanations if explanations is not None else run.explain_all()
    model = run.model(int(run.predictions["fold_index"].iloc[0]))
    return importance_table(
        np.stack([e.importance for e in explanations]),
        [e.y_true for e in explanations],
        run.class_names,
        list(model.roi_names),
    )


def show_stag(run_dir: str | os.PathLike, clip: str, out: str | os.PathLike, store: str | None = None) -> Path:
    """Write the explanation figure of ``clip`` (and of every class, over all test clips) to ``out`` (PNG).

    Also writes ``<out stem>_importance.csv``: the mean ROI importance per class. Returns the PNG path.
    """
    run = StagRun(run_dir, store)
    row = run.row(clip)
    this = run.explain_clip(row["dataset"], row["clip"], int(row["fold_index"]), int(row["y_true"]))
    everything = run.explain_all()
    labels = [e.y_true for e in everything]
    imp = mean_by_class(np.stack([e.importance for e in everything]), labels, run.class_names)
    adj = mean_by_class(np.stack([e.adjacency for e in everything]), labels, run.class_names)
    model = run.model(int(row["fold_index"]))
    face, boxes = run.face(row["dataset"], row["clip"], model.roi_set)
    rows = [Explanation(f"{row['clip']} ({run.class_names[this.y_true]})", this.importance, this.adjacency)]
    rows += [Explanation(f"class {name} (mean)", imp[name], adj[name]) for name in imp]
    fig = explanation_figure(face, boxes, model.roi_names, rows, title=f"STAG {run.run_dir.name}: {row['dataset']}")
    path = save_figure(fig, out)
    table = roi_importance_per_class(run, everything)
    table.to_csv(path.with_name(f"{path.stem}_importance.csv"), index=False, float_format="%.6g")
    return path


def stag_importance_report(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """Mean ROI importance per class of a STAG run with checkpoints (written to ``roi_importance.csv`` in the
    run folder), or None for another model or a run without checkpoints."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file() or str(read_json(config_path).get("model", "")).lower() != "stag":
        return None
    if not (run_dir / "checkpoints").is_dir():
        return None
    run = StagRun(run_dir)
    if not run.model(int(run.predictions["fold_index"].iloc[0])).use_graph:
        return None  # no adjacency without the graph branch
    table = roi_importance_per_class(run)
    table.to_csv(run_dir / "roi_importance.csv", index=False, float_format="%.6g")
    return table
