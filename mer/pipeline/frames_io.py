"""Decoding frame files into RGB arrays, with errors that name the file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from mer.content_digest import file_sha256, frame_digest
from mer.frame_refs import parse_frame_ref


class FrameError(ValueError):
    """A frame file is missing, unreadable, or does not match the clip's other frames."""


def read_frame(path: str | Path, digests: list[bytes] | None = None) -> np.ndarray:
    """Decode one image file to ``H×W×3`` uint8 RGB (grey images are stacked to three channels).

    When ``digests`` is given, the SHA-256 of the file's bytes is appended to it (the bytes are read once).
    """
    if parse_frame_ref(path) is not None:
        return read_video_frames([str(path)], digests)[0]
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
    if parse_frame_ref(paths[0]) is not None:
        return read_video_frames(paths, digests, allocate)
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


def read_video_frames(
    refs: Sequence[str | Path],
    digests: list[bytes] | None = None,
    allocate: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> np.ndarray:
    """Decode consecutive frames of one video file (``<path>#<index>`` references) into ``T×H×W×3`` uint8 RGB.

    The file is read once: hashed (each frame's digest is that of the file's bytes and its index) and decoded from
    its start (frame-accurate for every codec, unlike seeking). A file OpenCV cannot open, or one with fewer
    frames than the references need, raises :class:`FrameError` naming the file.
    """
    parsed = [parse_frame_ref(r) for r in refs]
    if any(p is None for p in parsed) or len({p[0] for p in parsed}) != 1:  # type: ignore[index]
        raise FrameError(f"clip frames {refs[0]} .. {refs[-1]} are not all frames of one video file")
    video = parsed[0][0]  # type: ignore[index]
    indices = [p[1] for p in parsed]  # type: ignore[index]
    if indices != list(range(indices[0], indices[0] + len(indices))):
        raise FrameError(f"frames of {video} are not consecutive: {indices[:3]} ...")
    try:
        video_digest = file_sha256(video)
    except FileNotFoundError:
        raise FrameError(f"video file missing: {video}") from None
    except OSError as exc:
        raise FrameError(f"cannot read video file {video}: {exc}") from None
    capture = cv2.VideoCapture(video)
    try:
        if not capture.isOpened():
            raise FrameError(f"cannot decode video {video}: not a video file OpenCV can read, or damaged")
        needed = f"the clip needs frames {indices[0]}..{indices[-1]}"
        for n in range(indices[0]):
            if not capture.grab():
                raise FrameError(f"video {video} has only {n} decodable frames; {needed}")
        clip: np.ndarray | None = None
        for j, index in enumerate(indices):
            ok, frame = capture.read()
            if not ok or frame is None:
                raise FrameError(f"video {video} has only {index} decodable frames; {needed}")
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if clip is None:
                shape = (len(indices), *rgb.shape)
                clip = allocate(shape) if allocate is not None else np.empty(shape, dtype=np.uint8)
            clip[j] = rgb
    finally:
        capture.release()
    if digests is not None:
        digests.extend(frame_digest(video_digest, i) for i in indices)
    assert clip is not None
    return clip
