"""Real face photos for the synthetic dataset: the images, their face box and 68 dlib landmarks.

Two public-domain portraits that ship with the installed libraries are used: ``skimage``'s astronaut
(Eileen Collins, NASA) and matplotlib's Grace Hopper sample. The face is detected once per photo and per
process (cached), with the face kernels (:mod:`mer.pipeline.face.detect`, :mod:`mer.pipeline.face.landmarks`).
dlib finds a second, false face in the astronaut photo (the mission patch on the suit, a larger box than the real
face), so the face is chosen by detector score, never by size or list order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer.pipeline.face.detect import Box, detect_candidates, select_face
from mer.pipeline.face.landmarks import predict_on_box

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


def best_face(image: np.ndarray, upsample: int = DETECT_UPSAMPLE) -> tuple[Box, float]:
    """The highest-scoring face box (x0, y0, x1, y1) in ``image`` and its score, among all of dlib's HOG
    candidates down to DETECT_THRESHOLD (the face kernels' choice: by score, never by size)."""
    candidates = detect_candidates(image, "hog", upsample, threshold=DETECT_THRESHOLD)
    best = select_face(candidates, image.shape, min_score=DETECT_THRESHOLD, min_size_frac=0.0)
    if best is None:
        raise ValueError("dlib found no face in the image")
    return best.box, best.score


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
    landmarks = predict_on_box(image, box)
    landmarks.flags.writeable = False
    return PhotoFace(name=name, image=image, box=box, score=score, landmarks=landmarks)
