"""The apex of a clip: annotated, middle frame, or detected from motion.

Positions are 0-based inside the onset..offset clip (position 0 is the onset frame); a *frame number* is the
dataset's own numbering (the manifest's ``onset``/``apex``/``offset``). The ``apex`` stage
(:mod:`mer.pipeline.temporal.stages`) is the only pipeline caller of :func:`choose_apex`; every other stage reads that
stage's stored position.

Detection uses the project's flow kernel (:func:`mer.pipeline.flow.optical_flow.compute_flow_batch`, Farneback
with :data:`DETECT_FLOW`, on :func:`~mer.pipeline.flow.optical_flow.to_grey` frames) and its one measure of local
motion, :func:`mer.pipeline.flow.roi.flow_motion` with the global (head-drift) vector removed.

Measured by ``benchmarks/bench_apex.py`` on 64 synthetic clips (aligned faces; 16 at 320×240 and the demo's 48 at
640×480): mean |error| 0.62 frames, at most 2 (before, with its own Farneback on equalised float luma and top-10 %
scoring: 0.55, at most 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mer.pipeline.flow.optical_flow import FarnebackParams, compute_flow_batch, to_grey
from mer.pipeline.flow.roi import flow_motion

APEX_MODES: tuple[str, ...] = ("annotated", "middle", "detected")
APEX_FALLBACKS: tuple[str, ...] = ("middle", "detected")
APEX_RULES: tuple[str, ...] = APEX_MODES
"""The rule that gave a stored apex, in code order: code 0 = annotated, 1 = middle, 2 = detected."""
DETECT_METHODS: tuple[str, ...] = ("local", "flow", "diff")
DETECT_SIDE = 128
"""Longest side (pixels) the frames are area-downscaled to before detection."""
DETECT_INNER = 0.6
"""Central fraction of each side kept for detection (the aligned crop's borders hold background and warp edges)."""
DETECT_FLOW = FarnebackParams(poly_sigma=1.2, gaussian=False)
"""Farneback parameters of detection: a box window (OpenCV's sample values). The Gaussian window of the flow stages'
defaults, tuned for end-point error at 256 px, found the apex worse on the area-downscaled detection frames (mean
error 2.06 frames, at most 32, on the 48 demo clips; the box window 0.62, at most 2)."""
DETECT_TOP_PERCENT = 20.0
"""Share of strongest local-motion pixels that score a frame (as STAG's ROI flow keeps; a micro-expression moves a
small part of the face)."""


def check_apex(apex: int | None, n_frames: int) -> int:
    """Check that ``apex`` is a frame position of a clip of ``n_frames`` frames.

    Parameters
    ----------
    apex : int or None
        0-based position within onset..offset.
    n_frames : int
        Number of frames of the clip, onset..offset.

    Returns
    -------
    int
        ``apex`` as a Python int.

    Raises
    ------
    ValueError
        Naming the value and the clip length when it is missing, not an integer or outside ``0..n_frames-1``.
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
    """Middle position of a clip (the MESTI paper's apex for SMIC, which has no annotation).

    Parameters
    ----------
    n_frames : int
        Number of frames, onset..offset (>= 1).

    Returns
    -------
    apex : int
        ``(n_frames - 1) // 2``, 0-based position within onset..offset.

    Raises
    ------
    ValueError
        Naming the value when ``n_frames < 1``.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    return (int(n_frames) - 1) // 2


def detection_grey(frames: np.ndarray, max_side: int = DETECT_SIDE, inner: float = DETECT_INNER) -> np.ndarray:
    """Grey frames as the detector sees them: :func:`to_grey`, area-downscaled, central part.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W, 3) or (T, H, W), uint8
        RGB (or grey) frames onset..offset.
    max_side : int
        Longest side in pixels after downscaling (frames already smaller are kept as they are).
    inner : float
        Central fraction of each side that is kept, in (0, 1].

    Returns
    -------
    ndarray, shape (T, h, w), uint8
        ``h, w`` are about ``inner`` times the downscaled size.

    Raises
    ------
    ValueError
        Naming the shape when ``frames`` is neither T×H×W×3 nor T×H×W, or has no frame.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or frames.shape[0] < 1:
        raise ValueError(f"frames must be T×H×W×3 or T×H×W with T >= 1, got shape {frames.shape}")
    grey = np.stack([to_grey(f) for f in frames])
    h, w = grey.shape[1:]
    scale = max_side / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        grey = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in grey])
    h, w = grey.shape[1:]
    my, mx = round(h * (1 - inner) / 2), round(w * (1 - inner) / 2)
    return np.ascontiguousarray(grey[:, my : h - my, mx : w - mx])


def motion_curve(frames: np.ndarray, method: str = "local", smooth: int = 3) -> np.ndarray:
    """Motion of each frame relative to the onset frame, moving-average smoothed.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W, 3) or (T, H, W), uint8
        Aligned faces onset..offset.
    method : {'local', 'flow', 'diff'}
        ``local`` (default): Farneback flow from the onset frame (the project's kernel, :data:`DETECT_FLOW`) on
        :func:`detection_grey` frames, scored by :func:`~mer.pipeline.flow.roi.flow_motion` (mean magnitude of the
        strongest :data:`DETECT_TOP_PERCENT` % pixels) with the median vector (the head's global drift) removed:
        facial movements are local, head drift is global, so drift does not pull the apex to the end of the clip.
        ``flow``: the same without removing the drift. ``diff``: mean absolute grey-level difference to the onset
        frame after a Gaussian blur (sigma 1 px), the cheapest.
    smooth : int
        Width in frames of the moving average (1 = none).

    Returns
    -------
    curve : ndarray, shape (T,), float64
        Pixels per frame of the downscaled grid for ``local``/``flow`` (0 at the onset), grey levels for ``diff``.

    Raises
    ------
    ValueError
        Naming the method when it is not one of :data:`DETECT_METHODS`, or the shape when ``frames`` is not
        T×H×W×3 or T×H×W with T >= 1.
    """
    if method not in DETECT_METHODS:
        raise ValueError(f"unknown apex detection method {method!r}; expected one of {DETECT_METHODS}")
    grey = detection_grey(frames)
    n = len(grey)
    if method == "diff":
        blurred = np.stack([cv2.GaussianBlur(g.astype(np.float32), (0, 0), 1.0) for g in grey])
        curve = np.abs(blurred - blurred[0]).mean(axis=(1, 2), dtype=np.float64)
    else:
        curve = np.zeros(n, dtype=np.float64)
        if n > 1:
            first = np.repeat(grey[:1], n - 1, axis=0)
            flows = compute_flow_batch(first, grey[1:], "farneback", DETECT_FLOW)
            curve[1:] = flow_motion(flows, remove_global=method == "local", top_percent=DETECT_TOP_PERCENT)
    return _smooth(curve, smooth)


def _smooth(curve: np.ndarray, smooth: int) -> np.ndarray:
    k = max(1, min(int(smooth), len(curve)))
    if k > 1:
        padded = np.pad(curve, (k // 2, k - 1 - k // 2), mode="edge")
        curve = np.convolve(padded, np.ones(k) / k, mode="valid")
    return curve


def detected_apex(frames: np.ndarray, method: str = "local", smooth: int = 3) -> int:
    """Position of the largest smoothed motion from the onset frame (see :func:`motion_curve`).

    Parameters
    ----------
    frames : ndarray, shape (T, H, W, 3) or (T, H, W), uint8
        Aligned faces onset..offset, T >= 1.
    method : {'local', 'flow', 'diff'}
        Motion measure, as for :func:`motion_curve`.
    smooth : int
        Width in frames of the moving average (1 = none), as for :func:`motion_curve`.

    Returns
    -------
    apex : int
        0-based position within onset..offset; ties go to the earliest frame.

    Raises
    ------
    ValueError
        From :func:`motion_curve`: an unknown ``method`` or a bad ``frames`` shape.
    """
    return int(np.argmax(motion_curve(frames, method=method, smooth=smooth)))


def is_missing(value: object) -> bool:
    """Whether ``value`` is a missing apex: None, NaN or pandas' NA/NaT (how a manifest may spell one).

    Parameters
    ----------
    value : object
        A manifest cell (int, float, str, None, ``pd.NA`` ...).

    Returns
    -------
    bool
        True for None, NaN, NA and NaT; False for anything else, including values that are not numbers.
    """
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def check_mode(mode: str, fallback: str | None) -> None:
    """Check the apex options: ``mode`` in :data:`APEX_MODES`, ``fallback`` None or in :data:`APEX_FALLBACKS`.

    Parameters
    ----------
    mode : str
        The apex mode to check.
    fallback : str or None
        The fallback rule to check (None: no fallback).

    Returns
    -------
    None
        Returns only when both are valid.

    Raises
    ------
    ValueError
        Naming the option and its value, and the valid choices, when either is not valid.
    """
    if mode not in APEX_MODES:
        raise ValueError(f"apex mode={mode!r}; choose one of {', '.join(APEX_MODES)}")
    if fallback is not None and fallback not in APEX_FALLBACKS:
        raise ValueError(f"apex fallback={fallback!r}; choose {', '.join(APEX_FALLBACKS)} or none")


def apex_rule(mode: str, annotated: int | None, fallback: str | None) -> str:
    """The rule that gives a clip's apex: ``mode``, or ``fallback`` when ``mode`` is ``annotated`` and the clip has
    no annotation (None/NaN/NA).

    Parameters
    ----------
    mode : {'annotated', 'middle', 'detected'}
        The requested rule.
    annotated : int or None
        The annotated apex, 0-based position within onset..offset (None/NaN/NA when the dataset has none).
    fallback : {'middle', 'detected'} or None
        The rule for a clip without annotation; None makes a missing annotation an error.

    Returns
    -------
    rule : str
        One of :data:`APEX_RULES`.

    Raises
    ------
    ValueError
        For an unknown mode or fallback, or a missing annotation without a fallback.
    """
    check_mode(mode, fallback)
    if mode != "annotated" or not is_missing(annotated):
        return mode
    if fallback is None:
        raise ValueError(
            f"apex mode 'annotated' but this clip has no annotated apex (got {annotated!r}); "
            "pass fallback='middle' or 'detected'"
        )
    return fallback


@dataclass(frozen=True)
class ApexChoice:
    """A clip's apex and how it was chosen.

    Attributes
    ----------
    position : int
        0-based position within onset..offset.
    rule : str
        The rule that gave it, one of :data:`APEX_RULES` (the fallback's when the annotation is missing).
    motion : ndarray, shape (T,), float64, or None
        The detector's :func:`motion_curve` (its peak is ``position``) when the rule is ``detected``.
    """

    position: int
    rule: str
    motion: np.ndarray | None = None


def choose_apex(
    mode: str,
    n_frames: int,
    annotated: int | None = None,
    frames: np.ndarray | None = None,
    fallback: str | None = None,
) -> ApexChoice:
    """The apex of a clip chosen by ``mode``, the rule that gave it and, when detected, the motion curve.

    Parameters
    ----------
    mode : {'annotated', 'middle', 'detected'}
        Which rule; ``annotated`` uses ``fallback`` when the annotation is missing (see :func:`apex_rule`).
    n_frames : int
        Number of frames onset..offset.
    annotated : int or None
        The annotated apex, 0-based position within onset..offset (None/NaN/NA when the dataset has none).
    frames : ndarray, shape (n_frames, H, W, 3), uint8, optional
        The aligned faces; needed only when the rule is ``detected``.
    fallback : {'middle', 'detected'} or None
        The rule for a clip without annotation; None makes it an error.

    Returns
    -------
    ApexChoice
        ``position`` (0-based within onset..offset), ``rule`` (one of :data:`APEX_RULES`) and, for ``detected``,
        ``motion``, the ``(n_frames,)`` float64 :func:`motion_curve`.

    Raises
    ------
    ValueError
        For an unknown mode or fallback, a missing annotation without a fallback, an annotated apex outside the
        clip, ``n_frames < 1``, or a ``detected`` rule without ``frames`` or with ``len(frames) != n_frames``.
    """
    rule = apex_rule(mode, annotated, fallback)
    n = int(n_frames)
    if n < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if rule == "annotated":
        return ApexChoice(check_apex(annotated, n), rule)
    if rule == "middle":
        return ApexChoice(middle_apex(n), rule)
    if frames is None:
        raise ValueError("apex mode 'detected' needs the clip's frames")
    if len(frames) != n:
        raise ValueError(f"frames has {len(frames)} frames but n_frames={n}")
    curve = motion_curve(frames)
    return ApexChoice(int(np.argmax(curve)), rule, curve)

