"""Single-image encodings of a clip, network-ready (the MESTI paper's Table 1 inputs).

Kinds: ``mesti`` (apex-centred rank pooling), ``dynamic`` (dynamic image, Bilen's ARP), ``apex`` (apex
frame), ``onset`` (first frame), ``diff`` (apex - onset, signed). Each raw encoding is a float32
``H x W x C`` image; :func:`finish` resizes it to ``size x size`` (``cv2.INTER_AREA`` when shrinking,
``INTER_LINEAR`` when enlarging; a non-square image is stretched) and then normalises it per image:

- ``minmax`` (default): ``round(255 * (x - min) / (max - min))`` over all pixels and channels jointly, as
  ``uint8`` (exactly 0..255 for a non-constant image; a constant image maps to all 0);
- ``zscore``: ``(x - mean) / std`` over all pixels and channels, ``float32`` (constant image -> all 0);
- ``none``: the resized raw values, ``float32`` (rank-pooled values scale with the clip length).

Normalising after the resize keeps the min-max range exact. Output layout: channels first,
``C x size x size`` (3 for RGB clips), C-contiguous. :func:`raw_frame` is the other kind of input: one
aligned frame resized and kept as uint8 RGB without normalisation (FaceSleuth's onset and apex).
"""

from __future__ import annotations

import cv2
import numpy as np

from mer.pipeline.temporal.apex import check_apex
from mer.pipeline.temporal.arp import arp_weights
from mer.pipeline.temporal.rank_pool import rank_pool

KINDS: tuple[str, ...] = ("mesti", "dynamic", "apex", "onset", "diff")
NORMS: tuple[str, ...] = ("minmax", "zscore", "none")
_KIND_SCHEMES = {"mesti": ("mesti", "mesti-distance"), "dynamic": ("di", "di-linear")}


def _clip(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise ValueError(f"a clip must be T x H x W x C with T >= 1, got shape {frames.shape}")
    return frames


def mesti_image(frames: np.ndarray, apex: int, scheme: str = "mesti") -> np.ndarray:
    """MESTI: rank pooling with apex-centred weights (``mesti`` or ``mesti-distance``), float32 HxWxC."""
    frames = _clip(frames)
    if scheme not in _KIND_SCHEMES["mesti"]:
        raise ValueError(f"MESTI scheme must be one of {_KIND_SCHEMES['mesti']}, got {scheme!r}")
    return rank_pool(frames, arp_weights(frames.shape[0], apex, scheme))


def dynamic_image(frames: np.ndarray, scheme: str = "di") -> np.ndarray:
    """Dynamic image: rank pooling with later-ranks-higher weights (``di`` or ``di-linear``), float32."""
    frames = _clip(frames)
    if scheme not in _KIND_SCHEMES["dynamic"]:
        raise ValueError(f"dynamic-image scheme must be one of {_KIND_SCHEMES['dynamic']}, got {scheme!r}")
    return rank_pool(frames, arp_weights(frames.shape[0], None, scheme))


def apex_image(frames: np.ndarray, apex: int) -> np.ndarray:
    """The apex frame as float32 HxWxC."""
    frames = _clip(frames)
    return frames[check_apex(apex, frames.shape[0])].astype(np.float32)


def onset_image(frames: np.ndarray) -> np.ndarray:
    """The onset (first) frame as float32 HxWxC."""
    return _clip(frames)[0].astype(np.float32)


def diff_image(frames: np.ndarray, apex: int) -> np.ndarray:
    """Signed difference apex - onset as float32 HxWxC (the motion the apex frame carries)."""
    frames = _clip(frames)
    a = check_apex(apex, frames.shape[0])
    return frames[a].astype(np.float32) - frames[0].astype(np.float32)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWxC float image to ``size x size``: INTER_AREA when shrinking, INTER_LINEAR otherwise."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (size, size), interpolation=interp)
    return out.reshape(size, size, *image.shape[2:])


def minmax_uint8(image: np.ndarray) -> np.ndarray:
    """Scale to 0..255 over the whole image (all channels jointly), rounded to uint8; constant -> 0."""
    x = np.asarray(image, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.rint((x - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def zscore(image: np.ndarray) -> np.ndarray:
    """Standardise to mean 0 and standard deviation 1 over the whole image, float32; constant -> 0."""
    x = np.asarray(image, dtype=np.float64)
    sd = float(x.std())
    if not sd > 0:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - x.mean()) / sd).astype(np.float32)


def finish(image: np.ndarray, size: int = 224, norm: str = "minmax") -> np.ndarray:
    """Resize an HxWxC encoding to ``size``, normalise it (``minmax``/``zscore``/``none``), channels first."""
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; expected one of {NORMS}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    img = resize_image(np.asarray(image, dtype=np.float32), int(size))
    if img.ndim == 2:
        img = img[..., None]
    if norm == "minmax":
        img = minmax_uint8(img)
    elif norm == "zscore":
        img = zscore(img)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def raw_frame(frame: np.ndarray, size: int = 224) -> np.ndarray:
    """One aligned RGB frame ``H x W x 3`` (uint8) as the network sees it: ``3 x size x size`` uint8.

    Resized like :func:`finish` (INTER_AREA when shrinking) and rounded, with no per-image normalisation,
    so that two frames of one clip keep their common scale and ``apex - onset`` is the true change.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ValueError(f"a frame must be H x W x C, got shape {frame.shape}")
    img = resize_image(frame.astype(np.float32), int(size))
    if img.ndim == 2:
        img = img[..., None]
    return np.ascontiguousarray(np.rint(img).clip(0, 255).astype(np.uint8).transpose(2, 0, 1))


def encode_clip(
    frames: np.ndarray,
    kind: str,
    apex: int | None = None,
    scheme: str | None = None,
    size: int = 224,
    norm: str = "minmax",
) -> np.ndarray:
    """Encode a clip ``T x H x W x C`` as one network-ready ``C x size x size`` image of ``kind``.

    ``apex`` (0-based in the clip) is needed by ``mesti``, ``apex`` and ``diff``; ``scheme`` picks the
    weights of ``mesti`` (default ``mesti``) or ``dynamic`` (default ``di``). dtype: uint8 for ``minmax``,
    float32 otherwise.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown single-image kind {kind!r}; expected one of {KINDS}")
    if scheme is not None and kind not in _KIND_SCHEMES:
        raise ValueError(f"scheme={scheme!r} applies only to kinds {tuple(_KIND_SCHEMES)}, not {kind!r}")
    frames = _clip(frames)
    if kind == "mesti":
        raw = mesti_image(frames, apex, scheme or "mesti")
    elif kind == "dynamic":
        raw = dynamic_image(frames, scheme or "di")
    elif kind == "apex":
        raw = apex_image(frames, apex)
    elif kind == "onset":
        raw = onset_image(frames)
    else:
        raw = diff_image(frames, apex)
    return finish(raw, size=size, norm=norm)
