"""Flow images for networks: ``(u, v, strain)`` stacked as ``3×S×S`` float32 (S = 28, 112 or 224).

Resizing a flow field: when the image is resized by factors ``(sx, sy) = (S/W, S/H)``, a displacement of
``u`` pixels becomes ``u·sx`` pixels of the new grid (``v·sy`` likewise). :func:`resize_flow` does that, so
pixel units stay true at the new size. Strain is dimensionless (a ratio of displacements to distances), so it
is computed once at full resolution — where the finite differences are most accurate — and resampled
without scaling.

Normalisation (``normalise=``) and the channel declaration each choice gives (:func:`flow_image_channels`):
- ``"maxabs"`` (default): u and v are divided by one shared scale, the largest vector length
  ``max |(u, v)|`` of the image, and strain by its own maximum. Signed: zero stays zero, the direction of every
  vector is kept, u and v share units, values lie in [-1, 1] (strain in [0, 1]). Channels ``u, v, strain``.
  The vector length (not ``max(|u|, |v|)``) is used because it does not change when the field is rotated or
  mirrored, so an augmented image equals the image of the transformed frames (see mer.train.augment).
- ``"minmax"`` (STSTNet / Off-ApexNet practice): each channel of each image is mapped to 0..1 by its own min
  and max; a constant channel becomes all zeros. Scale-free, but absolute amplitude and the position of zero are
  lost: a mirrored u is ``1 - u`` and a rotation cannot be applied to the vectors. Channels
  ``u_minmax, v_minmax, strain``.
- ``"none"``: u, v in pixels of the ``S×S`` grid (scaled by the resize factor) and strain unscaled; use it
  when a model should see absolute amplitudes (normalise on the training set instead). Channels ``u, v, strain``.
Resampling uses ``INTER_AREA`` when shrinking (averages, no aliasing) and ``INTER_LINEAR`` when enlarging.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from mer.pipeline.flow.strain import optical_strain

FLOW_IMAGE_SIZES: tuple[int, ...] = (28, 112, 224)
Normalise = Literal["maxabs", "minmax", "none"]
NORMALISE_MODES: tuple[str, ...] = ("maxabs", "minmax", "none")


def flow_image_channels(normalise: str) -> list[str]:
    """What the three channels of a flow image are, for augmentation (see :mod:`mer.train.augment`)."""
    if normalise not in NORMALISE_MODES:
        raise ValueError(f"unknown normalise {normalise!r}; expected one of {', '.join(NORMALISE_MODES)}")
    return ["u_minmax", "v_minmax", "strain"] if normalise == "minmax" else ["u", "v", "strain"]


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


def _maxabs(img: np.ndarray) -> np.ndarray:
    """(u, v) over their largest vector length, strain over its maximum; an all-zero part stays zero."""
    out = img.astype(np.float32, copy=True)
    length = float(np.sqrt(img[0].astype(np.float64) ** 2 + img[1].astype(np.float64) ** 2).max())
    if length > 0:
        out[:2] /= np.float32(length)
    top = float(np.abs(img[2]).max())
    if top > 0:
        out[2] /= np.float32(top)
    return out


def flow_image(flow: np.ndarray, size: int = 28, normalise: Normalise = "maxabs") -> np.ndarray:
    """Network input ``3×size×size`` float32 from one ``H×W×2`` flow: channels (u, v, optical strain).

    See the module docstring for the resize and normalisation rules. ``size`` is usually 28, 112 or 224.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if normalise not in NORMALISE_MODES:
        raise ValueError(f"unknown normalise {normalise!r}; expected one of {', '.join(NORMALISE_MODES)}")
    strain = _resize(optical_strain(flow), size)
    uv = resize_flow(flow, size)
    img = np.stack([uv[..., 0], uv[..., 1], strain], axis=0)
    if normalise == "minmax":
        img = np.stack([_minmax(c) for c in img], axis=0)
    elif normalise == "maxabs":
        img = _maxabs(img)
    return np.ascontiguousarray(img, dtype=np.float32)


def flow_images(flows: np.ndarray, size: int = 28, normalise: Normalise = "maxabs") -> np.ndarray:
    """Batch version of :func:`flow_image`: ``P×H×W×2`` → ``P×3×size×size`` float32."""
    flows = np.asarray(flows)
    if flows.ndim != 4:
        raise ValueError(f"flows must be P×H×W×2, got {flows.shape}")
    out = np.empty((len(flows), 3, size, size), dtype=np.float32)
    for i, f in enumerate(flows):
        out[i] = flow_image(f, size, normalise)
    return out
