"""Flow images for networks: ``(u, v, strain)`` stacked as ``3×S×S`` float32 (S = 28, 112 or 224).

Resizing a flow field: when the image is resized by factors ``(sx, sy) = (S/W, S/H)``, a displacement of
``u`` pixels becomes ``u·sx`` pixels of the new grid (``v·sy`` likewise). :func:`resize_flow` does that, so
pixel units stay true at the new size. Strain is dimensionless (a ratio of displacements to distances), so it
is computed once at full resolution — where the finite differences are most accurate — and resampled
without scaling.

Normalisation (``normalise=``):
- ``"minmax"`` (default, STSTNet / Off-ApexNet practice): each channel of each image is mapped to 0..1 by
  its own min and max; a constant channel becomes all zeros. Scale-free, so the resize factor and the
  absolute motion size do not matter, but absolute amplitude and the position of zero are lost.
- ``"none"``: u, v in pixels of the ``S×S`` grid (scaled by the resize factor) and strain unscaled; use it
  when a model should see absolute amplitudes (normalise on the training set instead).
Resampling uses ``INTER_AREA`` when shrinking (averages, no aliasing) and ``INTER_LINEAR`` when enlarging.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from mer.pipeline.flow_strain import optical_strain

FLOW_IMAGE_SIZES: tuple[int, ...] = (28, 112, 224)
Normalise = Literal["minmax", "none"]


def _resize(channel: np.ndarray, size: int) -> np.ndarray:
    h, w = channel.shape
    if (h, w) == (size, size):
        return channel.astype(np.float32, copy=True)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(channel.astype(np.float32), (size, size), interpolation=interp)


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``H×W×2`` flow to ``size×size``, scaling u by ``size/W`` and v by ``size/H`` (keeps px)."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got {flow.shape}")
    h, w = flow.shape[:2]
    u = _resize(flow[..., 0], size) * np.float32(size / w)
    v = _resize(flow[..., 1], size) * np.float32(size / h)
    return np.stack([u, v], axis=-1)


def _minmax(channel: np.ndarray) -> np.ndarray:
    lo, hi = float(channel.min()), float(channel.max())
    if not hi > lo:
        return np.zeros_like(channel, dtype=np.float32)
    return ((channel - lo) / (hi - lo)).astype(np.float32)


def flow_image(flow: np.ndarray, size: int = 28, normalise: Normalise = "minmax") -> np.ndarray:
    """Network input ``3×size×size`` float32 from one ``H×W×2`` flow: channels (u, v, optical strain).

    See the module docstring for the resize and normalisation rules. ``size`` is usually 28, 112 or 224.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if normalise not in ("minmax", "none"):
        raise ValueError(f"unknown normalise {normalise!r}; expected 'minmax' or 'none'")
    strain = _resize(optical_strain(flow), size)
    uv = resize_flow(flow, size)
    img = np.stack([uv[..., 0], uv[..., 1], strain], axis=0)
    if normalise == "minmax":
        img = np.stack([_minmax(c) for c in img], axis=0)
    return np.ascontiguousarray(img, dtype=np.float32)


def flow_images(flows: np.ndarray, size: int = 28, normalise: Normalise = "minmax") -> np.ndarray:
    """Batch version of :func:`flow_image`: ``P×H×W×2`` → ``P×3×size×size`` float32."""
    flows = np.asarray(flows)
    if flows.ndim != 4:
        raise ValueError(f"flows must be P×H×W×2, got {flows.shape}")
    out = np.empty((len(flows), 3, size, size), dtype=np.float32)
    for i, f in enumerate(flows):
        out[i] = flow_image(f, size, normalise)
    return out
