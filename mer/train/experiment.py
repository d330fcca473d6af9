"""Run one model under one protocol on a whole input tensor and write its results.

The input tensor is moved to the device once; each fold builds a fresh model (seeded per fold), trains on
its training rows only (the trainer indexes the device tensor per batch) and predicts its test rows.
Input standardisation statistics come from the fold's training rows and live inside the model. Folds train
one after another, or several together on the device (``parallel_folds``, :mod:`mer.train.fold_parallel`) with
the same arithmetic, so the same predictions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from collections.abc import Callable, Collection, Generator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mer.models import create
from mer.train.channels import declared_channels
from mer.train.checks import check_folds
from mer.train.fold_parallel import estimate_fold_bytes, plan_parallel_folds, train_interleaved
from mer.train.metrics import compute_metrics
from mer.train.protocols import Fold, Protocol, overlapping_subjects, parse_protocol, subject_keys
from mer.train.results import ExperimentResult, write_run
from mer.train.threads import torch_threads as threads_for_training
from mer.train.trainer import (
    SINGLE,
    History,
    TrainConfig,
    as_float_batch,
    call_model,
    fit,
    fit_steps,
    model_input_names,
    predict,
    resolve_device,
)

FoldProgress = Callable[[int, int, float], None]  # (fold index, epoch, train loss)


class Standardize(nn.Module):
    """Per-channel ``(x - mean) / std`` with the statistics stored as buffers (saved in checkpoints)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class StandardizedModel(nn.Module):
    """A network preceded by :class:`Standardize`."""

    def __init__(self, norm: Standardize, net: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))


