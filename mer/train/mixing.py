"""MixUp and CutMix for batches of named inputs (a dict of tensors sharing the batch axis), on the device.

Each batch is paired with a random permutation of itself. MixUp (Zhang et al.) blends every input and the
one-hot targets with ``λ ~ Beta(α, α)``. CutMix (Yun et al.) pastes a region of the partner: for a
**sequence** input (B×T×…, e.g. ``roi_flow`` B×T×R×2) a contiguous block of ``round((1−λ)T)`` frames, for an
**image** input (B×C×H×W) a box of area ``(1−λ)HW``; the targets are mixed by the share actually pasted.
Other inputs of the batch (vectors such as ``au`` B×A) are blended with the same share, and a frame mask
(``<name>_mask``, B×T) follows its sequence. One of the two is chosen per batch (``cutmix_prob``); the
whole step is applied with probability ``prob``. Returns the mixed batch and soft targets B×K.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SEQUENCE_INPUTS: frozenset[str] = frozenset({"roi_flow"})
"""Inputs whose axis 1 is time (CutMix cuts frames)."""


@dataclass(frozen=True)
class MixConfig:
    """``mixup_alpha`` / ``cutmix_alpha`` (0 turns one off), ``cutmix_prob`` (share of mixed batches that use
    CutMix when both are on) and ``prob`` (share of batches mixed at all)."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    cutmix_prob: float = 0.5
    prob: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


def _beta(alpha: float, generator: torch.Generator | None, device) -> float:
    # Beta(a, a) from two Gamma draws is not seedable with a torch.Generator; use the ratio of uniforms instead:
    # X = U^(1/a), Y = V^(1/a) conditioned on X + Y <= 1 gives X / (X + Y) ~ Beta(a, a) (Jöhnk's method).
    while True:
        u, v = torch.rand(2, generator=generator, device=device).tolist()
        x, y = u ** (1.0 / alpha), v ** (1.0 / alpha)
        if 0 < x + y <= 1:
            return x / (x + y)


def _uniform(generator, device) -> float:
    return float(torch.rand((), generator=generator, device=device))


def mix_batch(
    batch: Mapping[str, torch.Tensor],
    target: torch.Tensor,
    num_classes: int,
    config: MixConfig,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Mixed copy of ``batch`` and soft targets B×K (``target``: B class indices); see the module docstring."""
    device = target.device
    soft = F.one_hot(target, num_classes).float()
    out = dict(batch)
    n = len(target)
    if n < 2 or not config.enabled or _uniform(generator, device) >= config.prob:
        return out, soft
    perm = torch.randperm(n, generator=generator, device=device)
    use_cut = config.cutmix_alpha > 0 and (config.mixup_alpha <= 0 or _uniform(generator, device) < config.cutmix_prob)
    lam = _beta(config.cutmix_alpha if use_cut else config.mixup_alpha, generator, device)
    if use_cut:
        lam = _cutmix(out, batch, perm, lam, generator, device)
    else:
        for name, x in batch.items():
            if name.endswith("_mask"):
                out[name] = x & x[perm]
            elif x.is_floating_point():
                out[name] = lam * x + (1 - lam) * x[perm]
    return out, lam * soft + (1 - lam) * soft[perm]


def _cutmix(out: dict, batch: Mapping[str, torch.Tensor], perm, lam: float, generator, device) -> float:
    """Paste partner regions into ``out`` in place; return the share ``λ`` of the original actually kept."""
    seqs = [k for k in batch if k in SEQUENCE_INPUTS]
    images = [k for k in batch if k not in SEQUENCE_INPUTS and batch[k].ndim == 4 and not k.endswith("_mask")]
    kept = lam
    if seqs:
        t = batch[seqs[0]].shape[1]
        length = int(round((1 - lam) * t))
        start = int(torch.randint(0, t - length + 1, (), generator=generator, device=device)) if length else 0
        for k in seqs:
            x = batch[k].clone()
            x[:, start : start + length] = batch[k][perm, start : start + length]
            out[k] = x
            if f"{k}_mask" in batch:
                m = batch[f"{k}_mask"].clone()
                m[:, start : start + length] = batch[f"{k}_mask"][perm, start : start + length]
                out[f"{k}_mask"] = m
        kept = 1 - length / t
    elif images:
        h, w = batch[images[0]].shape[-2:]
        ch, cw = int(round(h * (1 - lam) ** 0.5)), int(round(w * (1 - lam) ** 0.5))
        y0 = int(torch.randint(0, h - ch + 1, (), generator=generator, device=device))
        x0 = int(torch.randint(0, w - cw + 1, (), generator=generator, device=device))
        for k in images:
            x = batch[k].clone()
            x[..., y0 : y0 + ch, x0 : x0 + cw] = batch[k][perm, ..., y0 : y0 + ch, x0 : x0 + cw]
            out[k] = x
        kept = 1 - (ch * cw) / (h * w)
    for k, x in batch.items():  # vectors (e.g. AU codes) blend with the pasted share
        if k not in seqs and k not in images and not k.endswith("_mask") and x.is_floating_point():
            out[k] = kept * x + (1 - kept) * x[perm]
    return kept
