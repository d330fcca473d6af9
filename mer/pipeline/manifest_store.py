"""Putting an adapter's manifest into the store with its hash, adapter, root and label set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import to_jsonable
from mer.datasets.manifest import manifest_hash
from mer.store.store import FeatureStore


def write_dataset_manifest(
    store: FeatureStore,
    name: str,
    manifest: pd.DataFrame,
    root: str | Path,
    adapter: str,
    label_set: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Store the manifest under ``name`` with its hash, adapter, root and label set; return the hash."""
    digest = manifest_hash(manifest)
    meta = {
        "hash": digest,
        "adapter": adapter,
        "root": str(Path(root).resolve()),
        "label_set": to_jsonable(label_set),
        **to_jsonable(extra or {}),
    }
    store.write_manifest(name, manifest, meta)
    return digest
