"""Listing the frames of a video file as the clips table names them (:mod:`mer.frame_refs`)."""

from __future__ import annotations

from pathlib import Path

from mer.frame_refs import frame_ref

from .frame_listing import FrameListing


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
