"""Decoding frame files into RGB arrays, with errors that name the file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np


class FrameError(ValueError):
    """A frame file is missing, unreadable, or does not match the clip's other frames."""


def read_frame(path: str | Path, digests: list[bytes] | None = None) -> np.ndarray:
    """Decode one image file to ``H×W×3`` uint8 RGB (grey images are stacked to three channels).

    When ``digests`` is given, the SHA-256 of the file's bytes is appended to it (the bytes are read once).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FrameError(f"frame file missing: {path}") from None
    except OSError as exc:
        raise FrameError(f"cannot read frame file {path}: {exc}") from None
    if digests is not None:
        digests.append(hashlib.sha256(data.tobytes()).digest())
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameError(f"cannot decode image {path} ({data.size} bytes): corrupt, truncated or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_clip(
    paths: Sequence[str | Path],
    digests: list[bytes] | None = None,
    allocate: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> np.ndarray:
    """Decode a clip's frames in order into ``T×H×W×3`` uint8; all frames must share one size.

    ``allocate(shape)`` may supply the output buffer (the runner reuses one per thread: touching fresh memory
    for every clip costs more than decoding it).
    """
    if not paths:
        raise FrameError("clip has no frames")
    first = read_frame(paths[0], digests)
    shape = (len(paths), *first.shape)
    clip = allocate(shape) if allocate is not None else np.empty(shape, dtype=np.uint8)
    clip[0] = first
    for i, path in enumerate(paths[1:], start=1):
        frame = read_frame(path, digests)
        if frame.shape != first.shape:
            raise FrameError(
                f"frame {path} is {frame.shape[1]}×{frame.shape[0]}, but the clip's first frame "
                f"{paths[0]} is {first.shape[1]}×{first.shape[0]}"
            )
        clip[i] = frame
    return clip
