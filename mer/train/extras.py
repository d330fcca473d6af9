"""Training extras (reusable by every model): one set of values and the few calls a trainer makes.

:class:`TrainingExtras` holds every extra's value (all JSON-able, written to ``config.json``); the trainer calls:

=====================================  ==========================================================================
when                                   call
=====================================  ==========================================================================
before the epochs                      ``loss = make_extras_loss(opts, fit_labels, num_classes)``
                                       ``sched = make_extras_scheduler(optimizer, epochs, opts)``
                                       ``swa = SwaTracker(opts, epochs)``
                                       ``perm = roi_permutation_for(model)`` (None when no ``roi_flow`` input)
each epoch, the rows to visit          ``rows = epoch_rows(fit_rows, fit_labels, opts, rng)`` (then shuffled)
each training batch                    ``batch, target = augment_named(batch, y, num_classes, opts, gen, perm)``
                                       ``loss(model(batch), target)`` (target: B×K probabilities)
after each epoch                       ``sched.step()``; ``swa.after_epoch(model, epoch)``
after the epochs (and early stopping)  ``swa.finish(model, batches, forward)``
predicting                             ``probs = predict_probs(model, batch, opts, perm)``
=====================================  ==========================================================================

Early stopping stays the trainer's (an inner split of the training subjects only). With SWA the averaged
weights replace the best-epoch weights only when averaging actually ran (``swa.count > 0``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from mer.train.losses import FocalLoss, class_weights
from mer.train.mixing import MixConfig, mix_batch
from mer.train.roi_flip import random_flip, roi_flip_permutation
from mer.train.sampling import oversample_rows
from mer.train.schedules import SCHEDULES, make_scheduler
from mer.train.swa import WeightAverage, refresh_batch_norm, swa_start_epoch
from mer.train.tta import flip_tta_probs


@dataclass
class TrainingExtras:
    """Values of the training extras (defaults: all off, i.e. plain training).

    Each extra's field and default are declared here only: :class:`mer.train.trainer.TrainConfig` inherits them
    (a run's ``config.json`` and a recipe's ``[train]`` table carry them flat, beside the trainer's own values).

    ``loss`` ``focal`` | ``ce`` with ``gamma`` and ``label_smoothing``; ``class_weights`` ``None`` (or
    ``"none"``: no weights) | ``inverse`` | ``effective`` (``class_weights_beta``); ``lr_schedule``
    ``constant`` | ``warmup_cosine`` (``warmup_epochs``, ``min_lr_factor``); ``swa_start`` fraction of the epochs
    after which weights are averaged (None = off) at the constant rate ``swa_lr_factor`` × lr; ``mixup_alpha`` /
    ``cutmix_alpha`` / ``cutmix_prob`` / ``mix_prob`` (see :mod:`mer.train.mixing`); ``oversample`` factor in
    [0, 1] (:mod:`mer.train.sampling`); ``roi_flip_prob`` ROI-sequence mirror augmentation; ``tta`` ``none`` |
    ``flip``.
    """

    loss: str = "focal"
    gamma: float = 2.0
    label_smoothing: float = 0.0
    class_weights: str | None = None
    class_weights_beta: float = 0.999
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    min_lr_factor: float = 0.0
    swa_start: float | None = None
    swa_lr_factor: float = 0.2
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    cutmix_prob: float = 0.5
    mix_prob: float = 1.0
    oversample: float = 0.0
    roi_flip_prob: float = 0.0
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.tta not in ("none", "flip"):
            raise ValueError(f"tta={self.tta!r}; choose none or flip")
        if self.loss not in ("focal", "ce"):
            raise ValueError(f"loss={self.loss!r}; choose focal or ce")
        if self.class_weights not in (None, "none", "inverse", "effective"):
            raise ValueError(f"class_weights={self.class_weights!r}; choose none, inverse or effective")
        for name in ("mix_prob", "cutmix_prob", "oversample", "roi_flip_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)}; must be in [0, 1]")
        swa_start_epoch(1, self.swa_start)  # validates the fraction

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every value."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> TrainingExtras:
        """Inverse of :meth:`to_dict`; unknown keys are rejected by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(d))

    @property
    def mix(self) -> MixConfig:
        return MixConfig(self.mixup_alpha, self.cutmix_alpha, self.cutmix_prob, self.mix_prob)


