"""Learning-rate schedules as per-epoch factors of the base rate (applied with ``torch.optim.lr_scheduler``).

``warmup_cosine``: linear warm-up from ``1/(warmup+1)`` of the rate to the full rate over ``warmup`` epochs,
then cosine decay to ``min_factor`` at the last epoch::

    f(e) = (e + 1) / (warmup + 1)                                   e < warmup
    f(e) = m + (1 − m) · ½ (1 + cos(π (e − warmup) / (E − 1 − warmup)))   otherwise

``constant``: ``f = 1``. With SWA (``mer.train.swa``) the rate from ``swa_start`` on is the constant
``swa_lr`` (as in Izmailov et al.): :func:`lr_factor` takes both and is the one formula the trainer calls.
"""

from __future__ import annotations

import math

import torch

SCHEDULES: tuple[str, ...] = ("constant", "warmup_cosine")


def warmup_cosine_factor(epoch: int, epochs: int, warmup: int = 0, min_factor: float = 0.0) -> float:
    """Factor of the base learning rate at ``epoch`` (0-based) of ``epochs`` (see the module docstring)."""
    if epochs < 1 or warmup < 0 or not 0 <= min_factor <= 1:
        raise ValueError(f"epochs={epochs}, warmup={warmup}, min_factor={min_factor}")
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    span = epochs - 1 - warmup
    if span <= 0:
        return 1.0
    progress = min(max((epoch - warmup) / span, 0.0), 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_factor(
    epoch: int,
    epochs: int,
    schedule: str = "constant",
    warmup: int = 0,
    min_factor: float = 0.0,
    swa_start: int | None = None,
    swa_factor: float | None = None,
) -> float:
    """Factor of the base rate at ``epoch``: ``schedule`` before ``swa_start``, ``swa_factor`` from it on."""
    if swa_start is not None and swa_factor is not None and epoch >= swa_start:
        return float(swa_factor)
    if schedule == "constant":
        return 1.0
    if schedule == "warmup_cosine":
        return warmup_cosine_factor(epoch, epochs, warmup, min_factor)
    raise ValueError(f"unknown lr schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def make_scheduler(optimizer: torch.optim.Optimizer, epochs: int, **kwargs) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping once per epoch with :func:`lr_factor` (``kwargs`` are its keyword options)."""
    lr_factor(0, epochs, **kwargs)  # bad options fail here
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, epochs, **kwargs))
