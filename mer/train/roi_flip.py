"""Horizontal flip of ROI-flow sequences (augmentation and test-time augmentation).

Mirroring a face left-right moves every ROI onto its mirror partner and negates the horizontal motion u.
The partner of each ROI is derived from the ROI-set table (``mer/pipeline/flow/roi_sets/*.toml``), never listed
by hand: ROI ``j`` is the partner of ROI ``i`` when its landmark set is the mirror image of ``i``'s (under
the dlib 68-point mirror map of the landmark scheme, :data:`DLIB68_MIRROR`) and its pad is ``i``'s pad with
left and right swapped, so that the box rule of :func:`mer.pipeline.flow.roi.roi_boxes` draws mirrored boxes.
A table with an ROI that has no such partner cannot be flipped and is rejected by name.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from mer.pipeline.flow.roi import RoiSet, load_roi_set


def _mirror_pairs() -> np.ndarray:
    """The dlib 68-point mirror map, built from the scheme's contours (each listed in image-left → right
    order, or top → bottom for the centre line): a contour mirrored is the same contour reversed."""
    m = np.arange(68)

    def reverse(seq) -> None:
        seq = list(seq)
        m[seq] = seq[::-1]

    reverse(range(0, 17))  # jaw, image left → right
    reverse(list(range(17, 22)) + list(range(22, 27)))  # brows: 17..21 | 22..26 mirror each other
    # nose bridge 27–30 lies on the centre line (maps to itself)
    reverse(range(31, 36))  # nostril base, left → right
    reverse([36, 37, 38, 39, 42, 43, 44, 45])  # eye upper lids + corners, outer-left → outer-right
    reverse([41, 40, 47, 46])  # eye lower lids, left → right
    reverse(range(48, 55))  # outer upper lip, left corner → right corner
    reverse(range(55, 60))  # outer lower lip between the corners, right → left
    m[60], m[64] = 64, 60  # inner lip corners
    reverse([61, 62, 63])  # inner upper lip
    reverse([65, 66, 67])  # inner lower lip
    return m


DLIB68_MIRROR: np.ndarray = _mirror_pairs()
"""``DLIB68_MIRROR[i]`` = index of the landmark at the mirror position of landmark ``i`` (an involution)."""
DLIB68_MIRROR.flags.writeable = False


def mirror_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks (…×68×2, x/y px) of the left-right mirrored image ``x → width − 1 − x``, re-indexed."""
    lm = np.asarray(landmarks, dtype=np.float64)
    out = lm[..., DLIB68_MIRROR, :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


@functools.cache
def _permutation_of(roi_set: RoiSet) -> tuple[int, ...]:
    keys = {}
    for j, roi in enumerate(roi_set.rois):
        keys.setdefault((frozenset(roi.landmarks), roi.pad), j)
    perm = []
    for roi in roi_set.rois:
        pl, pt, pr, pb = roi.pad
        partner = keys.get((frozenset(int(DLIB68_MIRROR[i]) for i in roi.landmarks), (pr, pt, pl, pb)))
        if partner is None:
            raise ValueError(
                f"ROI set {roi_set.name}: ROI {roi.name!r} has no mirror partner (no ROI with the mirrored "
                f"landmarks and left/right-swapped pad), so its sequences cannot be flipped"
            )
        perm.append(partner)
    return tuple(perm)


def roi_flip_permutation(roi_set: str | Path | RoiSet) -> np.ndarray:
    """``perm[i]`` = the ROI that ROI ``i`` becomes in the mirrored face (int64 R, an involution)."""
    return np.asarray(_permutation_of(load_roi_set(roi_set)), dtype=np.int64)


def flip_roi_flow(x: torch.Tensor | np.ndarray, permutation: np.ndarray | torch.Tensor):
    """Mirror ROI-flow sequences (…×R×2): ``out[..., i, :] = (−u, v)`` of ROI ``perm[i]``.

    Since ``perm`` is an involution, ``out[..., perm[i]] = flip(x[..., i])``. Works on NumPy arrays and
    torch tensors (on any device), returning the same kind.
    """
    if isinstance(x, np.ndarray):
        out = x[..., np.asarray(permutation), :].copy()
        out[..., 0] = -out[..., 0]
        return out
    perm = torch.as_tensor(np.asarray(permutation), device=x.device, dtype=torch.long)
    out = x.index_select(-2, perm)
    return out * torch.tensor([-1.0, 1.0], device=x.device, dtype=x.dtype)


def random_flip(
    x: torch.Tensor, permutation: np.ndarray | torch.Tensor, prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip each sequence of a B×T×R×2 batch with probability ``prob`` (augmentation)."""
    if prob <= 0:
        return x
    flips = torch.rand(x.shape[0], generator=generator, device=x.device) < prob
    return torch.where(flips.view(-1, *([1] * (x.ndim - 1))), flip_roi_flow(x, permutation), x)
