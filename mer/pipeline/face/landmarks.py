"""68-point landmarks on every frame of a clip, tracked from one detection (no per-frame re-detection).

dlib's shape predictor starts from a face box. The detector's box is only used on the detection frame;
there its relation to the predicted landmarks (box centre and size in units of the landmarks' centroid
and RMS radius) is recorded, and every other frame starts from the box that this relation gives for the
neighbouring frame's landmarks. The predictor thus always sees a box of the kind it saw at detection.

Per-frame quality in [0, 1] combines two measures (both are returned):

* ``box_change``: relative change of the landmark box from the previous frame
  (centre shift / box size + |log size ratio|); large on a jump or a lost face.
* ``consistency``: spread of the predictor's answers from several start boxes (RMS distance of the
  ensemble members from their mean, over the landmarks' RMS radius). On a real face the answers agree;
  on clutter or a half-visible face they scatter.

``quality = exp(-box_change / 0.1) · exp(-consistency / 0.25)`` (about 0.8–0.95 on a steady face).

dlib works on integer boxes and returns integer points. To get sub-pixel landmarks, each frame's face is
resampled (bilinear) so that its box becomes a fixed 200-pixel square, the predictor runs there from
``n_inits`` slightly shifted start boxes, and the mean answer is mapped back to frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mer.pipeline.face.detect import Box, FaceDetection, as_detector_image
from mer.pipeline.face.models import shape_predictor_68
from mer.pipeline.face.smoothing import smooth_track

N_LANDMARKS = 68
_INIT_OFFSETS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
BOX_CHANGE_SCALE = 0.1
CONSISTENCY_SCALE = 0.25


class FaceLostError(ValueError):
    """The tracked face left the frame (or collapsed) at a given frame."""


@dataclass(frozen=True)
class BoxModel:
    """Square face box relative to landmarks: centre = centroid + (cx, cy)·r, side = side·r
    (r = the landmarks' RMS radius about their centroid)."""

    cx: float
    cy: float
    side: float

    @staticmethod
    def fit(landmarks: np.ndarray, box: Box) -> BoxModel:
        """The relation that maps ``landmarks`` back to ``box`` exactly."""
        c, r = _centroid_radius(landmarks)
        x0, y0, x1, y1 = box
        side = float(np.sqrt(max((x1 - x0) * (y1 - y0), 1e-6)))
        return BoxModel(((x0 + x1) / 2 - c[0]) / r, ((y0 + y1) / 2 - c[1]) / r, side / r)

    def box(self, landmarks: np.ndarray) -> Box:
        """The face box this model gives for ``landmarks``."""
        c, r = _centroid_radius(landmarks)
        cx, cy = c[0] + self.cx * r, c[1] + self.cy * r
        half = self.side * r / 2
        return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


@dataclass(frozen=True)
class LandmarkTrack:
    """Tracking result: smoothed and raw landmarks (T×68×2 float32) and per-frame quality measures."""

    landmarks: np.ndarray
    raw: np.ndarray
    quality: np.ndarray
    box_change: np.ndarray
    consistency: np.ndarray


def _centroid_radius(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    pts = np.asarray(landmarks, dtype=np.float64)
    c = pts.mean(axis=0)
    r = float(np.sqrt(np.mean(np.sum((pts - c) ** 2, axis=1))))
    return c, max(r, 1e-6)


def face_crop_transform(box: Box, canvas: int = 200, margin: int = 70) -> np.ndarray:
    """2×3 matrix mapping frame pixels to a crop where the square ``box`` becomes
    ``[margin, margin + canvas)`` on both axes (isotropic scale, pixel centres at integer coordinates)."""
    x0, y0, x1, y1 = box
    side = float(np.sqrt(max((x1 - x0) * (y1 - y0), 1e-6)))
    s = canvas / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # box centre (pixel-centre coordinates cx - 0.5) -> crop rectangle centre (margin + canvas/2 - 0.5)
    tx = margin + canvas / 2 - 0.5 - s * (cx - 0.5)
    ty = margin + canvas / 2 - 0.5 - s * (cy - 0.5)
    return np.array([[s, 0.0, tx], [0.0, s, ty]], dtype=np.float64)


def predict_landmark_ensemble(
    frame: np.ndarray,
    box: Box,
    *,
    n_inits: int = 5,
    init_shift: float = 0.02,
    canvas: int = 200,
    predictor: object | None = None,
) -> np.ndarray:
    """Run the 68-point predictor from ``n_inits`` shifted copies of ``box``; returns K×68×2 float32 (x, y).

    The face is first resampled so that the box becomes a ``canvas``-pixel square at an integer position
    (dlib takes integer boxes and returns integer points); the inits are that square, then shifted by
    ``init_shift``·canvas right, left, down, up (and the four diagonals for n_inits up to 9). Their mean
    is a sub-pixel estimate that depends much less on the start box than one run.
    """
    import cv2
    import dlib

    if not 1 <= n_inits <= len(_INIT_OFFSETS):
        raise ValueError(f"n_inits must be 1..{len(_INIT_OFFSETS)}, got {n_inits}")
    img = as_detector_image(frame)
    sp = shape_predictor_68() if predictor is None else predictor
    margin = int(round(0.35 * canvas))
    M = face_crop_transform(box, canvas, margin)
    size = canvas + 2 * margin
    crop = cv2.warpAffine(img, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if crop.ndim == 3:  # the predictor works on intensity: convert once, not once per start box
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    step = int(round(init_shift * canvas))
    out = np.empty((n_inits, N_LANDMARKS, 2), dtype=np.float64)
    for k, (dx, dy) in enumerate(_INIT_OFFSETS[:n_inits]):
        a, b = margin + dx * step, margin + dy * step
        shape = sp(crop, dlib.rectangle(a, b, a + canvas - 1, b + canvas - 1))
        out[k] = [(p.x, p.y) for p in shape.parts()]
    s, tx, ty = M[0, 0], M[0, 2], M[1, 2]
    out[..., 0] = (out[..., 0] - tx) / s
    out[..., 1] = (out[..., 1] - ty) / s
    return out.astype(np.float32)


def predict_landmarks(
    frame: np.ndarray, box: Box, *, n_inits: int = 5, predictor: object | None = None
) -> np.ndarray:
    """68 landmarks (68×2 float32, x/y pixels) on one frame from ``box``: the mean of an init ensemble."""
    return predict_landmark_ensemble(frame, box, n_inits=n_inits, predictor=predictor).mean(axis=0)


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


def track_landmarks(
    frames: np.ndarray | Sequence[np.ndarray],
    detection: FaceDetection,
    *,
    smoothing: str = "one-euro",
    n_inits: int = 5,
    max_outside: float = 0.25,
    **smooth_params: float | int | bool,
) -> LandmarkTrack:
    """Track 68 landmarks over all frames from one detection, then smooth them over time.

    Frames after the detection frame start from the box of the previous frame's landmarks, frames
    before it (when detection had to use a later frame) from the next frame's. Each frame's raw
    landmarks are the mean of an ``n_inits`` ensemble (see predict_landmark_ensemble), whose spread is
    the consistency measure. ``smooth_params`` go to ``smooth_track``. Raises FaceLostError naming the
    frame when the face leaves the image.
    """
    n = len(frames)
    k = int(detection.frame_index)
    if not 0 <= k < n:
        raise ValueError(f"detection frame {k} is outside the clip of {n} frames")
    sp = shape_predictor_68()
    raw = np.empty((n, N_LANDMARKS, 2), dtype=np.float32)
    boxes: list[Box] = [detection.box] * n
    consistency = np.zeros(n, dtype=np.float32)
    model: BoxModel | None = None

    def step(t: int, start_box: Box) -> None:
        nonlocal model
        img = as_detector_image(frames[t])
        ens = predict_landmark_ensemble(img, start_box, n_inits=n_inits, predictor=sp)
        pts = ens.mean(axis=0)
        _check_inside(pts, img.shape, t, max_outside)
        if model is None:
            model = BoxModel.fit(pts, start_box)
        spread = np.sqrt(np.mean(np.sum((ens - pts) ** 2, axis=-1)))
        consistency[t] = spread / _centroid_radius(pts)[1]
        raw[t] = pts
        boxes[t] = model.box(pts)

    step(k, _square(detection.box))
    for t in range(k + 1, n):
        step(t, boxes[t - 1])
    for t in range(k - 1, -1, -1):
        step(t, boxes[t + 1])

    box_change = np.zeros(n, dtype=np.float32)
    for t in range(1, n):
        box_change[t] = _box_change(boxes[t - 1], boxes[t])
    if n > 1:
        box_change[0] = box_change[1]
    quality = np.exp(-box_change / BOX_CHANGE_SCALE) * np.exp(-consistency / CONSISTENCY_SCALE)
    smoothed = smooth_track(raw, smoothing, **smooth_params)
    return LandmarkTrack(smoothed, raw, quality.astype(np.float32), box_change, consistency)
