"""Whole-tensor trainer: the dataset lives on the device and is indexed per batch (no DataLoader).

Inputs by name: ``X`` is one tensor (a single-input model, called ``model(x)``) or a dict of tensors with
one row per clip (any rank: images N×C×H×W, ROI sequences N×T×R×2, AU vectors N×21). A model that declares
``input_names`` is called ``model(**batch)`` with exactly those keys; the inputs it lists in
``image_inputs`` get one random flip/rotation/crop per sample, the same for all of them (onset and apex
stay aligned). A model may define ``epoch_record() -> dict[str, float]`` (e.g. SOA angles); its values are
written to the history after every epoch.

``fit`` trains for a fixed number of epochs (50 by default, the paper's schedule). Early stopping is
optional and only ever looks at an inner validation split drawn from the *training* rows (by subject when
``groups`` is given), never at a test fold. float32 by default; mixed precision (bfloat16 autocast, CUDA only)
is opt-in (``amp=True``) and recorded in config.json. Runs are seeded and use deterministic algorithms on CPU and
CUDA by default (``deterministic=True``; on CUDA with ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` and cuDNN benchmarking
off), so two runs with one seed on one device match exactly.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from mer.train.augment import PAPER_ANGLES, apply_transform, draw_transform
from mer.train.extras import (
    SwaTracker,
    TrainingExtras,
    augment_named,
    epoch_rows,
    make_extras_loss,
    make_extras_scheduler,
    predict_probs,
    roi_permutation_for,
)
from mer.train.losses import inverse_frequency_weights, make_loss
from mer.train.metrics import compute_metrics

ProgressFn = Callable[[int, float], None]  # (epoch, train loss)
Inputs = torch.Tensor | Mapping[str, torch.Tensor]
SINGLE = "x"  # the key of the one input of a model that declares no ``input_names``


@dataclass
class TrainConfig(TrainingExtras):
    """Training hyper-parameters (paper defaults: Adam, focal loss, 50 epochs, flip + ±5/±10° rotation).

    The paper's learning-rate and weight-decay values were lost in extraction; 1e-4 / 1e-4 are our choice.
    ``val_fraction > 0`` holds out that share of training subjects as an inner validation split; with
    ``early_stopping`` it stops after ``patience`` epochs without a lower validation loss and restores the
    best weights. ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    ``standardize``: per-channel mean/std from the training rows, applied inside the model (see experiment).
    ``profile``: synchronise around the data step to measure how long the device waits for data.
    ``crop_padding``: random crop of the image zero-padded by that many pixels (0 = none).
    ``lr_decay``: exponential learning-rate decay per epoch (1.0 = constant).
    ``lr_groups``: ``{substring: lr}``: parameters whose name contains the substring (first match) get that
    learning rate and no weight decay (e.g. ``{"theta": 1e-2}`` for FaceSleuth's SOA angles).

    The loss and the extras for any model are the inherited fields of
    :class:`~mer.train.extras.TrainingExtras`, declared and validated there only (all off by default):
    ``loss`` / ``gamma`` / ``label_smoothing``, ``class_weights`` (``None``, ``"inverse"``: inverse class
    frequency of the training rows, ``"effective"`` with ``class_weights_beta``), ``lr_schedule="warmup_cosine"``
    (``warmup_epochs``, ``min_lr_factor``), SWA from the ``swa_start`` fraction of the epochs at ``swa_lr_factor``
    × lr (the average replaces the best-epoch weights), ``mixup_alpha`` / ``cutmix_alpha`` / ``cutmix_prob`` /
    ``mix_prob``, ``oversample`` (minority classes up to that fraction of the largest per epoch),
    ``roi_flip_prob`` (ROI-sequence mirror of a ``roi_flow`` input) and ``tta="flip"`` (test-time mirror of a
    ``roi_flow`` input). Inheriting (rather than holding the extras as one field) keeps every value a flat
    keyword, attribute and ``config.json`` key, as recipes, the command line and older run folders have them;
    :meth:`to_dict` lists the trainer's own values first, then the extras.
    """

    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    augment: bool = True
    flip_prob: float = 0.5
    rotation_angles: tuple[float, ...] = PAPER_ANGLES
    # the inputs' channel declarations (mer.train.augment): one tuple for a single input, or one per input name;
    # None = intensities
    channels: tuple[str, ...] | dict[str, tuple[str, ...]] | None = None
    crop_padding: int = 0
    lr_decay: float = 1.0
    lr_groups: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    val_fraction: float = 0.0
    early_stopping: bool = False
    patience: int = 10
    amp: bool = False
    deterministic: bool = True
    device: str = "auto"
    standardize: bool = True
    eval_batch_size: int = 256
    profile: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-able dict of the fields: the trainer's own, then the extras (as ``config.json`` reads best)."""
        extra_names = [f.name for f in dataclasses.fields(TrainingExtras)]
        d = asdict(self)
        d = {k: v for k, v in d.items() if k not in extra_names} | {k: d[k] for k in extra_names}
        d["rotation_angles"] = list(self.rotation_angles)
        if isinstance(self.channels, dict):
            d["channels"] = {k: list(v) for k, v in self.channels.items()}
        else:
            d["channels"] = list(self.channels) if self.channels else None
        d["lr_groups"] = dict(self.lr_groups)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are rejected)."""
        d = dict(d)
        if "rotation_angles" in d:
            d["rotation_angles"] = tuple(d["rotation_angles"])
        if isinstance(d.get("channels"), dict):
            d["channels"] = {k: tuple(v) for k, v in d["channels"].items()}
        elif d.get("channels") is not None:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


@dataclass
class History:
    """Per-epoch records (dicts with epoch, train_loss, train_acc, and val_* when an inner split exists)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    swa_epochs: int = 0
    train_rows: np.ndarray | None = None
    val_rows: np.ndarray | None = None


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_float_batch(xb: torch.Tensor) -> torch.Tensor:
    """Convert a gathered batch to float32 (uint8 images are scaled to [0, 1])."""
    if xb.dtype == torch.uint8:
        return xb.float().div_(255.0)
    return xb.float()


