"""dlib model files from the ``face_recognition_models`` package, loaded once per process.

The package ships the 68-point and 5-point shape predictors and the MMOD CNN face detector. Importing
the package itself fails on recent setuptools (it needs the removed ``pkg_resources``), so its folder is
found with ``importlib.util.find_spec`` without importing it. Each model is loaded on first use and kept
in a per-process cache (one copy per worker process; never pickled per task).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

MODELS_PACKAGE = "face_recognition_models"
"""The pip package that ships the dlib model files."""

MODEL_FILES: dict[str, str] = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "mmod": "mmod_human_face_detector.dat",
}
"""Model name -> file name inside ``face_recognition_models/models/``."""


class FaceModelMissingError(FileNotFoundError):
    """A dlib model file (or the package that ships it) is not installed."""


def _install_hint() -> str:
    return f"install it with `pip install {MODELS_PACKAGE}`"


def model_dir() -> Path:
    """The folder of the dlib model files, found without importing the package.

    Returns
    -------
    Path
        ``<face_recognition_models package folder>/models``.

    Raises
    ------
    FaceModelMissingError
        With an install hint, when the ``face_recognition_models`` package is not installed.
    """
    try:
        spec = importlib.util.find_spec(MODELS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelMissingError(
            f"the Python package '{MODELS_PACKAGE}' (dlib face models) is not installed: {_install_hint()}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    """The path of a dlib model file, checking that the file exists.

    Parameters
    ----------
    name : str
        A key of :data:`MODEL_FILES` (``"landmarks68"`` or ``"mmod"``).

    Returns
    -------
    Path
        The model file inside :func:`model_dir`.

    Raises
    ------
    ValueError
        Naming the value and the known models, for an unknown ``name``.
    FaceModelMissingError
        With an install hint, when the package or the model file is not installed.
    """
    if name not in MODEL_FILES:
        raise ValueError(f"unknown face model {name!r}; known models: {sorted(MODEL_FILES)}")
    path = model_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise FaceModelMissingError(
            f"dlib model file {path} is missing from the '{MODELS_PACKAGE}' package: {_install_hint()}"
        )
    return path


@functools.cache
def shape_predictor_68() -> Any:
    """The dlib 68-point shape predictor (loaded once per process).

    Returns
    -------
    dlib.shape_predictor
        Maps an image and a face box to 68 landmarks (x, y) in image pixels.

    Raises
    ------
    FaceModelMissingError
        From :func:`model_path`, when the model file is not installed.
    """
    import dlib

    return dlib.shape_predictor(str(model_path("landmarks68")))


@functools.cache
def cnn_face_detector() -> Any:
    """The dlib MMOD CNN face detector (loaded once per process; slow on CPU).

    Returns
    -------
    dlib.cnn_face_detection_model_v1
        Called as ``detector(image, upsample)``; returns detections with ``rect`` and ``confidence``.

    Raises
    ------
    FaceModelMissingError
        From :func:`model_path`, when the model file is not installed.
    """
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path("mmod")))


@functools.cache
def hog_face_detector() -> Any:
    """dlib's HOG + linear SVM frontal face detector (built in, no file; cached per process).

    Returns
    -------
    dlib.fhog_object_detector
        ``detector.run(image, upsample, adjust_threshold)`` returns boxes, scores and sub-detector indices.
    """
    import dlib

    return dlib.get_frontal_face_detector()
