"""Face detection on one clip: dlib HOG (default) or MMOD CNN, once per clip.

The detector runs on the onset frame; when it finds no plausible face it retries on an upsampled image
(``upsample`` up to ``max_upsample``), then on the next frames. Among the candidates of one attempt the
face is chosen by detector score after a plausibility filter (box large enough and mostly inside the
frame), never by list order or box size: dlib finds a second, false face in ``skimage``'s astronaut photo,
with a lower score.

Boxes are ``(x0, y0, x1, y1)`` float pixel coordinates with half-open extent: dlib's inclusive
``(left, top, right, bottom)`` becomes ``(left, top, right + 1, bottom + 1)``, so ``x1 - x0`` is the width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mer.pipeline.face.models import cnn_face_detector, hog_face_detector

DETECTORS: tuple[str, ...] = ("hog", "cnn")


@dataclass(frozen=True)
class DetectSettings:
    """The detector's settings; :data:`DETECT_DEFAULTS` is the one home of their defaults (the keyword defaults of
    the functions below and those of the detect stage's parameters are read from it).

    Attributes
    ----------
    detector : {"hog", "cnn"}
        dlib's HOG + linear SVM, or its MMOD CNN (hog).
    max_frames : int
        Frames tried from the start frame on (3).
    max_upsample : int
        Upsamplings (x2 each) tried on a frame before the next one (1).
    min_score : float
        Lowest detector score kept (0.0, dlib's threshold).
    min_size_frac : float
        Smallest face side kept, as a fraction of the frame's shorter side (0.08).
    """

    detector: str = "hog"
    max_frames: int = 3
    max_upsample: int = 1
    min_score: float = 0.0
    min_size_frac: float = 0.08


DETECT_DEFAULTS = DetectSettings()

Box = tuple[float, float, float, float]


class FaceNotFoundError(ValueError):
    """No plausible face was found in the frames searched."""


@dataclass(frozen=True)
class FaceDetection:
    """The face chosen for a clip.

    Attributes
    ----------
    box : (x0, y0, x1, y1) float
        Face box in frame pixels, half-open.
    score : float
        Detector score (HOG: SVM margin; CNN: confidence).
    frame_index : int
        Position in the clip of the frame the face was found on (0 = the onset).
    upsample : int
        Upsamplings (×2 each) of that frame the detector needed.
    detector : str
        ``"hog"`` or ``"cnn"``.
    """

    box: Box
    score: float
    frame_index: int
    upsample: int
    detector: str = "hog"


@dataclass(frozen=True)
class Candidate:
    """One raw detector output: ``box`` (x0, y0, x1, y1, frame pixels, half-open) and its ``score``."""

    box: Box
    score: float


def as_detector_image(frame: np.ndarray) -> np.ndarray:
    """``frame`` as the C-contiguous uint8 array dlib accepts.

    Parameters
    ----------
    frame : ndarray, H×W×3 (RGB), H×W×1 or H×W uint8
        One frame.

    Returns
    -------
    ndarray, H×W×3 or H×W uint8
        The frame (no copy when it is already contiguous; H×W×1 becomes H×W).

    Raises
    ------
    ValueError
        Naming the dtype when it is not uint8, or the shape when it is not H×W, H×W×1 or H×W×3.
    """
    img = np.asarray(frame)
    if img.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"a frame must be H×W or H×W×3, got shape {img.shape}")
    return np.ascontiguousarray(img)


def detect_candidates(
    frame: np.ndarray, detector: str = "hog", upsample: int = 0, *, threshold: float = 0.0
) -> list[Candidate]:
    """Run one detector on one frame at one upsampling level and return every candidate with its score.

    Parameters
    ----------
    frame : ndarray, H×W×3 (RGB) or H×W uint8
        The frame.
    detector : {"hog", "cnn"}
        dlib's HOG + linear SVM, or its MMOD CNN.
    upsample : int
        Times the frame is upsampled ×2 before detection (finds faces down to about 40 / 2**upsample px).
    threshold : float
        HOG only: dlib's ``adjust_threshold``, the lowest score returned (0.0, dlib's own).

    Returns
    -------
    list of Candidate
        Boxes in frame pixels (x0, y0, x1, y1, half-open) with their scores, in dlib's order.

    Raises
    ------
    ValueError
        Naming the value of an unknown ``detector``, or a frame that is not uint8 H×W or H×W×3
        (:func:`as_detector_image`).
    FaceModelMissingError
        From :func:`~mer.pipeline.face.models.cnn_face_detector` when the CNN model file is not installed.
    """
    img = as_detector_image(frame)
    if detector == "hog":
        rects, scores, _ = hog_face_detector().run(img, int(upsample), float(threshold))
        pairs = [(r, float(s)) for r, s in zip(rects, scores, strict=True)]
    elif detector == "cnn":
        pairs = [(d.rect, float(d.confidence)) for d in cnn_face_detector()(img, int(upsample))]
    else:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {DETECTORS}")
    return [
        Candidate((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), s)
        for r, s in pairs
    ]


def is_plausible(
    box: Box,
    frame_shape: Sequence[int],
    min_size_frac: float = DETECT_DEFAULTS.min_size_frac,
    min_inside: float = 0.75,
) -> bool:
    """Whether a box can be the clip's face.

    Parameters
    ----------
    box : (x0, y0, x1, y1) float
        Box in frame pixels.
    frame_shape : sequence of int
        (H, W, ...) of the frame.
    min_size_frac : float
        Smallest side as a fraction of the frame's shorter side (never under 16 px).
    min_inside : float
        Smallest fraction of the box's area inside the frame.

    Returns
    -------
    bool
        True when both hold.
    """
    h, w = int(frame_shape[0]), int(frame_shape[1])
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    if bw <= 0 or bh <= 0 or min(bw, bh) < max(16.0, min_size_frac * min(h, w)):
        return False
    iw = max(0.0, min(x1, w) - max(x0, 0.0))
    ih = max(0.0, min(y1, h) - max(y0, 0.0))
    return iw * ih >= min_inside * bw * bh


def select_face(
    candidates: Sequence[Candidate],
    frame_shape: Sequence[int],
    min_score: float = DETECT_DEFAULTS.min_score,
    min_size_frac: float = DETECT_DEFAULTS.min_size_frac,
) -> Candidate | None:
    """Pick the plausible candidate with the highest score (ties broken by box, not by list order).

    Parameters
    ----------
    candidates : sequence of Candidate
        Detector outputs of one frame.
    frame_shape : sequence of int
        (H, W, ...) of that frame.
    min_score : float
        Lowest score kept.
    min_size_frac : float
        Smallest side kept, as a fraction of the frame's shorter side (see :func:`is_plausible`).

    Returns
    -------
    Candidate or None
        The chosen face, or None when no candidate passes.
    """
    ok = [
        c
        for c in candidates
        if c.score >= min_score and is_plausible(c.box, frame_shape, min_size_frac=min_size_frac)
    ]
    if not ok:
        return None
    return max(ok, key=lambda c: (c.score, tuple(-v for v in c.box)))


def detect_face(
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    detector: str = DETECT_DEFAULTS.detector,
    start: int = 0,
    max_frames: int = DETECT_DEFAULTS.max_frames,
    max_upsample: int = DETECT_DEFAULTS.max_upsample,
    min_score: float = DETECT_DEFAULTS.min_score,
    min_size_frac: float = DETECT_DEFAULTS.min_size_frac,
) -> FaceDetection:
    """Detect the clip's face on frame ``start`` (the onset), retrying upsampled, then on later frames.

    Tries frames ``start .. start+max_frames-1`` and, on each, upsampling ``0 .. max_upsample``; returns
    the first plausible best-scoring face.

    Parameters
    ----------
    frames : ndarray, T×H×W×3 (RGB) or T×H×W uint8, or a sequence of frames
        The clip.
    detector : {"hog", "cnn"}
        dlib detector.
    start : int
        Position of the first frame tried (0 = the clip's first frame).
    max_frames : int
        Frames tried, from ``start`` on.
    max_upsample : int
        Highest upsampling (×2 each) tried on a frame.
    min_score : float
        Lowest detector score kept.
    min_size_frac : float
        Smallest face side kept, as a fraction of the frame's shorter side.

    Returns
    -------
    FaceDetection
        Box in frame pixels, score, frame position and upsampling used.

    Raises
    ------
    ValueError
        Naming the value of an unknown ``detector`` or a ``start`` outside the clip (and, from
        :func:`as_detector_image`, a frame that is not uint8 H×W or H×W×3).
    FaceNotFoundError
        Naming the frames searched, when none holds a plausible face.
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {DETECTORS}")
    n = len(frames)
    if not 0 <= start < n:
        raise ValueError(f"detection start frame {start} is outside the clip of {n} frames")
    stop = min(n, start + max(1, int(max_frames)))
    for t in range(start, stop):
        frame = frames[t]
        for up in range(max(0, int(max_upsample)) + 1):
            best = select_face(detect_candidates(frame, detector, up), frame.shape, min_score, min_size_frac)
            if best is not None:
                return FaceDetection(best.box, best.score, t, up, detector)
    raise FaceNotFoundError(
        f"no face found by the {detector} detector in frame {start}"
        + (f" nor in frames {start + 1}..{stop - 1}" if stop - start > 1 else "")
        + f" (upsampling 0..{max_upsample}, min_score={min_score})"
    )
