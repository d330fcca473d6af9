"""The one definition of a frame's and a clip's content digest, shared by the dataset side (which records it in the
clips table) and the pipeline (which checks it while decoding)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def clip_content_digest(frame_digests: Sequence[bytes]) -> str:
    """SHA-256 (hex) over a clip's frame files' SHA-256 digests, in frame order."""
    return hashlib.sha256(b"".join(frame_digests)).hexdigest()


def file_sha256(path: str) -> bytes:
    """SHA-256 of a file's bytes (the same digest the ingest stage records while decoding)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def frame_digest(video_digest: bytes, index: int) -> bytes:
    """A video frame's identity: SHA-256 over the video file's SHA-256 and the frame index (8 bytes, little-endian)."""
    return hashlib.sha256(video_digest + int(index).to_bytes(8, "little")).digest()
