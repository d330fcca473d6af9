"""What a clip's frames contain: one SHA-256 per clip over its frame files' bytes, kept cheap by a stat cache.

A file is re-hashed only when its size or modification time changed since the cache saw it (as git and DVC do);
``rehash=True`` hashes every file again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from mer.content_digest import clip_content_digest, file_sha256, frame_digest
from mer.frame_refs import parse_frame_ref

CONTENT_COLUMN = "content_sha256"


@dataclass
class ContentScan:
    """Per-clip content digests, the updated stat cache, and how many files were (re)hashed."""

    digests: list[str]
    cache: dict[str, list]
    hashed_files: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)


def scan_content(
    frame_paths: Sequence[Sequence[str]],
    cache: dict[str, list] | None = None,
    rehash: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ContentScan:
    """Content digests of clips given as lists of frame paths.

    ``cache`` maps a path to ``[size, mtime_ns, sha256 hex]``; only files whose size or mtime differ are read.
    A file that cannot be read gets an empty digest for its clip (the ingest stage then reports the file).
    """
    cache = dict(cache or {})
    fresh: dict[str, list] = {}
    digests, hashed, unreadable = [], 0, {}
    for i, paths in enumerate(frame_paths):
        parts: list[bytes] = []
        failed = False
        for frame in paths:
            ref = parse_frame_ref(frame)  # a video frame: its file's digest and its index
            path = ref[0] if ref is not None else frame
            if path in fresh:  # another frame of the same video, already seen in this scan
                digest = bytes.fromhex(fresh[path][2])
                parts.append(frame_digest(digest, ref[1]) if ref is not None else digest)
                continue
            try:
                st = os.stat(path)
            except OSError as exc:
                unreadable[path] = exc.strerror or str(exc)
                failed = True
                continue
            known = cache.get(path)
            if not rehash and known and known[0] == st.st_size and known[1] == st.st_mtime_ns:
                fresh[path] = known
                digest = bytes.fromhex(known[2])
            else:
                try:
                    digest = file_sha256(path)
                except OSError as exc:
                    unreadable[path] = exc.strerror or str(exc)
                    failed = True
                    continue
                hashed += 1
                fresh[path] = [st.st_size, st.st_mtime_ns, digest.hex()]
            parts.append(frame_digest(digest, ref[1]) if ref is not None else digest)
        digests.append("" if failed else clip_content_digest(parts))
        if progress is not None:
            progress(i + 1, len(frame_paths))
    return ContentScan(digests, fresh, hashed, unreadable)


def with_content(manifest: pd.DataFrame, digests: Sequence[str]) -> pd.DataFrame:
    """The manifest with its ``content_sha256`` column set."""
    out = manifest.copy()
    out[CONTENT_COLUMN] = pd.Series(list(digests), index=out.index, dtype="str")
    out.attrs = dict(manifest.attrs)
    return out
