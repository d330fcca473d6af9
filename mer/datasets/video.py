"""Video adapter (`video`): clips stored as video files, one per clip, plus the `folder` adapter's sheet.

Expected layout::

    DIR/
      annotations.csv                    (or .xlsx / .xls / .tsv; or pass annotations=PATH)
      <subject>/<clip>.mp4               (.avi, .mov, .mkv; decoded with OpenCV)

Sheet columns are those of `folder` (`subject`, `clip`, `onset`, `offset`, `emotion`; `apex`, `action_units`,
`n_frames` optional), with onset/apex/offset as **frame indices into the video, the first frame being 0**.
A frame is addressed as ``<video path>#<index>`` in the clips table; its identity is the SHA-256 of the video
file's bytes and the frame index (:func:`frame_digest`), so re-encoding a video is a content change.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mer.frame_refs import VIDEO_EXTENSIONS
from mer.names import is_safe_component

from . import folder

__all__ = ["NAME", "read"]

NAME = "video"


def find_video(folder: Path, clip: str) -> Path | None:
    """``folder/<clip>.<ext>`` for the first video extension present (None when there is none)."""
    if not clip or "/" in clip or "\\" in clip or ".." in clip:
        return None
    for ext in VIDEO_EXTENSIONS:
        for candidate in (folder / f"{clip}{ext}", folder / f"{clip}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return folder / f"{clip}{VIDEO_EXTENSIONS[0]}"  # reported as missing by the manifest check


def _video_of(root: Path, subject: str, clip: str) -> Path | None:
    if not is_safe_component(subject):  # the one name rule (mer.names): never a path from unsafe text
        return None
    return find_video(root / subject, clip)


# Read a video dataset under `root` into records: the `folder` adapter with one video file per clip.
read = partial(folder.read, folder_of=_video_of)
