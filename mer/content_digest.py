"""The one definition of a clip's content digest, shared by the dataset side (which records it in the clips table)
and the pipeline (which checks it while decoding)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def clip_content_digest(frame_digests: Sequence[bytes]) -> str:
    """SHA-256 (hex) over a clip's frame files' SHA-256 digests, in frame order."""
    return hashlib.sha256(b"".join(frame_digests)).hexdigest()
