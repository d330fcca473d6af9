"""Stochastic weight averaging (Izmailov et al., 2018): the running mean of the weights of the last epochs.

:class:`WeightAverage` keeps a float64 running mean of every floating-point parameter and buffer of a model
(``update`` once per epoch from ``swa_start`` on); ``copy_to(model)`` writes the mean into the model.
Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are taken from the last snapshot. A model with
BatchNorm layers should then have its running statistics recomputed on the training rows
(:func:`refresh_batch_norm`), since the averaged weights never produced the stored statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def swa_start_epoch(epochs: int, start_fraction: float | None) -> int | None:
    """First averaged epoch (0-based) for SWA over the last ``1 − start_fraction`` of ``epochs``; None = off."""
    if start_fraction is None:
        return None
    if not 0 <= start_fraction < 1:
        raise ValueError(f"swa_start must be a fraction in [0, 1), got {start_fraction}")
    return min(int(epochs * start_fraction), epochs - 1)


class WeightAverage:
    """Running mean of a model's floating-point state (parameters and buffers) over ``update`` calls."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.last: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Add the model's current state as one snapshot."""
        self.count += 1
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                v = value.detach().double()
                if name not in self.mean:
                    self.mean[name] = v.clone()
                else:
                    self.mean[name] += (v - self.mean[name]) / self.count
            else:
                self.last[name] = value.detach().clone()

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged state into ``model`` (unchanged when no snapshot was taken)."""
        if not self.count:
            return
        state = model.state_dict()
        for name, value in state.items():
            if name in self.mean:
                value.copy_(self.mean[name].to(value.dtype))
            elif name in self.last:
                value.copy_(self.last[name])


@torch.no_grad()
def refresh_batch_norm(model: nn.Module, batches: Iterable, forward: Callable[[nn.Module, object], object]) -> bool:
    """Recompute BatchNorm running statistics by running ``forward(model, batch)`` over ``batches`` in train
    mode (cumulative average, momentum None). Returns False (and does nothing) when the model has no BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    try:
        for batch in batches:
            forward(model, batch)
    finally:
        for m, mom in zip(norms, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    return True
