"""Frame files in a clip folder, ordered by the number in their names (never by string or glob order)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .frame_listing import FrameListing

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".bmp", ".png"})
_DIGITS = re.compile(r"\d+")
_SPLIT = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key comparing digit runs as numbers: `sub2` < `sub10`, `EP2_1` < `EP10_1`."""
    parts = _SPLIT.split(str(text))
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p.lower()) for p in parts if p != "")


def frame_number(name: str) -> int | None:
    """The frame number of an image file name: its last run of digits (`reg_img046.jpg` -> 46)."""
    runs = _DIGITS.findall(Path(name).stem)
    return int(runs[-1]) if runs else None


def is_image(name: str) -> bool:
    """True for jpg/jpeg/bmp/png names, case-insensitive."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def scan_frames(folder: str | Path) -> FrameListing:
    """List the image frames of `folder` by number; other files (e.g. `truth.npz`) are ignored. A video file
    lists its frames 0..N-1 (see :mod:`mer.datasets.video`)."""
    folder = Path(folder)
    if folder.suffix and folder.is_file():
        from mer.frame_refs import is_video

        from .video_frames import scan_video

        if is_video(folder):
            return scan_video(folder)
    listing = FrameListing(folder=str(folder), exists=folder.is_dir())
    if not listing.exists:
        return listing
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file() and is_image(e.name))
    for name in names:
        number = frame_number(name)
        path = str((folder / name).absolute())
        if number is None:
            listing.unnumbered.append(name)
        elif number in listing.frames:
            listing.duplicates.setdefault(number, [Path(listing.frames[number]).name]).append(name)
        else:
            listing.frames[number] = path
    return listing


def compress_ranges(numbers: list[int], limit: int = 8) -> str:
    """Short text for a list of frame numbers: `[3, 4, 5, 9]` -> `3-5, 9` (at most `limit` pieces)."""
    pieces: list[str] = []
    start = prev = None
    for n in sorted(numbers):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            pieces.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = n
    if start is not None:
        pieces.append(f"{start}-{prev}" if prev != start else f"{start}")
    if len(pieces) > limit:
        pieces = pieces[:limit] + [f"… ({len(numbers)} frames)"]
    return ", ".join(pieces)
