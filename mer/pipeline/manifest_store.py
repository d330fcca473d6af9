"""Putting an adapter's manifest into the store, with a hash that does not depend on where the data is mounted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import stable_hash, to_jsonable
from mer.store.store import FeatureStore

# Columns that say where files are on this machine; the hash uses paths relative to the dataset root instead.
_LOCATION_COLUMNS = ("frame_paths", "source_file")


def manifest_hash(manifest: pd.DataFrame, root: str | Path) -> str:
    """Content hash of a manifest: labels, timing and frame file names relative to ``root``."""
    root = str(Path(root).resolve())
    table = []
    for row in manifest.to_dict(orient="records"):
        clean = {k: (None if _is_na(v) else v) for k, v in row.items() if k not in _LOCATION_COLUMNS}
        clean["frame_files"] = [os.path.relpath(p, root) for p in row.get("frame_paths", [])]
        table.append(clean)
    return stable_hash(table, length=24)


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, tuple)) else False
    except (TypeError, ValueError):
        return False


def write_dataset_manifest(store: FeatureStore, name: str, manifest: pd.DataFrame, root: str | Path,
                           adapter: str, label_set: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> str:
    """Store the manifest under ``name`` with its hash, adapter, root and label set; return the hash."""
    digest = manifest_hash(manifest, root)
    meta = {"hash": digest, "adapter": adapter, "root": str(Path(root).resolve()),
            "label_set": to_jsonable(label_set), **to_jsonable(extra or {})}
    store.write_manifest(name, manifest, meta)
    return digest
