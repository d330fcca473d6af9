"""Losses: cross-entropy and focal loss, both with optional label smoothing and class weights.

Class weights: ``inverse`` frequency (``N / (K n_c)``) or ``effective`` number of samples (Cui et al., CVPR
2019, "class-balanced loss"): ``w_c ∝ (1 − β) / (1 − β^{n_c})``, normalised to sum to K. STAG's
class-balanced focal loss is ``FocalLoss(gamma, alpha=effective_number_weights(...), label_smoothing)``.
Targets may be class indices (B) or probability rows (B×K, e.g. from MixUp/CutMix).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """Focal loss ``-sum_c q_c * alpha_y * (1 - p_c)^gamma * log p_c`` (Lin et al.), averaged over the batch.

    ``q`` is the one-hot target (or a B×K row of target probabilities), smoothed to ``(1-eps) q + eps/K``
    with ``label_smoothing = eps``. With class weights ``alpha``, the batch mean is weighted by ``alpha[y]``
    (sum / sum of weights, like ``nn.CrossEntropyLoss(weight=...)``; for probability targets the weight of a
    sample is ``sum_c q_c alpha_c``). ``gamma`` is one value or one per class (``gamma_c`` focuses class
    ``c``'s term). With ``gamma = 0`` it equals cross-entropy.
    """

    def __init__(
        self,
        gamma: float | Sequence[float] = 2.0,
        alpha: Sequence[float] | torch.Tensor | None = None,
        label_smoothing=0.0,
    ) -> None:
        super().__init__()
        if isinstance(gamma, int | float):
            self.gamma: float | torch.Tensor = float(gamma)
        else:
            self.register_buffer("gamma", torch.as_tensor(gamma, dtype=torch.float32))
        self.label_smoothing = float(label_smoothing)
        if alpha is not None:
            self.register_buffer("alpha", torch.as_tensor(alpha, dtype=torch.float32))
        else:
            self.alpha = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        k = logits.shape[1]
        q0 = F.one_hot(target, k).float() if target.ndim == 1 else target.float()
        q = q0
        if self.label_smoothing > 0:
            q = q0 * (1 - self.label_smoothing) + self.label_smoothing / k
        gamma = self.gamma
        if isinstance(gamma, torch.Tensor):
            mod = (1 - logp.exp()).clamp_min(0).pow(gamma.to(logits.device))
        else:
            mod = (1 - logp.exp()).clamp_min(0).pow(gamma) if gamma != 0 else 1.0
        per_sample = -(q * mod * logp).sum(dim=1)
        if self.alpha is None:
            return per_sample.mean()
        w = q0 @ self.alpha.to(logits.device)
        return (w * per_sample).sum() / w.sum()


def make_loss(
    name: str = "focal",
    gamma: float | Sequence[float] = 2.0,
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


def effective_number_weights(y: Sequence[int] | torch.Tensor, num_classes: int, beta: float = 0.999) -> list[float]:
    """Class-balanced weights from the effective number of samples ``E_c = (1 − β^{n_c}) / (1 − β)``.

    ``w_c = (1 / E_c) / sum_{c'} (1 / E_{c'}) · K'`` over the ``K'`` classes present (absent classes get 0),
    so the weights of present classes sum to ``K'``; ``β → 1`` tends to inverse frequency, ``β = 0`` to equal
    weights. ``beta`` in [0, 1).
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    counts = torch.bincount(torch.as_tensor(y).long().cpu(), minlength=num_classes).double()
    present = counts > 0
    effective = (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts)) / (1 - beta)
    inv = torch.where(present, 1.0 / effective.clamp_min(1e-12), torch.zeros_like(counts))
    w = inv / inv.sum() * present.sum()
    return [float(v) for v in w]


def class_weights(kind: str | None, y: Sequence[int] | torch.Tensor, num_classes: int, beta: float = 0.999):
    """Class weights by name: ``None`` (no weights), ``inverse`` or ``effective`` (with ``beta``)."""
    if kind is None or kind == "none":
        return None
    if kind == "inverse":
        return inverse_frequency_weights(y, num_classes)
    if kind == "effective":
        return effective_number_weights(y, num_classes, beta)
    raise ValueError(f"unknown class_weights {kind!r}; expected none, inverse or effective")
