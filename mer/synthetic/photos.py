"""Real face photos for the synthetic dataset: the images, their face box and 68 dlib landmarks.

Two public-domain portraits that ship with the installed libraries are used: ``skimage``'s astronaut
(Eileen Collins, NASA) and matplotlib's Grace Hopper sample. The face is detected once per photo and per
process (cached). dlib finds a second, false face in the astronaut photo (the mission patch on the suit,
a larger box than the real face), so the face is chosen by detector score, never by size or list order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer.pipeline.face.models import hog_face_detector, shape_predictor_68

Box = tuple[float, float, float, float]

PHOTOS: tuple[str, ...] = ("astronaut", "grace_hopper")
"""Names of the base photos, in the order subjects cycle through them."""

DETECT_UPSAMPLE = 1
"""dlib HOG upsampling used on the photos (the astronaut's face is only ~90 px wide)."""

DETECT_THRESHOLD = -0.5
"""dlib ``adjust_threshold``: low, so that every candidate is scored and the best one wins."""


@dataclass(frozen=True)
class PhotoFace:
    """A base photo (RGB uint8) with its chosen face box (x0, y0, x1, y1), score and 68 landmarks."""

    name: str
    image: np.ndarray
    box: Box
    score: float
    landmarks: np.ndarray


def load_photo(name: str) -> np.ndarray:
    """Return the named base photo as an RGB uint8 H×W×3 array."""
    if name == "astronaut":
        import skimage.data

        img = skimage.data.astronaut()
    elif name == "grace_hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"matplotlib's sample photo is missing: {path}")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        raise ValueError(f"unknown photo {name!r}; known photos: {list(PHOTOS)}")
    return np.ascontiguousarray(img, dtype=np.uint8)


def face_candidates(image: np.ndarray, upsample: int = DETECT_UPSAMPLE) -> list[tuple[Box, float]]:
    """All dlib HOG detections of ``image`` as ((x0, y0, x1, y1), score), scores down to DETECT_THRESHOLD."""
    rects, scores, _ = hog_face_detector().run(np.ascontiguousarray(image), upsample, DETECT_THRESHOLD)
    return [
        ((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), float(s))
        for r, s in zip(rects, scores, strict=True)
    ]


def best_face(image: np.ndarray, upsample: int = DETECT_UPSAMPLE) -> tuple[Box, float]:
    """The highest-scoring face box (x0, y0, x1, y1) in ``image`` and its score (never chosen by size)."""
    cands = face_candidates(image, upsample)
    if not cands:
        raise ValueError("dlib found no face in the image")
    box, score = max(cands, key=lambda c: c[1])
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3])), score


def predict_landmarks(image: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 landmarks (float32 68×2, x/y) of the face in ``box`` (x0, y0, x1, y1, half-open)."""
    import dlib

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = shape_predictor_68()(np.ascontiguousarray(image), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


@functools.cache
def photo_face(name: str, mirrored: bool = False) -> PhotoFace:
    """The named photo (left-right mirrored if asked) with its face box, score and landmarks (cached).

    A mirrored photo gets its own detection: dlib's predictor is not mirror-symmetric (a few px apart on
    Grace Hopper's brows and jaw), and the landmarks should be where dlib puts them on the image shown.
    """
    image = load_photo(name)
    if mirrored:
        image = np.ascontiguousarray(image[:, ::-1])
    image.flags.writeable = False
    box, score = best_face(image)
    landmarks = predict_landmarks(image, box)
    landmarks.flags.writeable = False
    return PhotoFace(name=name, image=image, box=box, score=score, landmarks=landmarks)
