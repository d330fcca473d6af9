"""Single-image encodings of a clip, network-ready (the MESTI paper's Table 1 inputs).

Kinds: ``mesti`` (apex-centred rank pooling), ``dynamic`` (dynamic image, Bilen's ARP), ``apex`` (apex
frame), ``onset`` (first frame), ``diff`` (apex - onset, signed). Each raw encoding is a float32
``H x W x C`` image; :func:`finish` resizes it to ``size x size`` (:func:`mer.pipeline.image_ops.resize_square`:
``cv2.INTER_AREA`` when no side grows, ``INTER_LINEAR`` otherwise; a non-square image is stretched) and then
normalises it per image:

- ``minmax`` (default): ``round(255 * (x - min) / (max - min))`` over all pixels and channels jointly, as
  ``uint8`` (exactly 0..255 for a non-constant image; a constant image maps to all 0);
- ``zscore``: ``(x - mean) / std`` over all pixels and channels, ``float32`` (constant image -> all 0);
- ``none``: the resized raw values, ``float32`` (rank-pooled values scale with the clip length).

Normalising after the resize keeps the min-max range exact. Output layout: channels first,
``C x size x size`` (3 for RGB clips), C-contiguous. :func:`raw_frame` is the other kind of input: one
aligned frame resized and kept as uint8 RGB without normalisation (FaceSleuth's onset and apex).
"""

from __future__ import annotations

import numpy as np

from mer.pipeline.image_ops import minmax_uint8, resize_square
from mer.pipeline.temporal.apex import check_apex
from mer.pipeline.temporal.arp import arp_weights
from mer.pipeline.temporal.rank_pool import rank_pool

KINDS: tuple[str, ...] = ("mesti", "dynamic", "apex-frame", "onset", "diff")
NORMS: tuple[str, ...] = ("minmax", "zscore", "none")
_KIND_SCHEMES = {"mesti": ("mesti", "mesti-distance"), "dynamic": ("di", "di-linear")}
_KIND_TITLES = {"mesti": "MESTI", "dynamic": "dynamic-image"}


def _clip(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise ValueError(f"a clip must be T x H x W x C with T >= 1, got shape {frames.shape}")
    return frames


def _pooled(frames: np.ndarray, kind: str, scheme: str, apex: int | None) -> np.ndarray:
    """Rank pooling of a checked clip with the weights of ``scheme``, which must belong to ``kind``."""
    if scheme not in _KIND_SCHEMES[kind]:
        raise ValueError(f"{_KIND_TITLES[kind]} scheme must be one of {_KIND_SCHEMES[kind]}, got {scheme!r}")
    return rank_pool(frames, arp_weights(frames.shape[0], apex, scheme))


def mesti_image(frames: np.ndarray, apex: int, scheme: str = "mesti") -> np.ndarray:
    """MESTI: approximate rank pooling of a clip with apex-centred weights.

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C`` (uint8 or float, grey levels 0..255), onset first, ``T >= 1``.
    apex : int
        0-based position of the apex frame within the clip (onset = 0, offset = ``T - 1``).
    scheme : {"mesti", "mesti-distance"}, default "mesti"
        ARP weights (see :func:`mer.pipeline.temporal.arp.arp_weights`).

    Returns
    -------
    numpy.ndarray
        float32 ``H x W x C``, ``sum_t w_t * frames[t]`` in grey levels times weight (unnormalised; the values
        grow with ``T``; all zeros for a constant clip).

    Raises
    ------
    ValueError
        If ``frames`` is not a ``T x H x W x C`` clip, ``scheme`` is not a MESTI scheme or ``apex`` is not a
        position ``0 .. T-1``.
    """
    return _pooled(_clip(frames), "mesti", scheme, apex)


def dynamic_image(frames: np.ndarray, scheme: str = "di") -> np.ndarray:
    """Dynamic image: approximate rank pooling of a clip with later-ranks-higher weights (Bilen et al.).

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C`` (uint8 or float, grey levels 0..255), onset first, ``T >= 1``.
    scheme : {"di", "di-linear"}, default "di"
        ARP weights (see :func:`mer.pipeline.temporal.arp.arp_weights`).

    Returns
    -------
    numpy.ndarray
        float32 ``H x W x C``, ``sum_t w_t * frames[t]`` (unnormalised; all zeros for a constant clip).

    Raises
    ------
    ValueError
        If ``frames`` is not a ``T x H x W x C`` clip or ``scheme`` is not a dynamic-image scheme.
    """
    return _pooled(_clip(frames), "dynamic", scheme, None)


def apex_image(frames: np.ndarray, apex: int) -> np.ndarray:
    """The apex frame of a clip.

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C``, onset first, ``T >= 1``.
    apex : int
        0-based position of the apex frame within the clip (onset = 0).

    Returns
    -------
    numpy.ndarray
        float32 ``H x W x C`` copy of ``frames[apex]`` (grey levels as stored).

    Raises
    ------
    ValueError
        If ``frames`` is not a ``T x H x W x C`` clip or ``apex`` is not a position ``0 .. T-1``.
    """
    frames = _clip(frames)
    return frames[check_apex(apex, frames.shape[0])].astype(np.float32)


def onset_image(frames: np.ndarray) -> np.ndarray:
    """The onset (first) frame of a clip.

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C``, onset first, ``T >= 1``.

    Returns
    -------
    numpy.ndarray
        float32 ``H x W x C`` copy of ``frames[0]``.

    Raises
    ------
    ValueError
        If ``frames`` is not a ``T x H x W x C`` clip.
    """
    return _clip(frames)[0].astype(np.float32)


def diff_image(frames: np.ndarray, apex: int) -> np.ndarray:
    """Signed difference apex − onset: the change the apex frame carries.

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C``, onset first, ``T >= 1``.
    apex : int
        0-based position of the apex frame within the clip (onset = 0).

    Returns
    -------
    numpy.ndarray
        float32 ``H x W x C``, ``frames[apex] - frames[0]`` in grey levels (−255..255 for uint8 frames).

    Raises
    ------
    ValueError
        If ``frames`` is not a ``T x H x W x C`` clip or ``apex`` is not a position ``0 .. T-1``.
    """
    frames = _clip(frames)
    a = check_apex(apex, frames.shape[0])
    return frames[a].astype(np.float32) - frames[0].astype(np.float32)


def zscore(image: np.ndarray) -> np.ndarray:
    """Standardise an array over all its values (pixels and channels jointly).

    Parameters
    ----------
    image : numpy.ndarray
        Array of any shape and real dtype (read as float64).

    Returns
    -------
    numpy.ndarray
        float32, same shape: ``(image - mean) / std`` (population std), mean 0 and std 1; all zeros for a
        constant array.
    """
    x = np.asarray(image, dtype=np.float64)
    sd = float(x.std())
    if not sd > 0:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - x.mean()) / sd).astype(np.float32)