def channels_of(config: TrainConfig, name: str) -> tuple[str, ...] | None:
    """The channel declaration of input ``name`` (the one declaration of a single-input run)."""
    if isinstance(config.channels, dict):
        found = config.channels.get(name)
        return tuple(found) if found else None
    return config.channels


def model_input_names(model: nn.Module) -> tuple[str, ...] | None:
    """The input names a model declares (``input_names``), or None for a single-input model."""
    names = getattr(model, "input_names", None)
    return tuple(names) if names is not None else None


def as_inputs(X: Inputs) -> dict[str, torch.Tensor]:
    """One tensor becomes ``{"x": X}``; a mapping is copied as a dict (all with the same number of rows)."""
    inputs = {SINGLE: X} if isinstance(X, torch.Tensor) else dict(X)
    if not inputs:
        raise ValueError("no inputs given")
    sizes = {name: len(t) for name, t in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"inputs have different numbers of rows: {sizes}")
    return inputs


def check_inputs(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> None:
    """Raise ValueError unless ``inputs`` has exactly the names the model declares (or one, if it declares none)."""
    names = model_input_names(model)
    if names is None:
        if len(inputs) != 1:
            raise ValueError(f"the model takes one input, got {sorted(inputs)}")
        return
    if set(names) != set(inputs):
        raise ValueError(f"the model takes inputs {list(names)}, got {sorted(inputs)}")


def image_input_names(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> list[str]:
    """Inputs that augmentation transforms: the model's ``image_inputs``, or the one N×C×H×W input."""
    declared = getattr(model, "image_inputs", None)
    if declared is not None:
        return [n for n in declared if n in inputs]
    if model_input_names(model) is None:
        return [n for n, t in inputs.items() if t.ndim == 4]
    return []


def gather_batch(inputs: Mapping[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``idx`` of every input, as float32 (uint8 scaled to [0, 1])."""
    return {name: as_float_batch(t[idx]) for name, t in inputs.items()}


def call_model(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``model(**batch)`` for a model with ``input_names``, else ``model(x)`` on the one input."""
    if model_input_names(model) is None:
        (x,) = batch.values()
        return model(x)
    return model(**batch)


def epoch_record(model: nn.Module) -> dict[str, float]:
    """The model's per-epoch values (``epoch_record()``), e.g. learned angles; {} when it defines none."""
    fn = getattr(model, "epoch_record", None)
    return {k: float(v) for k, v in fn().items()} if callable(fn) else {}


@contextlib.contextmanager
def deterministic_mode(enabled: bool):
    """Temporarily enforce deterministic algorithms, cuDNN included (restores the previous settings).

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` for deterministic results; it is set to ``:4096:8`` unless given.
    """
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn


def inner_split(
    rows: np.ndarray, y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training ``rows`` into (fit, val): whole groups (subjects) when given, else stratified rows."""
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        return rows, rows[:0]
    if groups is not None:
        keys = np.unique(groups)
        if len(keys) < 2:
            raise ValueError("an inner validation split by subject needs at least two training subjects")
        keys = keys[rng.permutation(len(keys))]
        target = fraction * len(rows)
        chosen, total = [], 0
        for k in keys[:-1]:
            if total >= target:
                break
            chosen.append(k)
            total += int((groups == k).sum())
        val_mask = np.isin(groups, chosen)
    else:
        val_mask = np.zeros(len(rows), dtype=bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            k = int(round(fraction * len(idx)))
            val_mask[rng.choice(idx, size=min(k, len(idx) - 1), replace=False)] = True
    return rows[~val_mask], rows[val_mask]


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Optimizer groups: the default group, then one per ``lr_groups`` pattern that matches (no weight decay)."""
    default: list[nn.Parameter] = []
    special: dict[str, list[nn.Parameter]] = {pattern: [] for pattern in cfg.lr_groups}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        match = next((pattern for pattern in cfg.lr_groups if pattern in name), None)
        (special[match] if match is not None else default).append(param)
    groups = [{"params": default}]
    groups += [{"params": ps, "lr": cfg.lr_groups[pat], "weight_decay": 0.0} for pat, ps in special.items() if ps]
    return groups


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    name = cfg.optimizer.lower()
    groups = parameter_groups(model, cfg)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=0.9)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(
    model: nn.Module,
    X: Inputs,
    y: torch.Tensor,
    config: TrainConfig,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    groups: Sequence | np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> History:
    """Train ``model`` in place on rows ``indices`` of ``X``/``y`` (all when None); return its history.

    ``X`` (one N x C x H x W tensor, uint8 or float, or a dict of named inputs with one row per clip) and
    ``y`` (N, int64) should already be on the device; only rows in ``indices`` are ever read. ``groups``
    (one key per entry of ``indices``, e.g. subject) makes the inner
    validation split subject-wise. ``progress(epoch, loss)`` is called after every epoch.
    """
    steps = fit_steps(model, X, y, config, indices, groups, progress)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def fit_steps(
    model: nn.Module,
    X: Inputs,
    y: torch.Tensor,
    config: TrainConfig,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    groups: Sequence | np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> Generator[None, None, History]:
    """:func:`fit` one optimizer step at a time: yields after every step, returns the history at the end.

    Several of these run interleaved (:mod:`mer.train.fold_parallel`) train several folds together with the
    arithmetic of :func:`fit` unchanged. Nothing global changes between two yields except the default
    random generator (dropout), which the caller gives each run its own state of (the deterministic-algorithms
    mode is entered alike by every run and held by the caller around them all). ``epoch_time`` counts only
    the time spent in this run, not while it waits at a yield.
    """
    inputs = as_inputs(X)
    check_inputs(model, inputs)
    images = image_input_names(model, inputs)
    n_rows = len(next(iter(inputs.values())))
    device = y.device
    model.to(device)
    rows = np.arange(n_rows) if indices is None else np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64)
    y_rows = y[torch.as_tensor(rows, device=y.device)].cpu().numpy()
    g = None if groups is None else np.asarray(groups)
    fit_rows, val_rows = inner_split(rows, y_rows, g, config.val_fraction, config.seed)
    num_classes = _num_classes(model)
    y_fit = y[torch.as_tensor(fit_rows, device=y.device)].cpu().numpy()
    if _plain(config):
        alpha = inverse_frequency_weights(y_fit, num_classes) if config.class_weights == "inverse" else None
        loss_fn = make_loss(config.loss, config.gamma, alpha, config.label_smoothing).to(device)
    else:
        loss_fn = make_extras_loss(config, y_fit, num_classes).to(device)  # takes MixUp's soft targets
    optimizer = _make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_decay) if config.lr_decay != 1 else None
    if config.lr_schedule != "constant" or config.swa_start is not None:
        if scheduler is not None:
            raise ValueError("lr_decay cannot be combined with lr_schedule or swa_start; use one of them")
        scheduler = make_extras_scheduler(optimizer, config.epochs, config)
    swa = SwaTracker(config, config.epochs)
    roi_perm = roi_permutation_for(model) if config.roi_flip_prob > 0 else None
    row_rng = np.random.default_rng(config.seed)
    use_amp = config.amp and device.type == "cuda"
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed)
    fit_t = torch.as_tensor(fit_rows, device=device)
    history = History(train_rows=fit_rows, val_rows=val_rows)
    best_loss, best_state, waited = float("inf"), None, 0
    n = len(fit_t)
    bs = config.batch_size
    with deterministic_mode(config.deterministic):
        for epoch in range(config.epochs):
            t0, paused = time.perf_counter(), 0.0
            model.train()
            if config.oversample > 0:
                fit_t = torch.as_tensor(epoch_rows(fit_rows, y_fit, config, row_rng), device=device)
                n = len(fit_t)
            perm = fit_t[torch.randperm(n, generator=gen, device=device)]
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, data_time = 0, 0.0
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                if len(idx) < 2 and n >= 2:  # BatchNorm needs two samples; drop a lone remainder
                    continue
                if config.profile:
                    _sync(device)
                    td = time.perf_counter()
                batch = gather_batch(inputs, idx)
                yb = y[idx]
                if config.augment and images:
                    tf = draw_transform(
                        len(idx), gen, device, config.flip_prob, config.rotation_angles, config.crop_padding
                    )
                    for name in images:
                        batch[name] = apply_transform(batch[name], tf, channels_of(config, name))
                target = yb
                if roi_perm is not None or config.mix.enabled:
                    batch, target = augment_named(batch, yb, num_classes, config, gen, roi_perm)
                if config.profile:
                    _sync(device)
                    data_time += time.perf_counter() - td
                with _autocast(device, use_amp):
                    logits = call_model(model, batch)
                    loss = loss_fn(logits.float(), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(idx)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(idx)
                t_yield = time.perf_counter()
                yield
                paused += time.perf_counter() - t_yield
            if config.profile:
                _sync(device)
            rec = {
                "epoch": epoch,
                "train_loss": float(loss_sum) / max(seen, 1),
                "train_acc": float(correct) / max(seen, 1),
                "epoch_time": time.perf_counter() - t0 - paused,
            }
            rec["lr"] = float(optimizer.param_groups[0]["lr"])
            if scheduler is not None:
                scheduler.step()
            swa.after_epoch(model, epoch)
            if config.profile:
                rec["data_time"] = data_time
            rec.update(epoch_record(model))
            if len(val_rows):
                rec.update(_validate(model, inputs, y, val_rows, loss_fn, config, num_classes))
            history.epochs.append(rec)
            if progress is not None:
                progress(epoch, rec["train_loss"])
            if len(val_rows) and config.early_stopping:
                if rec["val_loss"] < best_loss:
                    best_loss, waited, history.best_epoch = rec["val_loss"], 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    waited += 1
                    if waited >= config.patience:
                        break
    fit_all = torch.as_tensor(fit_rows, device=device)
    bn_batches = (gather_batch(inputs, fit_all[s : s + bs]) for s in range(0, len(fit_all), bs))
    if swa.finish(model, bn_batches, call_model):  # the average of the last epochs replaces the best epoch
        history.swa_epochs = swa.count
    elif best_state is not None:
        model.load_state_dict(best_state)
    return history


def _plain(extras: TrainingExtras) -> bool:
    """No extra that needs the recipe loss (soft targets or effective-number weights)."""
    return not extras.mix.enabled and extras.class_weights in (None, "none", "inverse")


@torch.no_grad()
def predict(
    model: nn.Module,
    X: Inputs,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    batch_size: int = 256,
    amp: bool = False,
    tta: str = "none",
) -> torch.Tensor:
    """Class probabilities (softmax of logits, float32, N x K) for rows ``indices`` of ``X`` (eval mode).

    ``tta="flip"`` averages them with those of the mirrored batch (a model with a ``roi_flow`` input)."""
    model.eval()
    inputs = as_inputs(X)
    check_inputs(model, inputs)
    first = next(iter(inputs.values()))
    device = first.device
    rows = (
        torch.arange(len(first), device=device)
        if indices is None
        else torch.as_tensor(np.asarray(torch.as_tensor(indices).cpu()), device=device)
    )
    out = []
    with _autocast(device, amp):
        for start in range(0, len(rows), batch_size):
            batch = gather_batch(inputs, rows[start : start + batch_size])
            if tta == "none":
                out.append(torch.softmax(call_model(model, batch).float(), dim=1))
            else:
                out.append(predict_probs(model, batch, TrainingExtras(tta=tta), roi_permutation_for(model)))
    if not out:
        return torch.zeros(0, _num_classes(model), device=device)
    return torch.cat(out)


def _validate(model, X, y, rows, loss_fn, cfg: TrainConfig, num_classes: int) -> dict:
    probs = predict(model, X, rows, cfg.eval_batch_size, cfg.amp, cfg.tta)
    yv = y[torch.as_tensor(rows, device=y.device)]
    with torch.no_grad():
        loss = float(loss_fn(torch.log(probs.clamp_min(1e-12)), yv))
    m = compute_metrics(yv.cpu().numpy(), probs.argmax(1).cpu().numpy(), num_classes)
    return {"val_loss": loss, "val_acc": m["acc"], "val_uf1": m["uf1"], "val_uar": m["uar"]}


def _num_classes(model: nn.Module) -> int:
    declared = getattr(model, "num_classes", None)
    if isinstance(declared, int):
        return declared
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("cannot infer the number of classes: the model has no nn.Linear layer")
    return last[-1].out_features


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
