"""What a stage's compute function sees for one clip: the manifest row, its frames, and upstream outputs."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from mer.config import plain_value, stable_hash
from mer.content_digest import clip_content_digest
from mer.pipeline.frames_io import read_clip

_BUFFERS = threading.local()


def reusable_frame_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array of ``shape`` backed by this thread's buffer, grown when needed and reused by the next clip."""
    size = math.prod(shape)
    buffer = getattr(_BUFFERS, "frames", None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=np.uint8)
        _BUFFERS.frames = buffer
    return buffer[:size].reshape(shape)


FINGERPRINT_FIELDS = ("clip_id", "onset", "apex", "offset", "frame_numbers", "content_sha256")


def clip_fingerprint(row: dict[str, Any]) -> str:
    """What a clip's stage values depend on in its manifest row: its id, span, annotated apex, frame numbers and
    file names, and the frames' content digest (labels and AUs are not in it: relabelling recomputes nothing)."""
    item = {f: plain_value(row.get(f)) for f in FINGERPRINT_FIELDS}
    item["frame_names"] = [os.path.basename(str(p)) for p in row.get("frame_paths", [])]
    return stable_hash(item)


class ClipContext:
    """Per-clip state for one worker pass: frames are decoded once and upstream outputs kept in memory.

    The frames live in a per-thread buffer that the next clip of the same thread overwrites: a stage must not
    return them (or a view of them) as an output without copying. ``private_frames`` gives the clip its own
    buffer instead (the contexts of a group of clips are alive together).
    """

    def __init__(
        self,
        row: dict[str, Any],
        index: int,
        read_input: Callable[[str, str | None], np.ndarray] | None = None,
        private_frames: bool = False,
    ):
        self.row = row
        self.index = index
        self._read_input = read_input
        self._frames: np.ndarray | None = None
        self._digests: list[bytes] = []
        self.computed: dict[str, dict[str, np.ndarray]] = {}
        self.frames_decoded = 0
        self._allocate = None if private_frames else reusable_frame_buffer

    @property
    def clip_id(self) -> str:
        return str(self.row["clip_id"])

    def frames(self) -> np.ndarray:
        """The clip's frames onset..offset as ``T×H×W×3`` uint8 RGB, decoded on first use only."""
        if self._frames is None:
            self._digests = []
            self._frames = read_clip(self.row["frame_paths"], self._digests, self._allocate)
            self.frames_decoded += len(self._frames)
        return self._frames

    def frame_digests(self) -> np.ndarray:
        """SHA-256 of each frame file (``T×32`` uint8), taken from the same read as the decode.

        Raises ``ValueError`` when the files no longer hold what the clips table recorded (changed since preprocess
        read the dataset): the table must be refreshed first, so that no clip is stored under a stale identity."""
        self.frames()
        expected = self.row.get("content_sha256")
        if expected and clip_content_digest(self._digests) != expected:
            raise ValueError(
                f"frames of clip {self.clip_id} changed since the clips table was written; run preprocess again"
            )
        return np.frombuffer(b"".join(self._digests), dtype=np.uint8).reshape(len(self._digests), 32)

    def input(self, stage: str, name: str | None = None) -> np.ndarray:
        """An upstream stage's output for this clip: from this pass when computed here, else from the store."""
        if stage in self.computed:
            arrays = self.computed[stage]
            if name is None:
                name = next(iter(arrays))
            return arrays[name]
        if self._read_input is None:
            raise KeyError(f"input {stage!r} is not available for clip {self.clip_id}")
        return self._read_input(stage, name)
