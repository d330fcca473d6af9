"""Losses: cross-entropy and focal loss, both with optional label smoothing and class weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """Focal loss ``-sum_c q_c * alpha_y * (1 - p_c)^gamma * log p_c`` (Lin et al.), averaged over the batch.

    ``q`` is the one-hot target, smoothed to ``(1-eps) onehot + eps/K`` with ``label_smoothing = eps``.
    With class weights ``alpha``, the batch mean is weighted by ``alpha[y]`` (sum / sum of weights, like
    ``nn.CrossEntropyLoss(weight=...)``). With ``gamma = 0`` it equals cross-entropy.
    """

    def __init__(
        self, gamma: float = 2.0, alpha: Sequence[float] | torch.Tensor | None = None, label_smoothing=0.0
    ) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        if alpha is not None:
            self.register_buffer("alpha", torch.as_tensor(alpha, dtype=torch.float32))
        else:
            self.alpha = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        k = logits.shape[1]
        q = F.one_hot(target, k).float()
        if self.label_smoothing > 0:
            q = q * (1 - self.label_smoothing) + self.label_smoothing / k
        mod = (1 - logp.exp()).clamp_min(0).pow(self.gamma) if self.gamma != 0 else 1.0
        per_sample = -(q * mod * logp).sum(dim=1)
        if self.alpha is None:
            return per_sample.mean()
        w = self.alpha.to(logits.device)[target]
        return (w * per_sample).sum() / w.sum()


def make_loss(
    name: str = "focal",
    gamma: float = 2.0,
    alpha: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """Build a loss by name: ``focal`` or ``ce`` (cross-entropy)."""
    name = name.lower()
    if name == "focal":
        return FocalLoss(gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)
    if name in ("ce", "cross_entropy", "crossentropy"):
        weight = torch.as_tensor(alpha, dtype=torch.float32) if alpha is not None else None
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    raise ValueError(f"unknown loss {name!r}; expected 'focal' or 'ce'")


def inverse_frequency_weights(y: Sequence[int] | torch.Tensor, num_classes: int) -> list[float]:
    """Class weights ``N / (K * n_c)`` from training labels (absent classes get weight 0)."""
    counts = torch.bincount(torch.as_tensor(y).long().cpu(), minlength=num_classes).double()
    n = counts.sum()
    w = torch.where(counts > 0, n / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return [float(v) for v in w]