def make_extras_loss(opts: TrainingExtras, fit_labels, num_classes: int) -> nn.Module:
    """The loss with class weights from the fit rows' labels (accepts index or probability targets)."""
    alpha = class_weights(opts.class_weights, fit_labels, num_classes, opts.class_weights_beta)
    gamma = opts.gamma if opts.loss == "focal" else 0.0
    return FocalLoss(gamma=gamma, alpha=alpha, label_smoothing=opts.label_smoothing)


def make_extras_scheduler(optimizer: torch.optim.Optimizer, epochs: int, opts: TrainingExtras):
    """Per-epoch ``LambdaLR``: the schedule, then the constant SWA rate from the SWA start epoch on."""
    start = swa_start_epoch(epochs, opts.swa_start)
    return make_scheduler(
        optimizer,
        epochs,
        schedule=opts.lr_schedule,
        warmup=opts.warmup_epochs,
        min_factor=opts.min_lr_factor,
        swa_start=start,
        swa_factor=opts.swa_lr_factor if start is not None else None,
    )


def epoch_rows(fit_rows: np.ndarray, fit_labels: np.ndarray, opts: TrainingExtras, rng: np.random.Generator):
    """The training rows of one epoch (oversampled when ``opts.oversample > 0``), not yet shuffled."""
    return oversample_rows(fit_rows, fit_labels, opts.oversample, rng)


def roi_permutation_for(model: nn.Module) -> np.ndarray | None:
    """The ROI mirror permutation of a model that reads ``roi_flow`` (its ``roi_set``), else None."""
    if "roi_flow" not in getattr(model, "input_names", ()):
        return None
    return roi_flip_permutation(model.roi_set)


def augment_named(
    batch: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    num_classes: int,
    opts: TrainingExtras,
    generator: torch.Generator | None,
    roi_permutation: np.ndarray | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """ROI-sequence mirror (``roi_flip_prob``), then MixUp/CutMix; returns the batch and B×K soft targets."""
    out = dict(batch)
    if roi_permutation is not None and "roi_flow" in out and opts.roi_flip_prob > 0:
        out["roi_flow"] = random_flip(out["roi_flow"], roi_permutation, opts.roi_flip_prob, generator)
    return mix_batch(out, y, num_classes, opts.mix, generator)


class SwaTracker:
    """Averages the weights after every epoch from the SWA start on; ``finish`` loads the average."""

    def __init__(self, opts: TrainingExtras, epochs: int) -> None:
        self.start = swa_start_epoch(epochs, opts.swa_start)
        self.average = WeightAverage()

    @property
    def count(self) -> int:
        return self.average.count

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        if self.start is not None and epoch >= self.start:
            self.average.update(model)

    def finish(
        self, model: nn.Module, batches: Iterable = (), forward: Callable[[nn.Module, object], object] | None = None
    ) -> bool:
        """Load the averaged weights (and recompute BatchNorm statistics over ``batches``); False if none."""
        if not self.average.count:
            return False
        self.average.copy_to(model)
        if forward is not None:
            refresh_batch_norm(model, batches, forward)
        return True


@torch.no_grad()
def predict_probs(
    model: nn.Module, batch: Mapping[str, torch.Tensor], opts: TrainingExtras, roi_permutation: np.ndarray | None
) -> torch.Tensor:
    """Class probabilities B×K, averaged with the mirrored batch when ``opts.tta == "flip"``."""
    if opts.tta == "flip":
        if roi_permutation is None:
            raise ValueError("tta=flip needs a model that reads roi_flow (the mirror of other inputs is not defined)")
        return flip_tta_probs(model, batch, roi_permutation)
    return torch.softmax(model(**batch).float(), dim=1)


def split_train_options(values: Mapping) -> tuple[dict, TrainingExtras]:
    """Split a preset's ``[train]`` table into the trainer's own options and the :class:`TrainingExtras`."""
    extra_keys = {f.name for f in fields(TrainingExtras)}
    extras = TrainingExtras.from_dict({k: v for k, v in values.items() if k in extra_keys})
    return {k: v for k, v in values.items() if k not in extra_keys}, extras
