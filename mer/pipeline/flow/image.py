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
Resampling is :func:`mer.pipeline.image_ops.resize_square` (``INTER_AREA`` when no side grows: averages, no
aliasing; ``INTER_LINEAR`` otherwise), the rule of the single images; ``minmax`` is
:func:`mer.pipeline.image_ops.minmax_scale` per channel, computed in float64.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mer.pipeline.flow.fields import as_flow, as_flows
from mer.pipeline.flow.strain import optical_strain
from mer.pipeline.image_ops import minmax_scale, resize_square

FLOW_IMAGE_SIZES: tuple[int, ...] = (28, 112, 224)
Normalise = Literal["maxabs", "minmax", "none"]
NORMALISE_MODES: tuple[str, ...] = ("maxabs", "minmax", "none")


def _check_normalise(normalise: str) -> None:
    if normalise not in NORMALISE_MODES:
        raise ValueError(f"unknown normalise {normalise!r}; expected one of {', '.join(NORMALISE_MODES)}")


def flow_image_channels(normalise: str) -> list[str]:
    """What the three channels of a flow image are, for augmentation (see :mod:`mer.train.augment`).

    Parameters
    ----------
    normalise : {"maxabs", "minmax", "none"}
        The normalisation the images were made with.

    Returns
    -------
    list of str
        ``["u_minmax", "v_minmax", "strain"]`` for ``minmax`` (a flip maps u to ``1 - u``), else
        ``["u", "v", "strain"]`` (signed components: a flip negates u).

    Raises
    ------
    ValueError
        If ``normalise`` is unknown.
    """
    _check_normalise(normalise)
    return ["u_minmax", "v_minmax", "strain"] if normalise == "minmax" else ["u", "v", "strain"]


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Resize a flow field to ``size×size`` and rescale its vectors, so that they stay in pixels of the new grid.

    Parameters
    ----------
    flow : numpy.ndarray
        ``H×W×2`` field ``(u, v)`` in pixels of the ``H×W`` grid.
    size : int
        Side of the output in pixels, ``>= 1``.

    Returns
    -------
    numpy.ndarray
        float32 ``size×size×2``: each component resampled by :func:`mer.pipeline.image_ops.resize_square`, then
        u multiplied by ``size / W`` and v by ``size / H`` (pixels of the ``size×size`` grid).

    Raises
    ------
    ValueError
        If ``flow`` is not ``H×W×2`` or ``size < 1``.
    """
    flow = as_flow(flow)
    h, w = flow.shape[:2]
    u = resize_square(flow[..., 0], size) * np.float32(size / w)
    v = resize_square(flow[..., 1], size) * np.float32(size / h)
    return np.stack([u, v], axis=-1)


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
    """Network input of one flow field: channels (u, v, optical strain), resized and normalised.

    Strain is computed at full resolution and resampled without scaling; u and v are resized by
    :func:`resize_flow` (see the module docstring for the normalisations).

    Parameters
    ----------
    flow : numpy.ndarray
        ``H×W×2`` field ``(u, v)`` in pixels.
    size : int, default 28
        Side of the output in pixels, usually one of :data:`FLOW_IMAGE_SIZES` (28, 112, 224).
    normalise : {"maxabs", "minmax", "none"}, default "maxabs"
        ``maxabs``: u, v over the largest vector length (in [-1, 1]), strain over its maximum (in [0, 1]);
        ``minmax``: each channel to 0..1 by its own min and max; ``none``: u, v in pixels of the
        ``size×size`` grid and strain (dimensionless) unscaled.

    Returns
    -------
    numpy.ndarray
        float32 ``3×size×size``, C-contiguous, channels named by :func:`flow_image_channels`.

    Raises
    ------
    ValueError
        If ``flow`` is not ``H×W×2``, ``size < 1`` or ``normalise`` is unknown.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    _check_normalise(normalise)
    strain = resize_square(optical_strain(flow), size)
    uv = resize_flow(flow, size)
    img = np.stack([uv[..., 0], uv[..., 1], strain], axis=0)
    if normalise == "minmax":
        img = np.stack([minmax_scale(c) for c in img], axis=0)
    elif normalise == "maxabs":
        img = _maxabs(img)
    return np.ascontiguousarray(img, dtype=np.float32)


def flow_images(flows: np.ndarray, size: int = 28, normalise: Normalise = "maxabs") -> np.ndarray:
    """Flow images of a stack of fields, one :func:`flow_image` each.

    Parameters
    ----------
    flows : numpy.ndarray
        ``P×H×W×2`` fields ``(u, v)`` in pixels.
    size : int, default 28
        Side of the output in pixels.
    normalise : {"maxabs", "minmax", "none"}, default "maxabs"
        As in :func:`flow_image` (per image).

    Returns
    -------
    numpy.ndarray
        float32 ``P×3×size×size``.

    Raises
    ------
    ValueError
        If ``flows`` is not ``P×H×W×2``, ``size < 1`` or ``normalise`` is unknown.
    """
    flows = as_flows(flows)
    out = np.empty((len(flows), 3, size, size), dtype=np.float32)
    for i, f in enumerate(flows):
        out[i] = flow_image(f, size, normalise)
    return out