def _resized_hwc(image: np.ndarray, size: int) -> np.ndarray:
    """``resize_square`` of a float32 image, an ``H x W`` one given a channel axis of 1."""
    img = resize_square(np.asarray(image, dtype=np.float32), int(size))
    return img[..., None] if img.ndim == 2 else img


def finish(image: np.ndarray, size: int = 224, norm: str = "minmax") -> np.ndarray:
    """Turn a raw encoding into a network input: resize to ``size x size``, normalise, channels first.

    Parameters
    ----------
    image : numpy.ndarray
        Raw encoding ``H x W x C`` (or ``H x W``), any real dtype, e.g. from :func:`mesti_image`.
    size : int, default 224
        Side of the output in pixels (``resize_square``: area when no side grows, bilinear otherwise).
    norm : {"minmax", "zscore", "none"}, default "minmax"
        Per-image normalisation after the resize, over all pixels and channels: ``minmax`` → uint8 0..255
        (:func:`mer.pipeline.image_ops.minmax_uint8`), ``zscore`` → float32 mean 0, std 1, ``none`` → the
        resized float32 values.

    Returns
    -------
    numpy.ndarray
        ``C x size x size`` (``C = 1`` for an ``H x W`` image), C-contiguous; uint8 for ``minmax``, float32
        otherwise.

    Raises
    ------
    ValueError
        If ``norm`` is unknown or ``size < 1``.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; expected one of {NORMS}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    img = _resized_hwc(image, size)
    if norm == "minmax":
        img = minmax_uint8(img)
    elif norm == "zscore":
        img = zscore(img)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def raw_frame(frame: np.ndarray, size: int = 224) -> np.ndarray:
    """One aligned frame as the network sees it, resized like :func:`finish` but not normalised.

    Rounded to uint8 with no per-image scaling, so that two frames of one clip keep their common scale and
    ``apex - onset`` is the true change (FaceSleuth's onset and apex inputs).

    Parameters
    ----------
    frame : numpy.ndarray
        ``H x W x C`` frame (uint8 RGB, grey levels 0..255).
    size : int, default 224
        Side of the output in pixels.

    Returns
    -------
    numpy.ndarray
        uint8 ``C x size x size``, C-contiguous: the resized grey levels rounded half to even, clipped to 0..255.

    Raises
    ------
    ValueError
        If ``frame`` is not 3-D or ``size < 1``.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ValueError(f"a frame must be H x W x C, got shape {frame.shape}")
    img = _resized_hwc(frame, size)
    return np.ascontiguousarray(np.rint(img).clip(0, 255).astype(np.uint8).transpose(2, 0, 1))


def encode_clip(
    frames: np.ndarray,
    kind: str,
    apex: int | None = None,
    scheme: str | None = None,
    size: int = 224,
    norm: str = "minmax",
) -> np.ndarray:
    """Encode a clip as one network-ready image of ``kind`` (raw encoding, then :func:`finish`).

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C`` (uint8 or float, grey levels 0..255), onset first, ``T >= 1``.
    kind : {"mesti", "dynamic", "apex-frame", "onset", "diff"}
        The encoding (see the module docstring).
    apex : int, optional
        0-based position of the apex frame within the clip (onset = 0); required by ``mesti``, ``apex`` and
        ``diff``, ignored by the others.
    scheme : str, optional
        ARP weights of ``mesti`` (``mesti`` | ``mesti-distance``, default ``mesti``) or ``dynamic`` (``di`` |
        ``di-linear``, default ``di``); not accepted for the other kinds.
    size : int, default 224
        Side of the output in pixels.
    norm : {"minmax", "zscore", "none"}, default "minmax"
        Per-image normalisation (see :func:`finish`).

    Returns
    -------
    numpy.ndarray
        ``C x size x size``, C-contiguous; uint8 for ``minmax``, float32 otherwise.

    Raises
    ------
    ValueError
        If ``kind``, ``scheme`` or ``norm`` is unknown or does not fit ``kind``, ``frames`` is not a clip, or
        ``apex`` is missing or outside ``0 .. T-1`` where it is needed.
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
    elif kind == "apex-frame":
        raw = apex_image(frames, apex)
    elif kind == "onset":
        raw = onset_image(frames)
    else:
        raw = diff_image(frames, apex)
    return finish(raw, size=size, norm=norm)
