"""Test-time augmentation: average the class probabilities of a batch and of its horizontal mirror.

The mirror of a batch of named inputs flips what has a known mirror: ``roi_flow`` (B×T×R×2) by the ROI-set
permutation with u negated (:mod:`mer.train.roi_flip`); its frame mask and vectors such as ``au`` (AU codes
are bilateral) are unchanged. An input without a known mirror makes ``flip_batch`` fail by name, never pass
through unflipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from mer.train.roi_flip import flip_roi_flow

UNCHANGED_BY_FLIP: frozenset[str] = frozenset({"au", "roi_flow_mask"})


def flip_batch(
    batch: Mapping[str, torch.Tensor], roi_permutation: np.ndarray | torch.Tensor
) -> dict[str, torch.Tensor]:
    """The left-right mirror of a batch of named inputs (see the module docstring)."""
    out = {}
    for name, x in batch.items():
        if name == "roi_flow":
            out[name] = flip_roi_flow(x, roi_permutation)
        elif name in UNCHANGED_BY_FLIP:
            out[name] = x
        else:
            raise ValueError(f"test-time flip: no mirror is defined for input {name!r}")
    return out


@torch.no_grad()
def flip_tta_probs(
    model: Callable[..., torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    roi_permutation: np.ndarray | torch.Tensor,
) -> torch.Tensor:
    """Mean of ``softmax(model(**batch))`` and ``softmax(model(**mirror of batch))`` (float32 B×K)."""
    p = torch.softmax(model(**batch).float(), dim=1)
    q = torch.softmax(model(**flip_batch(batch, roi_permutation)).float(), dim=1)
    return (p + q) / 2
