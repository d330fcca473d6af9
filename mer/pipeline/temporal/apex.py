"""Choice of the apex frame of a clip: annotated, middle frame, or detected from motion.

All positions are 0-based inside the onset..offset clip (frame 0 is the onset).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

APEX_MODES: tuple[str, ...] = ("annotated", "middle", "detected")
DETECT_METHODS: tuple[str, ...] = ("local", "diff", "flow")


def check_apex(apex: int | None, n_frames: int) -> int:
    """Return ``apex`` as a Python int after checking it is a frame position ``0..n_frames-1``.

    Raises ValueError naming the value and the clip length when it is missing or out of range.
    """
    if apex is None:
        raise ValueError(f"an apex position is required (got None) for a clip of n_frames={n_frames}")
    if isinstance(apex, bool) or not float(apex).is_integer():
        raise ValueError(f"apex must be an integer frame position, got {apex!r} (n_frames={n_frames})")
    a = int(apex)
    if not 0 <= a < n_frames:
        raise ValueError(
            f"apex={a} is outside the clip: valid positions are 0..{n_frames - 1} (n_frames={n_frames})"
        )
    return a


def middle_apex(n_frames: int) -> int:
    """Middle frame ``(n - 1) // 2`` of an onset..offset clip (the MESTI paper's choice for SMIC)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    return (int(n_frames) - 1) // 2


def _grey_small(frames: np.ndarray, max_side: int) -> np.ndarray:
    """Grey float32 stack, area-downscaled so that the longer side is at most ``max_side``."""
    frames = np.asarray(frames)
    if frames.ndim == 4:
        # ITU-R 601 luma; works for uint8 or float frames, RGB order.
        grey = frames[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif frames.ndim == 3:
        grey = frames.astype(np.float32)
    else:
        raise ValueError(f"frames must be T x H x W [x C], got shape {frames.shape}")
    h, w = grey.shape[1:]
    scale = max_side / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        grey = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in grey])
    return grey


def motion_curve(frames: np.ndarray, method: str = "local", max_side: int = 96, smooth: int = 3) -> np.ndarray:
    """Per-frame motion from the onset frame (float64, length T), moving-average smoothed over ``smooth``.

    ``local`` (default): Farneback flow from the onset frame on grey frames downscaled to at most 128 px, minus its
    median vector (the head's global drift), over the inner 60 % of the crop; the mean of the top 10 % residual
    magnitudes. Facial movements are local while head drift is global, so drift does not pull the apex to the end
    (on the synthetic data, whose drift grows over the clip, ``diff`` and ``flow`` missed by 5–32 frames, ``local``
    by at most 1).
    ``diff``: mean absolute grey-level difference to the onset frame after area-downscaling to at most
    ``max_side`` pixels and a Gaussian blur (sigma 1), which averages sensor noise away.
    ``flow``: mean Farneback flow magnitude from the onset frame on the same downscaled grey frames.
    """
    if method not in DETECT_METHODS:
        raise ValueError(f"unknown apex detection method {method!r}; expected one of {DETECT_METHODS}")
    if method == "local":
        return _smooth(_local_motion(_grey_small(frames, 128)), smooth)
    grey = _grey_small(frames, max_side)
    grey = np.stack([cv2.GaussianBlur(g, (0, 0), 1.0) for g in grey])
    n = grey.shape[0]
    if method == "diff":
        curve = np.abs(grey - grey[0]).mean(axis=(1, 2), dtype=np.float64)
    else:
        g8 = np.clip(grey, 0, 255).astype(np.uint8)
        curve = np.zeros(n, dtype=np.float64)
        for t in range(1, n):
            flow = cv2.calcOpticalFlowFarneback(g8[0], g8[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)
            curve[t] = float(np.sqrt((flow**2).sum(axis=2)).mean())
    return _smooth(curve, smooth)


def _local_motion(grey: np.ndarray, inner: float = 0.6, top: float = 0.1) -> np.ndarray:
    """Top-``top`` mean of |flow − median flow| from frame 0, over the central ``inner`` part of each frame."""
    g8 = np.clip(grey, 0, 255).astype(np.uint8)
    h, w = g8.shape[1:]
    my, mx = round(h * (1 - inner) / 2), round(w * (1 - inner) / 2)
    curve = np.zeros(len(g8), dtype=np.float64)
    for t in range(1, len(g8)):
        flow = cv2.calcOpticalFlowFarneback(g8[0], g8[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)[my : h - my, mx : w - mx]
        residual = flow.reshape(-1, 2) - np.median(flow.reshape(-1, 2), axis=0)
        magnitude = np.sqrt((residual**2).sum(axis=1))
        k = max(1, int(magnitude.size * top))
        curve[t] = float(np.partition(magnitude, magnitude.size - k)[-k:].mean())
    return curve


def _smooth(curve: np.ndarray, smooth: int) -> np.ndarray:
    k = max(1, min(int(smooth), len(curve)))
    if k > 1:
        padded = np.pad(curve, (k // 2, k - 1 - k // 2), mode="edge")
        curve = np.convolve(padded, np.ones(k) / k, mode="valid")
    return curve


def detected_apex(frames: np.ndarray, method: str = "local", max_side: int = 96, smooth: int = 3) -> int:
    """Frame of largest (smoothed) motion from the onset frame; see :func:`motion_curve` for the measure.

    The default ``local`` measure ignores global head drift; ``diff`` is cheapest. Ties go to the earliest frame.
    """
    frames = np.asarray(frames)
    if frames.shape[0] < 1:
        raise ValueError("cannot detect an apex in an empty clip")
    return int(np.argmax(motion_curve(frames, method=method, max_side=max_side, smooth=smooth)))


def _is_missing(value: object) -> bool:
    """True for None, NaN and pandas' NA (how a manifest may spell a missing apex)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def resolve_apex(
    mode: str,
    n_frames: int,
    annotated: int | None = None,
    frames: np.ndarray | None = None,
    fallback: str | None = None,
) -> int:
    """Apex position (0-based in the clip) chosen by ``mode`` = ``annotated`` | ``middle`` | ``detected``.

    With ``annotated`` and a missing annotation (None/NaN/NA), ``fallback`` (``middle`` | ``detected``)
    is used, else a ValueError is raised. ``detected`` needs the clip's ``frames``.
    """
    if mode not in APEX_MODES:
        raise ValueError(f"unknown apex mode {mode!r}; expected one of {APEX_MODES}")
    if fallback is not None and fallback not in ("middle", "detected"):
        raise ValueError(f"apex fallback must be 'middle' or 'detected', got {fallback!r}")
    n = int(n_frames)
    if n < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if mode == "annotated":
        if not _is_missing(annotated):
            return check_apex(annotated, n)
        if fallback is None:
            raise ValueError(
                f"apex mode 'annotated' but this clip has no annotated apex (got {annotated!r}); "
                "pass fallback='middle' or 'detected'"
            )
        mode = fallback
    if mode == "middle":
        return middle_apex(n)
    if frames is None:
        raise ValueError("apex mode 'detected' needs the clip's frames")
    if len(frames) != n:
        raise ValueError(f"frames has {len(frames)} frames but n_frames={n}")
    return detected_apex(frames)
