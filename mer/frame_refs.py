"""How a clips table names a frame of a video file (``<video path>#<index>``); shared by the dataset adapters and the
pipeline's frame decoding, which import each other not at all."""

from __future__ import annotations

from pathlib import Path

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
