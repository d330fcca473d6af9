"""The small JSON documents of a store: group metadata, commit markers, their names and checksums."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any

from mer.config import canonical_json

FORMAT_VERSION = 2
RESERVED = frozenset({"manifest", "clips", "_done", "_failed", "_runs", "_claims", "_meta", "_cache"})
EMPTY_GROUP = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def group_document(attributes: dict[str, Any]) -> bytes:
    """A zarr v3 group's ``zarr.json`` holding ``attributes``."""
    return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}).encode("utf-8")


def root_document() -> bytes:
    return group_document({"mer_store": {"format": FORMAT_VERSION}})


def marker_name(index: int) -> str:
    return f"{index:06d}.json"


def sealed(record: dict[str, Any]) -> bytes:
    """``record`` as canonical JSON with a ``sha256`` of its own content, so that an edited record is noticed."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return canonical_json({**body, "sha256": sha256(canonical_json(body).encode("utf-8"))}).encode("utf-8")


def unseal(raw: bytes | None) -> dict[str, Any] | None:
    """The record of :func:`sealed` bytes, or None when missing, unreadable or altered."""
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    body = {k: v for k, v in record.items() if k != "sha256"}
    if record.get("sha256") != sha256(canonical_json(body).encode("utf-8")):
        return None
    return record


def seal_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes with ``attrs_sha256``, a checksum of the rest, so that an edited entry is noticed."""
    body = {k: v for k, v in attrs.items() if k != "attrs_sha256"}
    return {**body, "attrs_sha256": sha256(canonical_json(body).encode("utf-8"))}


def attrs_intact(attrs: Any) -> bool:
    """Whether attributes sealed by :func:`seal_attrs` are unchanged."""
    if not isinstance(attrs, dict) or "attrs_sha256" not in attrs:
        return False
    body = {k: v for k, v in attrs.items() if k != "attrs_sha256"}
    return attrs["attrs_sha256"] == sha256(canonical_json(body).encode("utf-8"))


def chunk_keys(array_path: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[str]:
    """Keys of every chunk of an array in zarr v3's default chunk-key encoding."""
    grids = [range(max(1, math.ceil(s / c))) for s, c in zip(shape, chunks, strict=True)]
    return [f"{array_path}/c/" + "/".join(str(i) for i in idx) for idx in itertools.product(*grids)]
