"""68-point landmarks on every frame of a clip, tracked from one detection (no per-frame re-detection).

dlib's shape predictor starts from a face box. The detector's box is only used on the detection frame;
there its relation to the predicted landmarks (box centre and size in units of the landmarks' centroid
and RMS radius) is recorded, and every other frame starts from the box that this relation gives for the
neighbouring frame's landmarks, turned by the face's rotation since the detection frame (the eye line's angle).
The predictor thus always sees a box of the kind it saw at detection, on a face turned as it was there.

Per-frame quality in [0, 1] combines two measures (both are returned):

* ``box_change``: relative change of the landmark box from the previous frame
  (centre shift / box size + |log size ratio|); large on a jump or a lost face.
* ``consistency``: spread of the predictor's answers from several start boxes (RMS distance of the
  ensemble members from their mean, over the landmarks' RMS radius). On a real face the answers agree;
  on clutter or a half-visible face they scatter.

``quality = exp(-box_change / 0.1) · exp(-consistency / 0.25)`` (about 0.8–0.95 on a steady face).

dlib works on integer boxes and returns integer points. To get sub-pixel landmarks, each frame's face is
resampled (bilinear, on intensity) so that its box becomes a fixed 200-pixel square, blurred against sensor
noise (σ = 7 of those pixels, offset calibrated against the sharp ensemble), the predictor runs there from
``n_inits`` start boxes (3 by default; the 5-start ensemble where the box jumps), and the mean answer is mapped
back to frame pixels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer.pipeline.face.detect import Box, FaceDetection, as_detector_image
from mer.pipeline.face.models import shape_predictor_68
from mer.pipeline.face.smoothing import SMOOTH_DEFAULTS, smooth_track

N_LANDMARKS = 68
_INIT_OFFSETS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
MAX_INITS = len(_INIT_OFFSETS)
"""Most predictor starts per frame: the box and its 8 shifted copies."""
RECHECK_INITS = 5
"""Starts of the full ensemble, run where the box jumped (``track_landmarks``'s ``recheck``)."""
BOX_CHANGE_SCALE = 0.1
CONSISTENCY_SCALE = 0.25


@dataclass(frozen=True)
class TrackSettings:
    """The tracker's settings; :data:`TRACK_DEFAULTS` is the one home of their defaults (the keyword defaults of
    :func:`track_landmarks` and those of the landmarks stage's parameters are read from it). The figures behind
    them are ``benchmarks/bench_face.py``'s.

    Attributes
    ----------
    n_inits : int
        Predictor starts per tracked frame, 1..``MAX_INITS`` (3).
    blur : float
        σ of the crop's Gaussian blur, crop pixels (1/200 of the face box); 0 = sharp, no calibration (7.0).
    recheck : float
        Relative box change (centre shift / size + |log size ratio|) above which all ``RECHECK_INITS`` starts run
        (0.05).
    max_outside : float
        Fraction of landmarks outside the frame at which the face counts as lost (0.25).
    follow_rotation : bool
        Turn each crop back by the face's rotation since the detection frame (True).
    stride : int
        Track every ``stride``-th frame (and the clip's ends), interpolate between (4).
    half_res_blur : bool
        Blur the crop at half resolution (True).
    calibration_frames : int
        Frames (spread over the tracked ones) on which the sharp ensemble calibrates the blurred starts' offset
        (1; stage 3: 2).
    runaway_scale : float or None
        Largest |log| ratio of a frame's landmark radius to the detection frame's in a blurred pass; beyond it the
        clip is tracked again with the face's size held (0.15; None: no check).
    changed_frame_limit : float
        Grey levels by which a frame between tracked ones must differ from its neighbours' blend to be tracked
        itself (6.0; 0: no check).
    """

    n_inits: int = 3
    blur: float = 7.0
    recheck: float = 0.05
    max_outside: float = 0.25
    follow_rotation: bool = True
    stride: int = 4
    half_res_blur: bool = True
    calibration_frames: int = 1
    runaway_scale: float | None = 0.15
    changed_frame_limit: float = 6.0


TRACK_DEFAULTS = TrackSettings()


class FaceLostError(ValueError):
    """The tracked face left the frame (or collapsed) at a given frame."""


@dataclass(frozen=True)
class BoxModel:
    """Square face box relative to landmarks: centre = centroid + (cx, cy)·r, side = side·r.

    Attributes
    ----------
    cx, cy : float
        Box centre offset from the landmarks' centroid, in units of r, the landmarks' RMS radius about it.
    side : float
        Box side in units of r.
    """

    cx: float
    cy: float
    side: float

    @staticmethod
    def fit(landmarks: np.ndarray, box: Box) -> BoxModel:
        """The relation that maps ``landmarks`` (68×2, pixels) back to ``box`` (x0, y0, x1, y1, pixels) exactly
        (a non-square box becomes the square of the same area)."""
        c, r = _centroid_radius(landmarks)
        x0, y0, x1, y1 = box
        side = float(np.sqrt(max((x1 - x0) * (y1 - y0), 1e-6)))
        return BoxModel(((x0 + x1) / 2 - c[0]) / r, ((y0 + y1) / 2 - c[1]) / r, side / r)

    def box(self, landmarks: np.ndarray, angle: float = 0.0, radius: float | None = None) -> Box:
        """The square face box (x0, y0, x1, y1), in pixels, this model gives for ``landmarks`` (68×2, pixels) of a
        face turned by ``angle`` radians since the fit (the centre offset turns with it); ``radius`` (pixels), when
        given, stands for the landmarks' own RMS radius (the face's size held)."""
        c, r = _centroid_radius(landmarks)
        r = r if radius is None else radius
        co, sn = math.cos(angle), math.sin(angle)
        cx, cy = c[0] + (co * self.cx - sn * self.cy) * r, c[1] + (sn * self.cx + co * self.cy) * r
        half = self.side * r / 2
        return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


@dataclass(frozen=True)
class LandmarkTrack:
    """Tracking result of :func:`track_landmarks`.

    Attributes
    ----------
    landmarks : ndarray, T×68×2 float32
        Smoothed landmarks (x, y) in frame pixels.
    raw : ndarray, T×68×2 float32
        Tracked landmarks before smoothing (interpolated between the tracked frames with a ``stride``).
    quality : ndarray, T float32
        ``exp(-box_change / 0.1) · exp(-consistency / 0.25)`` in [0, 1].
    box_change : ndarray, T float32
        Relative change of the landmark box from the previous frame (frame 0: that of frame 1; boxes interpolated
        between the tracked frames).
    consistency : ndarray, T float32
        Spread of the ensemble's answers over the landmarks' RMS radius (0 where one start ran, and on the frames
        between the tracked ones).
    starts : ndarray, T int32, or None
        Predictor runs per frame: ``n_inits`` on the tracked frames (0 between them with ``stride``), more where
        the extra starts or the calibration ran, or the clip was tracked again (both passes counted).
    calibration_gap : float
        Largest RMS distance of the blurred answers from the sharp ensemble's on a calibration frame, over the
        landmarks' RMS radius (0 without blur); of the blurred pass when the clip was tracked again.
    fell_back : bool
        The blurred track ran away (its size left ``runaway_scale`` of the detection frame's) and the clip was
        tracked again with the face's size held at the detection frame's.
    """

    landmarks: np.ndarray
    raw: np.ndarray
    quality: np.ndarray
    box_change: np.ndarray
    consistency: np.ndarray
    starts: np.ndarray | None = None
    calibration_gap: float = 0.0
    fell_back: bool = False


def _centroid_radius(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    pts = np.asarray(landmarks, dtype=np.float64)
    c = pts.mean(axis=0)
    r = float(np.sqrt(np.mean(np.sum((pts - c) ** 2, axis=1))))
    return c, max(r, 1e-6)


def face_crop_transform(box: Box, canvas: int = 200, margin: int = 70, angle: float = 0.0) -> np.ndarray:
    """The map from frame pixels to the predictor's crop of a face box.

    Parameters
    ----------
    box : (x0, y0, x1, y1) float
        Face box in frame pixels, half-open; a non-square box counts as the square of its area about its centre.
    canvas : int
        Side of the box in the crop, pixels.
    margin : int
        Crop pixels left and above the box.
    angle : float
        Rotation of the face in the frame, radians (image axes: from +x towards +y); the crop turns it back by
        ``-angle`` about the box centre. 0 gives a scale and shift only.

    Returns
    -------
    ndarray, 2×3 float64
        Similarity mapping the box onto ``[margin, margin + canvas)`` on both axes (pixel centres at integer
        coordinates), for ``cv2.warpAffine``.
    """
    x0, y0, x1, y1 = box
    side = float(np.sqrt(max((x1 - x0) * (y1 - y0), 1e-6)))
    s = canvas / side
    a, b = s * math.cos(angle), s * math.sin(angle)
    ux, uy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5  # box centre in pixel-centre coordinates
    centre = margin + canvas / 2 - 0.5  # -> the crop rectangle's centre
    return np.array([[a, b, centre - (a * ux + b * uy)], [-b, a, centre - (-b * ux + a * uy)]], dtype=np.float64)


def crop_to_frame(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Map crop pixels back to frame pixels.

    Parameters
    ----------
    points : ndarray, ...×2
        (x, y) in the crop.
    M : ndarray, 2×3
        The frame → crop similarity of :func:`face_crop_transform`.

    Returns
    -------
    ndarray, ...×2 float64
        (x, y) in frame pixels.
    """
    s = math.hypot(M[0, 0], M[0, 1])
    c, sn = M[0, 0] / s, M[0, 1] / s
    p = np.asarray(points, dtype=np.float64)
    du, dv = p[..., 0] - M[0, 2], p[..., 1] - M[1, 2]
    return np.stack([(c * du - sn * dv) / s, (sn * du + c * dv) / s], axis=-1)


def face_crop(
    frame: np.ndarray, box: Box, canvas: int = 200, blur: float = 0.0, angle: float = 0.0, half_res_blur: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """The grey face crop the predictor runs on.

    The frame is converted to intensity, then resampled (bilinear) by ``M = face_crop_transform(box, canvas,
    margin, angle)`` so that ``box`` becomes a ``canvas``-pixel square at ``(margin, margin)``, margin = 0.35·canvas,
    with the face turned back by ``angle``.

    Parameters
    ----------
    frame : ndarray, H×W×3 (RGB) or H×W uint8
        The frame.
    box : (x0, y0, x1, y1) float
        Face box in frame pixels.
    canvas : int
        Side of the box in the crop, pixels (200).
    blur : float
        σ of a Gaussian applied to the crop, in canvas pixels (scale-free: relative to the face); 0 = none.
    angle : float
        Rotation of the face in the frame, radians (see :func:`face_crop_transform`).
    half_res_blur : bool
        With ``blur``: resample the face at half the crop's resolution, blur it there by ``blur / 2`` and enlarge it
        (bilinear) to the crop: the same low-pass image (the enlargement adds σ ≈ 0.8 crop pixels) at about a
        quarter of the cost.

    Returns
    -------
    crop : ndarray, S×S uint8
        The grey crop, S = canvas + 2·margin.
    M : ndarray, 2×3 float64
        Frame pixels → crop pixels.
    margin : int
        Crop pixels before the box on each axis.
    """
    import cv2

    img = as_detector_image(frame)
    margin = int(round(0.35 * canvas))
    M = face_crop_transform(box, canvas, margin, angle)
    size = canvas + 2 * margin
    if img.ndim == 3:  # intensity first, of the source region only: one channel to resample, no full-frame pass
        h, w = img.shape[:2]
        corners = crop_to_frame(np.array([[0.0, 0.0], [size, 0.0], [0.0, size], [size, size]]), M)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        x0, x1 = int(np.clip(np.floor(lo[0]) - 2, 0, w)), int(np.clip(np.ceil(hi[0]) + 3, 0, w))
        y0, y1 = int(np.clip(np.floor(lo[1]) - 2, 0, h)), int(np.clip(np.ceil(hi[1]) + 3, 0, h))
        if x1 - x0 < 2 or y1 - y0 < 2:  # the box lies outside the frame: convert it all (replicated border)
            x0, x1, y0, y1 = 0, w, 0, h
        img = cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        from_region = M.copy()  # the same map, from the region's pixel coordinates
        from_region[0, 2] += M[0, 0] * x0 + M[0, 1] * y0
        from_region[1, 2] += M[1, 0] * x0 + M[1, 1] * y0
    else:
        from_region = M
    if blur > 0 and half_res_blur and size % 2 == 0:
        half = from_region * 0.5  # pixel centres: x_half = (x + 0.5) / 2 - 0.5
        half[:, 2] -= 0.25
        small = cv2.warpAffine(
            img, half, (size // 2, size // 2), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        kernel = _gaussian_kernel(float(blur) / 2)
        small = cv2.sepFilter2D(small, -1, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR), M, margin
    crop = cv2.warpAffine(img, from_region, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if blur > 0:
        kernel = _gaussian_kernel(float(blur))
        crop = cv2.sepFilter2D(crop, -1, kernel, kernel)  # 4× faster than GaussianBlur's bit-exact uint8 path
    return crop, M, margin


@functools.lru_cache(maxsize=8)
def _gaussian_kernel(sigma: float) -> np.ndarray:
    import cv2

    return cv2.getGaussianKernel(2 * math.ceil(3 * sigma) + 1, sigma)


def predict_landmark_ensemble(
    frame: np.ndarray,
    box: Box,
    *,
    n_inits: int = 5,
    init_shift: float = 0.02,
    canvas: int = 200,
    blur: float = 0.0,
    first_init: int = 0,
    predictor: object | None = None,
    angle: float = 0.0,
    half_res_blur: bool = False,
) -> np.ndarray:
    """Run the 68-point predictor from ``n_inits`` shifted copies of ``box``.

    The face is first resampled so that the box becomes a ``canvas``-pixel square at an integer position
    (dlib takes integer boxes and returns integer points; see :func:`face_crop`, which also applies ``blur``);
    the inits are that square, then shifted by ``init_shift``·canvas right, left, down, up (and the four
    diagonals for n_inits up to 9), starting at ``first_init`` in that order. Their mean is a sub-pixel
    estimate that depends much less on the start box than one run.

    Parameters
    ----------
    frame : ndarray, H×W×3 (RGB) or H×W uint8
        The frame.
    box : (x0, y0, x1, y1) float
        Start box in frame pixels.
    n_inits : int
        Starts, 1..``MAX_INITS - first_init``.
    init_shift : float
        Shift of the starts as a fraction of the box side.
    canvas : int
        Side of the box in the predictor's crop, pixels.
    blur : float
        σ of the crop's Gaussian blur, canvas pixels (0: sharp).
    first_init : int
        Index of the first start in the order above (to add starts to an ensemble already run).
    predictor : dlib.shape_predictor, optional
        The 68-point model (default :func:`~mer.pipeline.face.models.shape_predictor_68`).
    angle : float
        Rotation of the face in the frame, radians: the crop turns it back (see :func:`face_crop_transform`).
    half_res_blur : bool
        Blur at half the crop's resolution (see :func:`face_crop`).

    Returns
    -------
    ndarray, K×68×2 float32
        Each start's landmarks (x, y) in frame pixels, K = ``n_inits``.

    Raises
    ------
    ValueError
        Naming the value when ``n_inits`` is outside ``1..MAX_INITS - first_init``.
    FaceModelMissingError
        From :func:`~mer.pipeline.face.models.shape_predictor_68` when no ``predictor`` is given and the model
        file is not installed.
    """
    if not 1 <= n_inits <= MAX_INITS - first_init:
        raise ValueError(f"n_inits must be 1..{MAX_INITS - first_init}, got {n_inits}")
    sp = shape_predictor_68() if predictor is None else predictor
    crop, M, margin = face_crop(frame, box, canvas, blur, angle, half_res_blur)
    step = int(round(init_shift * canvas))
    out = np.empty((n_inits, N_LANDMARKS, 2), dtype=np.float64)
    for k, (dx, dy) in enumerate(_INIT_OFFSETS[first_init : first_init + n_inits]):
        a, b = margin + dx * step, margin + dy * step
        out[k] = _run_predictor(sp, crop, a, b, a + canvas, b + canvas)
    return crop_to_frame(out, M).astype(np.float32)


def _run_predictor(sp: Any, image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """dlib's 68 points (68×2 float64, integer pixels of ``image``) from the half-open integer box."""
    import dlib

    shape = sp(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def predict_landmarks(
    frame: np.ndarray, box: Box, *, n_inits: int = 5, blur: float = 0.0, predictor: object | None = None
) -> np.ndarray:
    """Sub-pixel landmarks on one frame: the mean of a start ensemble (:func:`predict_landmark_ensemble`).

    Parameters
    ----------
    frame : ndarray, H×W×3 (RGB) or H×W uint8
        The frame.
    box : (x0, y0, x1, y1) float
        Face box in frame pixels.
    n_inits : int
        Starts, 1..9 (5).
    blur : float
        σ of the crop's blur, canvas pixels (0: sharp).
    predictor : dlib.shape_predictor, optional
        The 68-point model (default: the packaged one).

    Returns
    -------
    ndarray, 68×2 float32
        Landmarks (x, y) in frame pixels.
    """
    return predict_landmark_ensemble(frame, box, n_inits=n_inits, blur=blur, predictor=predictor).mean(axis=0)


def predict_on_box(image: np.ndarray, box: Box, predictor: object | None = None) -> np.ndarray:
    """dlib's 68 landmarks on the image itself from the rounded box: one start, integer pixel positions.

    Parameters
    ----------
    image : ndarray, H×W×3 (RGB) or H×W uint8
        The image, passed to dlib as it is (colour included).
    box : (x0, y0, x1, y1) float
        Face box in pixels, half-open; each coordinate is rounded to the nearest integer.
    predictor : dlib.shape_predictor, optional
        The 68-point model (default: the packaged one).

    Returns
    -------
    ndarray, 68×2 float32
        Landmarks (x, y) in image pixels (whole numbers). For sub-pixel ones use :func:`predict_landmarks`.
    """
    sp = shape_predictor_68() if predictor is None else predictor
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return _run_predictor(sp, as_detector_image(image), x0, y0, x1, y1).astype(np.float32)


def _check_inside(landmarks: np.ndarray, shape: Sequence[int], t: int, max_outside: float) -> None:
    h, w = int(shape[0]), int(shape[1])
    x, y = landmarks[:, 0], landmarks[:, 1]
    outside = float(np.mean((x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)))
    if outside > max_outside:
        raise FaceLostError(
            f"the face left the frame at frame {t}: {outside:.0%} of its landmarks are outside "
            f"the {w}×{h} image (limit {max_outside:.0%})"
        )
    _, r = _centroid_radius(landmarks)
    if r < 4.0:
        raise FaceLostError(f"the tracked face collapsed at frame {t} (landmark radius {r:.1f} px)")


def eye_angle(landmarks: np.ndarray) -> float:
    """Angle of the line from the image-left to the image-right eye centre (points 36–41, 42–47).

    Parameters
    ----------
    landmarks : ndarray, 68×2
        dlib 68-point landmarks (x, y), pixels.

    Returns
    -------
    float
        Radians from the image's +x axis towards +y (image y points down), in [−π, π]; 0 for level eyes.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    d = pts[42:48].mean(axis=0) - pts[36:42].mean(axis=0)
    return math.atan2(d[1], d[0])


def _square(box: Box) -> Box:
    x0, y0, x1, y1 = box
    half = float(np.sqrt(max((x1 - x0) * (y1 - y0), 1e-6))) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - half, cy - half, cx + half, cy + half)


def _box_change(a: Box, b: Box) -> float:
    wa, ha = a[2] - a[0], a[3] - a[1]
    wb, hb = b[2] - b[0], b[3] - b[1]
    size = np.sqrt(max(wa * ha, 1e-6))
    shift = np.hypot((b[0] + b[2] - a[0] - a[2]) / 2, (b[1] + b[3] - a[1] - a[3]) / 2) / size
    return float(shift + abs(0.5 * np.log(max(wb * hb, 1e-6) / max(wa * ha, 1e-6))))



class _RunawayError(Exception):
    """The blurred pass's face grew or shrank by more than its ``runaway_scale`` since the detection frame."""


@dataclass
class _Pass:
    """One tracking pass: raw landmarks (T×68×2 float32, calibrated), boxes, consistency, largest calibration gap."""

    raw: np.ndarray
    boxes: list[Box]
    consistency: np.ndarray
    gap: float


THUMBNAIL_SIZE = 16
"""Side of the grey face thumbnails compared by :func:`changed_frames`, pixels."""


def face_thumbnail(frame: np.ndarray, box: Box, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """The face region of one frame as a small grey image (area-averaged), for comparing frames cheaply.

    Parameters
    ----------
    frame : ndarray, H×W×3 (RGB) or H×W uint8
        One frame.
    box : tuple of float
        ``(x0, y0, x1, y1)`` face box in frame pixels; clipped to the frame.
    size : int
        Side of the thumbnail, pixels.

    Returns
    -------
    ndarray, size×size float32
        Mean grey level (0..255) of each cell of the box; all zeros when the box holds under 2×2 pixels of the frame.
    """
    import cv2

    h, w = frame.shape[:2]
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((size, size), dtype=np.float32)
    small = cv2.resize(np.ascontiguousarray(frame[y0:y1, x0:x1]), (size, size), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    return small.mean(axis=2) if small.ndim == 3 else small


def changed_frames(
    frames: np.ndarray | Sequence[np.ndarray], boxes: Sequence[Box], tracked: np.ndarray, limit: float
) -> list[int]:
    """Frames between tracked ones that do not look like the blend of their two tracked neighbours.

    Each untracked frame ``u`` between tracked frames ``a < u < b`` is compared with
    ``(1 - w)·A + w·B``, ``w = (u - a) / (b - a)``, where A and B are the neighbours' :func:`face_thumbnail` in
    their boxes and ``u``'s thumbnail is taken in the box interpolated the same way. A frame is changed when the
    mean absolute difference exceeds ``max(limit, 2·mean|A - B|)`` grey levels: a black, spliced, shifted or
    flashed frame differs by 20–150, a steady or slowly moving face by 0.3–2 (synthetic clips), and the second term
    keeps a fast but smooth change between the neighbours from counting.

    Parameters
    ----------
    frames : ndarray, T×H×W×3 (RGB) or T×H×W uint8, or a sequence of frames
        The clip.
    boxes : sequence of tuple of float
        T face boxes ``(x0, y0, x1, y1)`` in frame pixels; those of the tracked frames are used.
    tracked : ndarray of int
        Indices of the tracked frames, ascending.
    limit : float
        Smallest difference that counts, grey levels (0..255).

    Returns
    -------
    list of int
        The changed frames, ascending.
    """
    changed = []
    for a, b in zip(tracked[:-1], tracked[1:], strict=True):
        if b - a < 2:
            continue
        thumb_a, thumb_b = face_thumbnail(frames[a], boxes[a]), face_thumbnail(frames[b], boxes[b])
        floor = max(limit, 2.0 * float(np.abs(thumb_a - thumb_b).mean()))
        for u in range(a + 1, b):
            w = (u - a) / (b - a)
            box = tuple((1 - w) * p + w * q for p, q in zip(boxes[a], boxes[b], strict=True))
            blend = (1 - w) * thumb_a + w * thumb_b
            if float(np.abs(face_thumbnail(frames[u], box) - blend).mean()) > floor:  # type: ignore[arg-type]
                changed.append(u)
    return changed


def _track_pass(
    frames: np.ndarray | Sequence[np.ndarray],
    detection: FaceDetection,
    starts: np.ndarray,
    *,
    n_inits: int,
    blur: float,
    recheck: float,
    max_outside: float,
    follow_rotation: bool,
    stride: int,
    half_res_blur: bool,
    calibration_frames: int,
    changed_frame_limit: float = 0.0,
    runaway_scale: float | None = None,
    hold_size: bool = False,
) -> _Pass:
    """Track the clip once (see :func:`track_landmarks`), adding the predictor runs of each frame to ``starts``."""
    n = len(frames)
    k = int(detection.frame_index)
    sp = shape_predictor_68()
    raw = np.zeros((n, N_LANDMARKS, 2), dtype=np.float32)
    boxes: list[Box] = [detection.box] * n
    turns = np.zeros(n)  # each frame's face rotation since the detection frame (radians), from its landmarks
    consistency = np.zeros(n, dtype=np.float32)
    start_boxes: list[Box] = [detection.box] * n
    crop_turns = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    model: BoxModel | None = None
    ref_angle = 0.0
    ref_radius = 0.0

    def run(img: np.ndarray, t: int, indices: Sequence[int], sharp: bool = False) -> np.ndarray:
        """The predictor from the starts ``indices`` of _INIT_OFFSETS on frame t's crop → K×68×2 float32."""
        crop, M, margin = face_crop(
            img, start_boxes[t], 200, 0.0 if sharp else blur, crop_turns[t], half_res_blur and not sharp
        )
        step_px = int(round(0.02 * 200))
        out = np.empty((len(indices), N_LANDMARKS, 2), dtype=np.float64)
        for j, i in enumerate(indices):
            dx, dy = _INIT_OFFSETS[i]
            a, b = margin + dx * step_px, margin + dy * step_px
            out[j] = _run_predictor(sp, crop, a, b, a + 200, b + 200)
        return crop_to_frame(out, M).astype(np.float32)  # as predict_landmark_ensemble

    def step(t: int, start_box: Box, turn: float) -> None:
        nonlocal model, ref_angle, ref_radius
        img = as_detector_image(frames[t])
        start_boxes[t], crop_turns[t] = start_box, turn
        ens = run(img, t, range(n_inits))
        pts = ens.mean(axis=0)
        own_turn = eye_angle(pts) - ref_angle if follow_rotation and model is not None else 0.0
        if (
            model is not None
            and n_inits < RECHECK_INITS
            and _box_change(start_box, model.box(pts, own_turn, ref_radius if hold_size else None)) > recheck
        ):
            ens = np.concatenate([ens, run(img, t, range(n_inits, RECHECK_INITS))])
            pts = ens.mean(axis=0)
            own_turn = eye_angle(pts) - ref_angle if follow_rotation else 0.0
        starts[t] += len(ens)
        _check_inside(pts, img.shape, t, max_outside)
        radius = _centroid_radius(pts)[1]
        if model is not None and runaway_scale is not None and abs(math.log(radius / ref_radius)) > runaway_scale:
            raise _RunawayError(t)
        if model is None:
            model = BoxModel.fit(pts, start_box)
            ref_angle, ref_radius = eye_angle(pts), radius
        spread = np.sqrt(np.mean(np.sum((ens - pts) ** 2, axis=-1)))
        consistency[t] = spread / radius
        raw[t] = pts
        turns[t] = own_turn
        boxes[t] = model.box(pts, own_turn, ref_radius if hold_size else None)
        done[t] = True

    def fill(prev: int, t: int, direction: int) -> None:
        for u in range(prev + direction, t, direction):
            step(u, boxes[u - direction], turns[u - direction])

    def follow(order: Sequence[int], direction: int) -> None:
        prev = k
        for t in order:
            try:
                step(t, boxes[prev], turns[prev])
            except FaceLostError:
                fill(prev, t, direction)  # name the first frame where the face is lost, not the next tracked one
                raise
            if abs(t - prev) > 1 and _box_change(boxes[prev], boxes[t]) > recheck:
                fill(prev, t, direction)  # a fast move: track the frames skipped too, and t again from t's neighbour
                step(t, boxes[t - direction], turns[t - direction])
            prev = t

    step(k, _square(detection.box), 0.0)
    follow(sorted({*range(k + stride, n, stride), n - 1} - {k}), 1)
    follow(sorted({*range(k - stride, -1, -stride), 0} - {k}, reverse=True), -1)
    if changed_frame_limit > 0:  # a frame between tracked ones that does not look like them is tracked itself
        for u in changed_frames(frames, boxes, np.flatnonzero(done), changed_frame_limit):
            side = int(np.flatnonzero(done[:u])[-1])  # the nearest tracked frame before it (one always is)
            step(u, boxes[side], turns[side])
    tracked = np.flatnonzero(done)

    gap = 0.0
    if blur > 0 and calibration_frames > 0:  # move the blurred answers to where the sharp ensemble puts the points
        picks = np.linspace(0, len(tracked) - 1, min(len(tracked), calibration_frames)).round().astype(int)
        offsets = []
        for t in np.unique(tracked[picks]):
            sharp = run(as_detector_image(frames[t]), t, range(RECHECK_INITS), sharp=True).mean(axis=0)
            to_crop = face_crop_transform(start_boxes[t], angle=crop_turns[t])[:, :2]
            offsets.append((sharp - raw[t]) @ to_crop.T)
            starts[t] += RECHECK_INITS
            diff = np.sqrt(np.mean(np.sum((sharp - raw[t]) ** 2, axis=-1)))
            gap = max(gap, float(diff / _centroid_radius(sharp)[1]))
        offset = np.mean(offsets, axis=0)  # crop pixels: follows the face's size and turn
        for t in tracked:
            to_frame = np.linalg.inv(face_crop_transform(start_boxes[t], angle=crop_turns[t])[:, :2])
            raw[t] += (offset @ to_frame.T).astype(np.float32)

    if len(tracked) < n:  # the frames between tracked ones: linear interpolation of landmarks and boxes
        every = np.arange(n)
        flat = raw[tracked].reshape(len(tracked), -1)
        raw[:] = np.stack([np.interp(every, tracked, col) for col in flat.T], axis=-1).reshape(n, N_LANDMARKS, 2)
        corners = np.array(boxes, dtype=np.float64)
        boxes = [
            (float(a), float(b), float(c), float(d))
            for a, b, c, d in np.stack([np.interp(every, tracked, corners[tracked, j]) for j in range(4)], axis=-1)
        ]
    return _Pass(raw, boxes, consistency, gap)


def track_landmarks(
    frames: np.ndarray | Sequence[np.ndarray],
    detection: FaceDetection,
    *,
    smoothing: str = SMOOTH_DEFAULTS.method,
    n_inits: int = TRACK_DEFAULTS.n_inits,
    blur: float = TRACK_DEFAULTS.blur,
    recheck: float = TRACK_DEFAULTS.recheck,
    max_outside: float = TRACK_DEFAULTS.max_outside,
    follow_rotation: bool = TRACK_DEFAULTS.follow_rotation,
    stride: int = TRACK_DEFAULTS.stride,
    half_res_blur: bool = TRACK_DEFAULTS.half_res_blur,
    calibration_frames: int = TRACK_DEFAULTS.calibration_frames,
    runaway_scale: float | None = TRACK_DEFAULTS.runaway_scale,
    changed_frame_limit: float = TRACK_DEFAULTS.changed_frame_limit,
    **smooth_params: float | int | bool,
) -> LandmarkTrack:
    """Track 68 landmarks over all frames from one detection, then smooth them over time.

    Frames after the detection frame start from the box of the previous frame's landmarks, frames before it (when
    detection had to use a later frame) from the next frame's; with ``follow_rotation`` the crop also turns back
    the face's rotation since the detection frame (from that neighbour's eye line), so that the predictor sees the
    face upright as on the detection frame whatever the head does. Each frame's raw landmarks are the mean of an
    ``n_inits`` ensemble (see :func:`predict_landmark_ensemble`) on the face crop blurred by ``blur``. Where the
    landmark box moved by more than ``recheck`` from the start box, the other starts of the ``RECHECK_INITS``
    ensemble run too: tracking is in doubt there (a jump, a corrupted or lost frame); the ensemble's spread is the
    consistency measure (0 where a single start ran). The blur moves some points (the predictor was trained on sharp
    faces): on ``calibration_frames`` frames spread over the clip the sharp 5-start ensemble runs too, and its mean
    difference from the blurred answers, in crop pixels (so it follows the face's size and turn), is added to every
    frame: the track keeps the sharp ensemble's positions with the blurred start's low noise.

    With ``stride`` > 1 only every ``stride``-th frame from the detection frame (and the clip's first and last) is
    tracked, each from the box of the tracked frame before it; the landmarks between are interpolated linearly
    (where the box moved by more than ``recheck`` between two tracked frames, or the face is lost, the frames between
    are tracked too, and the later tracked frame again from its neighbour). A frame between two tracked ones whose face
    region does not look like theirs (:func:`changed_frames`, more than ``changed_frame_limit`` grey levels: a black,
    spliced or flashed frame) is tracked too, so that it gets its own landmarks and quality (QC flags it as it did
    when every frame was tracked) rather than its neighbours' blend. The predictor's cost is nearly all of the
    time (about 3.5 ms a run here, whatever the image), so the stride divides it; the temporal smoother, whose cut-off
    is far below the tracked frames' Nyquist rate, sees the same signal.

    The tracking loop can run away on a face the predictor fits badly: its answer grows with the start box, the next
    box grows with the answer (synthetic subject s24's large face grew 40 % in 10 frames and left the frame while the
    true face stood still, blurred or sharp). With ``runaway_scale``, a blurred pass whose landmark radius leaves
    ``exp(±runaway_scale)`` of the detection frame's (a face lost first is lost) is redone with the box's size held
    at the detection frame's (the box still follows the face's position and turn), which breaks the loop.

    Why blurred starts in a turned crop: the predictor's answer moves with the sensor noise (its features are
    single-pixel differences) and, for one start, wanders with the face's pose (a few tenths of a pixel over a 5°
    turn: its regression trees cut the pose space into pieces); the mean of 5 sharp starts averages both at 5× the
    cost. A Gaussian of σ = 7 crop pixels removes the noise and smooths the pieces, and the turned crop keeps the
    pose the predictor sees constant; a few blurred starts on every few frames average the rest. The figures of the
    settings side by side are ``benchmarks/bench_face.py``'s;
    ``n_inits=5, blur=0, follow_rotation=False, stride=1`` is the sharp ensemble, ``n_inits=1, stride=1,
    half_res_blur=False, calibration_frames=2, runaway_scale=None`` landmarks stage 3.

    Parameters
    ----------
    frames : ndarray, T×H×W×3 (RGB) or T×H×W uint8, or a sequence of frames
        The clip.
    detection : FaceDetection
        The clip's face (box in frame pixels, frame position).
    smoothing : {"one-euro", "savgol", "none"}
        Temporal smoother (:func:`~mer.pipeline.face.smoothing.smooth_track`; its parameters in ``smooth_params``).
    n_inits : int
        Predictor starts per tracked frame, 1..9.
    blur : float
        σ of the crop's Gaussian blur, crop pixels (1/200 of the face box); 0 = sharp, no calibration.
    recheck : float
        Relative box change (centre shift / size + |log size ratio|) above which all 5 starts run.
    max_outside : float
        Fraction of landmarks outside the frame at which the face counts as lost.
    follow_rotation : bool
        Turn each crop back by the face's rotation since the detection frame.
    stride : int
        Track every ``stride``-th frame (and the clip's ends), interpolate between, ≥ 1.
    half_res_blur : bool
        Blur the crop at half resolution (see :func:`face_crop`).
    calibration_frames : int
        Tracked frames (spread over the clip) where the sharp ensemble calibrates the blurred answers; 0: none.
    runaway_scale : float or None
        Largest |log| change of the blurred landmarks' RMS radius from the detection frame's before the clip is
        tracked again with the box's size held; None: no check, no second pass.
    changed_frame_limit : float
        Grey levels (mean over a 16×16 face thumbnail) by which a frame between tracked ones must differ from the
        blend of its neighbours to be tracked itself (:func:`changed_frames`); 0: no check.
    **smooth_params
        Keyword parameters of the ``smoothing`` method, passed to
        :func:`~mer.pipeline.face.smoothing.smooth_track` (e.g. ``min_cutoff``, ``beta`` for one-euro, ``window``,
        ``polyorder`` for savgol).

    Returns
    -------
    LandmarkTrack
        Smoothed and raw landmarks T×68×2 float32 (frame pixels), quality, box change, consistency, starts.

    Raises
    ------
    ValueError
        Naming the value when the detection's frame is outside the clip (and, from
        :func:`~mer.pipeline.face.smoothing.smooth_track`, an unknown ``smoothing`` or out-of-range one-euro
        parameters).
    FaceLostError
        Naming the frame where the face leaves the image (or collapses).
    FaceModelMissingError
        From :func:`~mer.pipeline.face.models.shape_predictor_68` when the model file is not installed.
    """
    n = len(frames)
    k = int(detection.frame_index)
    if not 0 <= k < n:
        raise ValueError(f"detection frame {k} is outside the clip of {n} frames")
    if not 1 <= n_inits <= MAX_INITS:
        raise ValueError(f"n_inits must be 1..{MAX_INITS}, got {n_inits}")
    if stride < 1:
        raise ValueError(f"stride must be at least 1 frame, got {stride}")
    starts = np.zeros(n, dtype=np.int32)
    settings = {
        "n_inits": n_inits,
        "blur": blur,
        "recheck": recheck,
        "max_outside": max_outside,
        "follow_rotation": follow_rotation,
        "stride": stride,
        "half_res_blur": half_res_blur,
        "calibration_frames": calibration_frames,
        "changed_frame_limit": changed_frame_limit if stride > 1 else 0.0,
    }
    fell_back = False
    check = runaway_scale if blur > 0 else None
    try:
        tracked: _Pass | None = _track_pass(frames, detection, starts, **settings, runaway_scale=check)
    except _RunawayError:
        tracked = None
    if tracked is None:  # the blurred track ran away: again, with the box's size held
        tracked = _track_pass(frames, detection, starts, **settings, hold_size=True)
        fell_back = True
    assert tracked is not None
    boxes = tracked.boxes
    box_change = np.zeros(n, dtype=np.float32)
    for t in range(1, n):
        box_change[t] = _box_change(boxes[t - 1], boxes[t])
    if n > 1:
        box_change[0] = box_change[1]
    consistency = tracked.consistency
    quality = np.exp(-box_change / BOX_CHANGE_SCALE) * np.exp(-consistency / CONSISTENCY_SCALE)
    smoothed = smooth_track(tracked.raw, smoothing, **smooth_params)
    return LandmarkTrack(
        smoothed, tracked.raw, quality.astype(np.float32), box_change, consistency, starts, tracked.gap, fell_back
    )
