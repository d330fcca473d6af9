"""Frames of video files as the clips table names them (``<video path>#<index>``), their identity and listing.

Kept apart from the `video` adapter so that the manifest, content scan and frame decoding can use it without
importing the adapters.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .frame_listing import FrameListing

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
_SEPARATOR = "#"


def is_video(path: str | Path) -> bool:
    """True for file names ending in a video extension (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def frame_ref(video: str | Path, index: int) -> str:
    """How a clips table names frame ``index`` (0-based) of a video file."""
    return f"{video}{_SEPARATOR}{index}"


def parse_frame_ref(ref: str | Path) -> tuple[str, int] | None:
    """``(video path, frame index)`` for a frame reference made by :func:`frame_ref`, None for an image path."""
    video, sep, index = str(ref).rpartition(_SEPARATOR)
    if not sep or not index.isdigit() or not is_video(video):
        return None
    return video, int(index)


def frame_digest(video_digest: bytes, index: int) -> bytes:
    """A video frame's identity: SHA-256 over the video file's SHA-256 and the frame index (8 bytes, little-endian)."""
    return hashlib.sha256(video_digest + int(index).to_bytes(8, "little")).digest()


def frame_count(path: str | Path) -> int:
    """The number of frames the container declares (0 when the file cannot be opened as a video)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()


def scan_video(path: str | Path) -> FrameListing:
    """A video file as a frame listing: frames 0..N-1 named ``<path>#<index>`` (N as the container declares it;
    decoding checks that the frames are really there)."""
    path = Path(path)
    listing = FrameListing(folder=str(path), exists=path.is_file())
    if listing.exists:
        absolute = path.absolute()
        listing.frames = {i: frame_ref(absolute, i) for i in range(frame_count(path))}
    return listing
