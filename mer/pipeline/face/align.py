"""Face alignment by a similarity transform from eye geometry (STAG, methods.md §4).

Two reference point pairs (dlib 68-point indices, 0-based):

* ``inner-corners`` (default, STAG): the inner eye corners 39 and 42;
* ``eye-centres``: the centroids of points 36–41 and 42–47.

The transform maps the pair onto fixed targets in the ``size``×``size`` output: the pair's midpoint on
the vertical centre line at height ``eye_y``·size, the two points level and ``eye_distance``·size apart,
so they are symmetric about the centre line. Defaults (fractions of the size):

================  =======  ==============  ===================================================
reference         eye_y    eye_distance    targets at size 256 (x, y) pixels
================  =======  ==============  ===================================================
inner-corners     0.36     0.20            (101.9, 91.7) and (153.1, 91.7)
eye-centres       0.35     0.33            (85.3, 89.1) and (169.7, 89.1)
================  =======  ==============  ===================================================

A fraction ``f`` is the pixel coordinate ``f·size − 0.5`` (pixel centres at integer coordinates, the
image spans ``[−0.5, size − 0.5]``), so 0.5 is the centre column ``(size − 1)/2``. With these values a
typical face spans roughly 0.15–0.85 of the width and its brows to chin 0.2–0.9 of the height.

``mode="onset"`` (default) computes one transform from the reference frame's landmarks and applies it to
all frames, so small movements (the micro-expression) are not warped away; ``mode="per-frame"`` uses
each frame's own landmarks and removes head drift as well. Transforms are 2×3 float32 matrices mapping
frame pixel coordinates to aligned coordinates (``cv2.warpAffine`` without WARP_INVERSE_MAP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REFERENCES: tuple[str, ...] = ("inner-corners", "eye-centres")
ALIGN_MODES: tuple[str, ...] = ("onset", "per-frame")
BORDERS: tuple[str, ...] = ("replicate", "constant", "reflect")
DEFAULT_TARGETS: dict[str, tuple[float, float]] = {
    "inner-corners": (0.36, 0.20),
    "eye-centres": (0.35, 0.33),
}
"""reference -> (eye_y, eye_distance) as fractions of the output size."""


@dataclass(frozen=True)
class AlignSettings:
    """The alignment's settings; :data:`ALIGN_DEFAULTS` is the one home of their defaults (the keyword defaults of
    the functions below and those of the align stage's parameters are read from it).

    Attributes
    ----------
    size : int
        Output side, pixels (256).
    reference : {"inner-corners", "eye-centres"}
        The reference point pair (inner-corners).
    mode : {"onset", "per-frame"}
        One transform from the reference frame for the whole clip, or one per frame (onset).
    eye_y, eye_distance : float or None
        Targets as fractions of ``size`` (None: the reference's :data:`DEFAULT_TARGETS`).
    border : {"replicate", "constant", "reflect"}
        Pixels outside the frame (replicate).
    """

    size: int = 256
    reference: str = "inner-corners"
    mode: str = "onset"
    eye_y: float | None = None
    eye_distance: float | None = None
    border: str = "replicate"


ALIGN_DEFAULTS = AlignSettings()


@dataclass(frozen=True)
class AlignedClip:
    """Result of :func:`align_clip`.

    Attributes
    ----------
    frames : ndarray, T×S×S×3 uint8
        Aligned frames, S = ``size``.
    transforms : ndarray, T×2×3 float32
        Frame pixels → aligned pixels, per frame.
    landmarks : ndarray, T×68×2 float32
        The landmarks in aligned pixels.
    """

    frames: np.ndarray
    transforms: np.ndarray
    landmarks: np.ndarray


def reference_points(landmarks: np.ndarray, reference: str = ALIGN_DEFAULTS.reference) -> np.ndarray:
    """The reference point pair of the landmarks.

    Parameters
    ----------
    landmarks : ndarray, ...×68×2
        dlib 68-point landmarks (x, y), pixels.
    reference : {"inner-corners", "eye-centres"}
        Points 39 and 42, or the centroids of 36–41 and 42–47.

    Returns
    -------
    ndarray, ...×2×2 float64
        (image-left, image-right) point, each (x, y) in the landmarks' pixels.

    Raises
    ------
    ValueError
        Naming the shape when ``landmarks`` is not ...×68×2, or the value of an unknown ``reference``.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks must be ...×68×2, got shape {pts.shape}")
    if reference == "inner-corners":
        return np.stack([pts[..., 39, :], pts[..., 42, :]], axis=-2)
    if reference == "eye-centres":
        return np.stack([pts[..., 36:42, :].mean(axis=-2), pts[..., 42:48, :].mean(axis=-2)], axis=-2)
    raise ValueError(f"unknown alignment reference {reference!r}; choose one of {REFERENCES}")


def eye_targets(
    size: int,
    reference: str = ALIGN_DEFAULTS.reference,
    eye_y: float | None = ALIGN_DEFAULTS.eye_y,
    eye_distance: float | None = ALIGN_DEFAULTS.eye_distance,
) -> np.ndarray:
    """Where the reference pair lands in the aligned image.

    Parameters
    ----------
    size : int
        Side of the square output, pixels.
    reference : {"inner-corners", "eye-centres"}
        The pair (selects the default fractions, see the module docstring).
    eye_y : float or None
        Height of the pair as a fraction of ``size`` in (0, 1); None: the reference's default.
    eye_distance : float or None
        Spacing of the pair as a fraction of ``size`` in (0, 1); None: the reference's default.

    Returns
    -------
    ndarray, 2×2 float64
        (left, right) target, each (x, y) in output pixels (pixel centres at integer coordinates).

    Raises
    ------
    ValueError
        Naming the value of an unknown ``reference``, or ``eye_y``/``eye_distance`` outside (0, 1).
    """
    if reference not in DEFAULT_TARGETS:
        raise ValueError(f"unknown alignment reference {reference!r}; choose one of {REFERENCES}")
    fy, fd = DEFAULT_TARGETS[reference]
    fy = fy if eye_y is None else float(eye_y)
    fd = fd if eye_distance is None else float(eye_distance)
    if not (0 < fd < 1 and 0 < fy < 1):
        raise ValueError(f"eye_y and eye_distance must be fractions in (0, 1), got {fy}, {fd}")
    return np.array([[(0.5 - fd / 2), fy], [(0.5 + fd / 2), fy]]) * size - 0.5


def similarity_from_pairs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity (rotation, uniform scale, translation; no reflection) mapping one point pair onto another.

    Parameters
    ----------
    src : ndarray, ...×2×2
        Source pairs, (x, y) pixels.
    dst : ndarray, 2×2
        Target pair, (x, y) pixels.

    Returns
    -------
    ndarray, ...×2×3 float64
        Matrices ``[[a, -b, tx], [b, a, ty]]`` with ``M @ (x, y, 1)`` exact on both points.

    Raises
    ------
    ValueError
        When the two source points coincide.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    zs = s[..., 0] + 1j * s[..., 1]
    zd = d[..., 0] + 1j * d[..., 1]
    span = zs[..., 1] - zs[..., 0]
    if np.any(np.abs(span) < 1e-6):
        raise ValueError("the two alignment reference points coincide; cannot compute a similarity")
    a = (zd[..., 1] - zd[..., 0]) / span
    b = zd[..., 0] - a * zs[..., 0]
    m = np.empty(span.shape + (2, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 0, 2] = a.real, -a.imag, b.real
    m[..., 1, 0], m[..., 1, 1], m[..., 1, 2] = a.imag, a.real, b.imag
    return m


def alignment_transforms(
    landmarks: np.ndarray,
    *,
    size: int = ALIGN_DEFAULTS.size,
    reference: str = ALIGN_DEFAULTS.reference,
    mode: str = ALIGN_DEFAULTS.mode,
    ref_frame: int = 0,
    eye_y: float | None = ALIGN_DEFAULTS.eye_y,
    eye_distance: float | None = ALIGN_DEFAULTS.eye_distance,
) -> np.ndarray:
    """The transforms that align each frame from the clip's landmarks.

    Parameters
    ----------
    landmarks : ndarray, T×68×2
        Landmarks (x, y) in frame pixels.
    size : int
        Side of the aligned output, pixels.
    reference : {"inner-corners", "eye-centres"}
        Reference pair (see :func:`reference_points`).
    mode : {"onset", "per-frame"}
        One transform from frame ``ref_frame`` for all frames, or each frame's own.
    ref_frame : int
        Position of the reference frame for ``mode="onset"`` (the stages pass 0: their clips start at the onset).
    eye_y : float or None
        Target height of the pair as a fraction of ``size`` (see :func:`eye_targets`); None: the default.
    eye_distance : float or None
        Target spacing of the pair as a fraction of ``size`` (see :func:`eye_targets`); None: the default.

    Returns
    -------
    ndarray, T×2×3 float32
        Frame pixels → aligned pixels.

    Raises
    ------
    ValueError
        Naming the value of an unknown ``mode`` or a ``ref_frame`` outside the clip (and, from
        :func:`eye_targets`, :func:`reference_points` and :func:`similarity_from_pairs`, a bad reference, target
        fraction or landmark shape, or coinciding reference points).
    """
    pts = np.asarray(landmarks)
    n = pts.shape[0]
    dst = eye_targets(size, reference, eye_y, eye_distance)
    if mode == "onset":
        if not 0 <= ref_frame < n:
            raise ValueError(f"alignment reference frame {ref_frame} is outside the clip of {n} frames")
        m = similarity_from_pairs(reference_points(pts[ref_frame], reference), dst)
        return np.repeat(m[None], n, axis=0).astype(np.float32)
    if mode == "per-frame":
        return similarity_from_pairs(reference_points(pts, reference), dst).astype(np.float32)
    raise ValueError(f"unknown alignment mode {mode!r}; choose one of {ALIGN_MODES}")


def transform_points(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Apply per-frame affine transforms to points.

    Parameters
    ----------
    points : ndarray, T×N×2
        Points (x, y), pixels of the source frames.
    transforms : ndarray, T×2×3
        One affine matrix per frame.

    Returns
    -------
    ndarray, T×N×2 float32
        The points in the transforms' target pixels.
    """
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(transforms, dtype=np.float64)
    return (np.einsum("tij,tnj->tni", m[..., :2], p) + m[:, None, :, 2]).astype(np.float32)


def warp_frames(
    frames: np.ndarray | Sequence[np.ndarray],
    transforms: np.ndarray,
    size: int = ALIGN_DEFAULTS.size,
    border: str = ALIGN_DEFAULTS.border,
) -> np.ndarray:
    """Warp each frame with its transform (``cv2.warpAffine``, bilinear).

    Parameters
    ----------
    frames : ndarray, T×H×W×3, T×H×W or a sequence of such frames, uint8
        The clip (grey frames are copied to 3 channels).
    transforms : ndarray, T×2×3
        Frame pixels → output pixels.
    size : int
        Side of the output, pixels.
    border : {"replicate", "constant", "reflect"}
        Pixels outside the frame.

    Returns
    -------
    ndarray, T×size×size×3 uint8
        The warped frames.

    Raises
    ------
    ValueError
        Naming the value of an unknown ``border``.
    """
    import cv2

    modes = {
        "replicate": cv2.BORDER_REPLICATE,
        "constant": cv2.BORDER_CONSTANT,
        "reflect": cv2.BORDER_REFLECT,
    }
    if border not in modes:
        raise ValueError(f"unknown border mode {border!r}; choose one of {BORDERS}")
    n = len(frames)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    m = np.asarray(transforms, dtype=np.float64)
    for t in range(n):
        f = np.asarray(frames[t])
        if f.ndim == 3 and f.shape[2] == 1:
            f = f[:, :, 0]
        w = cv2.warpAffine(f, m[t], (size, size), flags=cv2.INTER_LINEAR, borderMode=modes[border])
        out[t] = w[:, :, None] if w.ndim == 2 else w
    return out


def align_clip(
    frames: np.ndarray | Sequence[np.ndarray],
    landmarks: np.ndarray,
    *,
    size: int = ALIGN_DEFAULTS.size,
    reference: str = ALIGN_DEFAULTS.reference,
    mode: str = ALIGN_DEFAULTS.mode,
    ref_frame: int = 0,
    eye_y: float | None = ALIGN_DEFAULTS.eye_y,
    eye_distance: float | None = ALIGN_DEFAULTS.eye_distance,
    border: str = ALIGN_DEFAULTS.border,
) -> AlignedClip:
    """Align a clip from its landmarks: transforms, warped frames and landmarks in aligned coordinates.

    Parameters
    ----------
    frames : ndarray, T×H×W×3 or T×H×W uint8, or a sequence of frames
        The clip.
    landmarks : ndarray, T×68×2
        Landmarks (x, y) in frame pixels.
    size : int
        Side of the square aligned output, pixels.
    reference : {"inner-corners", "eye-centres"}
        Reference pair (see :func:`reference_points`).
    mode : {"onset", "per-frame"}
        One transform from frame ``ref_frame`` for all frames, or each frame's own (see :func:`alignment_transforms`).
    ref_frame : int
        Position of the reference frame for ``mode="onset"``.
    eye_y : float or None
        Target height of the pair as a fraction of ``size`` (see :func:`eye_targets`); None: the default.
    eye_distance : float or None
        Target spacing of the pair as a fraction of ``size`` (see :func:`eye_targets`); None: the default.
    border : {"replicate", "constant", "reflect"}
        Pixels outside the frame, as in :func:`warp_frames`.

    Returns
    -------
    AlignedClip
        Frames T×size×size×3 uint8, transforms T×2×3 float32, landmarks T×68×2 float32 in aligned pixels.

    Raises
    ------
    ValueError
        As :func:`alignment_transforms` and :func:`warp_frames` (an unknown option, a bad landmark shape).
    """
    m = alignment_transforms(
        landmarks,
        size=size,
        reference=reference,
        mode=mode,
        ref_frame=ref_frame,
        eye_y=eye_y,
        eye_distance=eye_distance,
    )
    return AlignedClip(warp_frames(frames, m, size, border), m, transform_points(landmarks, m))
