"""Putting an adapter's clips table into the store: content digests, version, and no silent replacement.

The stored table is versioned by :func:`~mer.datasets.manifest_hash`, which covers the frames' content. A table
that differs from the stored one in clips, labels, spans or frame files is refused unless ``update=True``
(:class:`ManifestChangedError` lists the differences); frames whose content changed under the same file names
make a new version without asking, and the run recomputes exactly those clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import to_jsonable
from mer.datasets.content import scan_content, with_content
from mer.datasets.manifest import manifest_hash
from mer.datasets.manifest_diff import ManifestDiff, diff_manifests
from mer.store.store import FeatureStore


class ManifestChangedError(ValueError):
    """The new clips table differs from the stored one under the same dataset name."""

    def __init__(self, dataset: str, diff: ManifestDiff):
        self.diff = diff
        lines = "; ".join(diff.summary())
        super().__init__(
            f"the clips table of {dataset!r} differs from the one in the store ({lines}); nothing was changed. "
            "Pass --update to store it as a new version (the earlier one stays readable), or --name for a new dataset"
        )


class EmptyManifestError(ValueError):
    """The adapter found no usable clip: nothing is written."""


@dataclass
class ManifestOutcome:
    """What writing a manifest did: its version, whether it is new, and what differs from the previous one."""

    hash: str
    n_clips: int
    previous: str | None = None
    diff: ManifestDiff = field(default_factory=ManifestDiff)
    hashed_files: int = 0

    @property
    def changed(self) -> bool:
        return self.previous is not None and self.previous != self.hash

    def __str__(self) -> str:
        return self.hash


def _moved(table: pd.DataFrame, previous: dict[str, Any], root: str | Path) -> bool:
    """Whether the same clips table (same version) now lives elsewhere: its frame paths or root differ. The location
    is not part of the identity, but readers must find the files, so the stored table is updated in place."""
    if previous.get("root") != str(Path(root).resolve()):
        return True
    at = previous["columns"].index("frame_paths")  # the stored record itself: no second table to build
    return [list(row[at]) for row in previous["rows"]] != [list(p) for p in table["frame_paths"]]


def _cache_key(name: str) -> str:
    return f"_cache/{name}/frame-stat.json"


def write_dataset_manifest(
    store: FeatureStore,
    name: str,
    manifest: pd.DataFrame,
    root: str | Path,
    adapter: str,
    label_set: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    update: bool = False,
    rehash: bool = False,
) -> ManifestOutcome:
    """Store the manifest under ``name`` with its content digests, hash, adapter, root and label set.

    Raises :class:`EmptyManifestError` for a table without clips and :class:`ManifestChangedError` when the table
    differs from the stored one and ``update`` is False; in both cases nothing is written.
    """
    if len(manifest) == 0:
        raise EmptyManifestError(f"no usable clips found under {root}; nothing was written to {store.location}")
    store._require_writable()
    raw_cache = store.backend.read_bytes(_cache_key(name))
    try:
        cache = json.loads(raw_cache) if raw_cache else {}
    except json.JSONDecodeError:
        cache = {}
    scan = scan_content(list(manifest["frame_paths"]), cache if isinstance(cache, dict) else {}, rehash=rehash)
    table = with_content(manifest, scan.digests)
    digest = manifest_hash(table)
    outcome = ManifestOutcome(digest, len(table), hashed_files=scan.hashed_files)
    previous: dict[str, Any] = {}
    if name in store.datasets():
        previous = store.manifest_meta(name)
        outcome.previous = str(previous["hash"])
        if outcome.previous != digest:
            outcome.diff = diff_manifests(store.manifest(name), table)
            if outcome.diff.table_changed and not update:
                raise ManifestChangedError(name, outcome.diff)
    if scan.hashed_files or raw_cache is None:
        store.backend.write_bytes(_cache_key(name), json.dumps(scan.cache, sort_keys=True).encode("utf-8"))
    if outcome.previous == digest and not _moved(table, previous, root):
        return outcome
    meta = {
        "hash": digest,
        "adapter": adapter,
        "root": str(Path(root).resolve()),
        "label_set": to_jsonable(label_set),
        "previous": previous.get("previous") if outcome.previous == digest else outcome.previous,
        **to_jsonable(extra or {}),
    }
    store.write_manifest(name, table, meta)
    return outcome