@torch.no_grad()
def channel_stats(X: torch.Tensor, rows: np.ndarray, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over rows ``rows`` of ``X`` (as float, uint8 scaled to [0, 1])."""
    c = X.shape[1]
    s = torch.zeros(c, dtype=torch.float64, device=X.device)
    s2 = torch.zeros_like(s)
    count = 0
    idx = torch.as_tensor(rows, device=X.device)
    for start in range(0, len(idx), chunk):
        xb = as_float_batch(X[idx[start : start + chunk]]).double()
        s += xb.sum(dim=(0, 2, 3))
        s2 += (xb * xb).sum(dim=(0, 2, 3))
        count += xb.numel() // c
    mean = s / max(count, 1)
    std = (s2 / max(count, 1) - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.float(), std.float()


def encode_labels(labels: pd.Series, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Integer labels and class names from a label column of ints or of class-name strings."""
    if pd.api.types.is_integer_dtype(labels):
        y = labels.to_numpy().astype(np.int64)
        names = list(class_names) if class_names is not None else [str(i) for i in range(int(y.max()) + 1)]
        if y.min() < 0 or y.max() >= len(names):
            raise ValueError("integer labels out of range of class_names")
        return y, names
    names = list(class_names) if class_names is not None else sorted(labels.astype(str).unique())
    lookup = {n: i for i, n in enumerate(names)}
    unknown = set(labels.astype(str)) - set(lookup)
    if unknown:
        raise ValueError(f"labels not in class_names: {sorted(unknown)}")
    return labels.astype(str).map(lookup).to_numpy().astype(np.int64), names


def _to_device(arrays: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    out = {}
    for name, a in arrays.items():
        arr = np.ascontiguousarray(a)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        out[name] = torch.from_numpy(arr).to(device)
    return out


def _image_geometry(arrays: dict[str, np.ndarray]) -> tuple[int, int]:
    """(channels, height) of the first N×C×H×W input, for the model builder; (0, 0) when there is none."""
    for a in arrays.values():
        if a.ndim == 4:
            return int(a.shape[1]), int(a.shape[2])
    return 0, 0


def run_experiment(
    X: np.ndarray | dict[str, np.ndarray],
    meta: pd.DataFrame,
    protocol: str | Protocol,
    model_name: str,
    model_options: dict | None = None,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    provenance: dict | None = None,
    progress: FoldProgress | None = None,
    input_name: str | None = None,
    save_checkpoints: bool = False,
    recipe: str | None = None,
    parallel_folds: int | None = 1,
    folds_to_train: Collection[int] | None = None,
    torch_threads: int | None = None,
) -> ExperimentResult:
    """Train and evaluate ``model_name`` on ``X`` (N x C x H x W) under ``protocol``; write to ``out_dir``.

    ``X`` is one array for a single-input model, or a dict of named arrays (one row per clip each) for a
    model that declares ``input_names``; single-input models get per-channel standardisation from the
    fold's training rows (``config.standardize``), multi-input models normalise their inputs themselves.

    ``meta`` has one row per clip with columns ``dataset, subject, clip_id, label`` (label: int index into
    ``class_names`` or a class-name string). Metrics are computed on the pooled test predictions of all
    folds, per fold and per dataset. ``provenance`` is written to ``provenance.json`` as given; ``recipe``
    (the preset the config came from, if any) is recorded in ``config.json`` beside every value.
    ``parallel_folds``: folds trained together on the device (:mod:`mer.train.fold_parallel`; the same
    predictions as one at a time); ``None`` chooses (CUDA: as many as fit in memory; CPU: 1).
    ``folds_to_train``: train only the folds of these indices (all folds are still made and checked), for one
    fold per task on a cluster (:mod:`mer.train.distributed`); the metrics then cover those folds only.
    ``torch_threads``: PyTorch's intra-op threads when training on a CPU (None: the ``OMP_NUM_THREADS`` request, else
    the current count; :mod:`mer.train.threads`), restored afterwards and recorded as ``cpu_threads``.
    """
    config = config or TrainConfig()
    if config.channels is None:  # the stored input's channel declaration drives flip/rotation (mer.train.augment)
        config = dataclasses.replace(config, channels=declared_channels(provenance))
    model_options = dict(model_options or {})
    proto = parse_protocol(protocol)
    meta = meta.reset_index(drop=True)
    arrays = dict(X) if isinstance(X, dict) else {SINGLE: X}
    for name, a in arrays.items():
        if len(a) != len(meta):
            raise ValueError(f"input {name!r} has {len(a)} rows but meta has {len(meta)}")
    y_np, names = encode_labels(meta["label"], class_names)
    k = len(names)
    keys = subject_keys(meta)
    folds: list[Fold] = proto.folds(meta)
    check_folds(folds, y_np, keys, proto.name, class_names=names)  # no metrics from folds that cannot mean anything
    device = resolve_device(config.device)

    inputs = _to_device(arrays, device)
    yd = torch.from_numpy(y_np).to(device)
    c, h = _image_geometry(arrays)
    ckpt_dir = Path(out_dir) / "checkpoints" if (out_dir is not None and save_checkpoints) else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    selected = [fi for fi in range(len(folds)) if folds_to_train is None or fi in folds_to_train]
    for fold in folds:
        if len(np.intersect1d(fold.train_idx, fold.test_idx)):
            raise AssertionError(f"fold {fold.name}: train and test rows overlap")
    runs = _FoldRuns(model_name, model_options, k, (c, h), inputs, yd, folds, keys, config, device, progress, ckpt_dir)
    n_parallel, parallel_basis = plan_parallel_folds(parallel_folds, len(selected), device, runs.fold_bytes)
    t_start = time.perf_counter()
    on_cpu = device.type == "cpu"
    with threads_for_training(torch_threads) if on_cpu else contextlib.nullcontext() as cpu_threads:
        if n_parallel == 1:
            for fi in selected:
                net = runs.build(fi)
                runs.record(fi, net, runs.train(fi, net, fit))
                del net
        else:
            train_interleaved(
                len(selected),
                n_parallel,
                lambda i: runs.start(selected[i]),
                lambda i, net, hist: runs.record(selected[i], net, hist),
                device,
                config.deterministic,
            )
    standardized = runs.standardized
    per_fold, pred_frames, hist_frames = [], [], []
    for fi in selected:
        fold = folds[fi]
        summary, probs, h_df = runs.results[fi]
        per_fold.append(summary)
        pred_frames.append(_fold_predictions(meta, fold, fi, y_np, probs.argmax(1), probs, names))
        hist_frames.append(h_df)

    preds = pd.concat(pred_frames, ignore_index=True) if pred_frames else pd.DataFrame()
    history = pd.concat(hist_frames, ignore_index=True) if hist_frames else pd.DataFrame()
    metrics = summarise(preds, k, names, per_fold)
    metrics["train_seconds"] = time.perf_counter() - t_start
    run_config = {
        "model": model_name,
        "model_options": model_options,
        "input": input_name if input_name is not None else (provenance or {}).get("input"),
        "protocol": proto.to_dict(),
        "subject_independent": overlapping_subjects(meta, folds) == 0,  # measured on the folds
        "test_subjects_in_training": overlapping_subjects(meta, folds),
        "precision": "bfloat16 autocast" if (config.amp and device.type == "cuda") else "float32",
        "recipe": recipe,
        "train": config.to_dict(),
        "class_names": names,
        "num_classes": k,
        "input_shape": _shapes(inputs, lambda t: [int(s) for s in t.shape[1:]]),
        "input_dtype": _shapes(inputs, lambda t: str(t.dtype).removeprefix("torch.")),
        "standardized": standardized,
        "n_clips": len(meta),
        "n_folds": len(folds),
        "parallel_folds": n_parallel,
        "parallel_folds_basis": parallel_basis,
        "datasets": sorted(meta["dataset"].astype(str).unique()),
        "device": str(device),
        "cpu_threads": cpu_threads,
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    if out_dir is not None:
        write_run(out_dir, run_config, provenance, preds, history, metrics)
    return ExperimentResult(metrics, preds, history, run_config, Path(out_dir) if out_dir is not None else None)


@dataclasses.dataclass
class _FoldRuns:
    """The folds of one run: each fold's seeded model, its training arguments, and its recorded results."""

    model_name: str
    model_options: dict
    k: int  # classes
    geometry: tuple[int, int]  # (channels, height) of the image input; (0, 0) when there is none
    inputs: dict[str, torch.Tensor]  # on the device
    yd: torch.Tensor
    folds: list[Fold]
    keys: np.ndarray  # subject key per row
    config: TrainConfig
    device: torch.device
    progress: FoldProgress | None
    ckpt_dir: Path | None
    results: dict[int, tuple[dict, np.ndarray, pd.DataFrame]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.probe = self._create()  # the model as built (which inputs it takes, how big it is)
        first = next(iter(self.inputs.values()))
        single = model_input_names(self.probe) is None and len(self.inputs) == 1
        self.standardized = self.config.standardize and single and first.ndim == 4

    def _create(self) -> nn.Module:
        c, h = self.geometry[0] or 3, self.geometry[1] or 224
        return create(self.model_name, num_classes=self.k, in_channels=c, image_size=h, **self.model_options)

    def fold_config(self, fi: int) -> TrainConfig:
        return dataclasses.replace(self.config, seed=self.config.seed + fi)

    def inputs_of(self, net: nn.Module):
        """The named inputs for a multi-input model, the one tensor for a single-input one."""
        return self.inputs if model_input_names(net) is not None else next(iter(self.inputs.values()))

    def build(self, fi: int) -> nn.Module:
        """Fold ``fi``'s fresh model, seeded with the fold's seed, standardised with its training rows."""
        torch.manual_seed(self.fold_config(fi).seed)
        net = self._create()
        named = model_input_names(net)
        if named is None:
            if len(self.inputs) != 1:
                raise ValueError(f"model {self.model_name!r} takes one input, got {sorted(self.inputs)}")
            if self.standardized:
                stats = channel_stats(self.inputs_of(net), self.folds[fi].train_idx)
                net = StandardizedModel(Standardize(*stats), net)
        elif set(named) != set(self.inputs):
            raise ValueError(f"model {self.model_name!r} takes inputs {list(named)}, got {sorted(self.inputs)}")
        return net.to(self.device)

    def train(self, fi: int, net: nn.Module, trainer: Callable):
        """``trainer`` (:func:`fit` or :func:`fit_steps`) on fold ``fi``'s training rows only, with its seed."""
        progress = self.progress
        cb = (lambda e, loss: progress(fi, e, loss)) if progress is not None else None
        rows = self.folds[fi].train_idx
        x = self.inputs_of(net)
        return trainer(net, x, self.yd, self.fold_config(fi), indices=rows, groups=self.keys[rows], progress=cb)

    def start(self, fi: int) -> tuple[nn.Module, Generator]:
        """Fold ``fi``'s model and its step generator, for :func:`train_interleaved`."""
        net = self.build(fi)
        return net, self.train(fi, net, fit_steps)

    def record(self, fi: int, net: nn.Module, hist: History) -> None:
        """Predict fold ``fi``'s test rows with its trained model; keep its summary, scores and history."""
        fold, cfg = self.folds[fi], self.config
        probs = predict(net, self.inputs_of(net), fold.test_idx, cfg.eval_batch_size, cfg.amp, cfg.tta).cpu().numpy()
        if self.ckpt_dir is not None:
            torch.save(net.state_dict(), self.ckpt_dir / f"fold{fi:03d}.pt")
        fm = compute_metrics(self.yd[torch.as_tensor(fold.test_idx)].cpu().numpy(), probs.argmax(1), self.k)
        summary = {
            "fold": fold.name,
            "n_train": int(len(hist.train_rows)),
            "n_val": int(len(hist.val_rows)),
            "n_test": int(len(fold.test_idx)),
            "acc": fm["acc"],
            "uf1": fm["uf1"],
            "uar": fm["uar"],
            "best_epoch": hist.best_epoch,
        }
        h_df = pd.DataFrame(hist.epochs)
        h_df.insert(0, "fold", fold.name)
        self.results[fi] = (summary, probs, h_df)

    def fold_bytes(self) -> int:
        """Estimated device bytes of one fold in training (:func:`estimate_fold_bytes`)."""
        named = model_input_names(self.probe) is not None
        shapes = self.inputs if named else {SINGLE: next(iter(self.inputs.values()))}
        return estimate_fold_bytes(self.probe, shapes, self.config.batch_size, call_model)


def _shapes(inputs: dict[str, torch.Tensor], fn: Callable) -> object:
    """``fn`` of the one input (single-input run, as before) or a dict name -> ``fn`` of each input."""
    if set(inputs) == {SINGLE}:
        return fn(inputs[SINGLE])
    return {name: fn(t) for name, t in inputs.items()}


def _fold_predictions(meta, fold: Fold, fi: int, y_np, y_pred, probs, names) -> pd.DataFrame:
    rows = meta.iloc[fold.test_idx]
    df = pd.DataFrame(
        {
            "row": fold.test_idx,
            "dataset": rows["dataset"].astype(str).to_numpy(),
            "subject": rows["subject"].astype(str).to_numpy(),
            "clip": rows["clip_id"].astype(str).to_numpy() if "clip_id" in rows else fold.test_idx.astype(str),
            "fold": fold.name,
            "fold_index": fi,
            "y_true": y_np[fold.test_idx],
            "y_pred": y_pred,
            "true_name": [names[i] for i in y_np[fold.test_idx]],
            "pred_name": [names[i] for i in y_pred],
        }
    )
    for j, n in enumerate(names):
        df[f"score_{n}"] = probs[:, j]
    return df


def summarise(preds: pd.DataFrame, k: int, names: list[str], per_fold: list[dict]) -> dict:
    """The run's metrics: pooled over every fold's test predictions, per dataset, and the per-fold records."""
    pooled = compute_metrics(preds["y_true"], preds["y_pred"], k) if len(preds) else {}
    per_dataset = {
        str(ds): _headline(compute_metrics(g["y_true"], g["y_pred"], k)) for ds, g in preds.groupby("dataset")
    }
    out = {key: pooled.get(key) for key in ("uf1", "uar", "acc", "wf1", "n")}
    out.update(
        {
            "class_names": names,
            "per_class_f1": dict(zip(names, pooled.get("per_class_f1", []), strict=False)),
            "per_class_recall": dict(zip(names, pooled.get("per_class_recall", []), strict=False)),
            "support": dict(zip(names, pooled.get("support", []), strict=False)),
            "confusion_matrix": pooled.get("confusion_matrix"),
            "per_dataset": per_dataset,
            "per_fold": per_fold,
        }
    )
    return out


def _headline(m: dict) -> dict:
    return {key: m[key] for key in ("uf1", "uar", "acc", "wf1", "n")} | {"confusion_matrix": m["confusion_matrix"]}
