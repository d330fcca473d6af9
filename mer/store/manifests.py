"""The clips tables of a store, versioned: every version stays readable, one is current.

``<dataset>/manifest/zarr.json`` holds the current table; ``<dataset>/manifest/versions/<hash>/zarr.json`` every
version ever written (the current one included), keyed by the dataset's own content hash. Each table carries a
checksum of itself and one per row, so that ``verify`` names a row that was edited.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from mer.config import canonical_json
from mer.names import validate_component
from mer.store.backend import Backend
from mer.store.documents import EMPTY_GROUP, group_document, sha256
from mer.store.errors import EntryNotFoundError, StoreError

_RESTORED_DTYPES = ("int", "Int", "uint", "UInt", "float", "Float", "bool", "boolean")


def table_checksums(columns: list[str], rows: list[list[Any]]) -> tuple[str, list[str]]:
    """SHA-256 of the whole table and of each row (canonical JSON)."""
    whole = sha256(canonical_json({"columns": columns, "rows": rows}).encode("utf-8"))
    return whole, [sha256(canonical_json(row).encode("utf-8")) for row in rows]


class ManifestShelf:
    """Writing and reading versioned clips tables (mixed into :class:`~mer.store.store.FeatureStore`)."""

    backend: Backend
    location: str
    _manifest_cache: dict[str, dict[str, Any]]


    def write_manifest(self, dataset: str, manifest: pd.DataFrame, meta: dict[str, Any]) -> None:
        """Store a clips table as the dataset's current version (``meta["hash"]`` names the version); earlier
        versions are kept. Rows are stored as JSON; column dtypes are recorded and restored on reading."""
        self._require_writable()
        validate_component("dataset", dataset)
        if "hash" not in meta:
            raise StoreError("a manifest needs a 'hash' naming its version")
        table = json.loads(manifest.to_json(orient="split", index=False, date_format="iso"))
        whole, per_row = table_checksums(table["columns"], table["data"])
        record = {
            "columns": table["columns"],
            "rows": table["data"],
            "dtypes": {c: str(t) for c, t in manifest.dtypes.items()},
            "table_sha256": whole,
            "row_sha256": per_row,
            **meta,
        }
        document = group_document({"mer_manifest": record})
        version = f"{dataset}/manifest/versions/{meta['hash']}/zarr.json"
        if not self.backend.exists(f"{dataset}/zarr.json"):
            self.backend.write_bytes(f"{dataset}/zarr.json", EMPTY_GROUP)
        if not self.backend.exists(f"{dataset}/manifest/versions/zarr.json"):
            self.backend.write_bytes(f"{dataset}/manifest/versions/zarr.json", EMPTY_GROUP)
        self.backend.write_bytes(version, document)
        self.backend.write_bytes(f"{dataset}/manifest/zarr.json", document)
        self._manifest_cache.pop(dataset, None)

    def _read_manifest_document(self, key: str, dataset: str) -> dict[str, Any] | None:
        raw = self.backend.read_bytes(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)["attributes"]["mer_manifest"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise StoreError(
                f"the clips table of {dataset!r} ({self.location}/{key}) is damaged; "
                "run `mer-cli store verify --repair`, then preprocess again"
            ) from None

    def manifest_meta(self, dataset: str, version: str | None = None) -> dict[str, Any]:
        """The stored record of a clips table: columns, rows, hash, adapter, root, label set…"""
        validate_component("dataset", dataset)  # ``..`` read a clips table from outside the store
        if version is not None:
            validate_component("clips table version", version)
        if version is None and dataset in self._manifest_cache:
            return self._manifest_cache[dataset]
        key = f"{dataset}/manifest/zarr.json" if version is None else f"{dataset}/manifest/versions/{version}/zarr.json"
        meta = self._read_manifest_document(key, dataset)
        if meta is None:
            if version is not None:
                known = ", ".join(v[:16] for v in self.manifest_versions(dataset)) or "none"
                raise EntryNotFoundError(f"dataset {dataset!r} has no clips table version {version}; versions: {known}")
            raise EntryNotFoundError(
                f"dataset {dataset!r} has no manifest in {self.location}; "
                f"datasets here: {', '.join(self.datasets()) or 'none'}"
            )
        if version is None:
            self._manifest_cache[dataset] = meta
        return meta

    def current_manifest_hash(self, dataset: str) -> str:
        """The version of the dataset's current clips table."""
        return str(self.manifest_meta(dataset)["hash"])

    def manifest_versions(self, dataset: str) -> list[str]:
        """Every stored version of a dataset's clips table."""
        validate_component("dataset", dataset)
        return [v for v in self.backend.list_dir(f"{dataset}/manifest/versions") if v != "zarr.json"]

    def manifest(self, dataset: str, version: str | None = None) -> pd.DataFrame:
        """A clips table (the current one by default), one row per clip, in clip-axis order."""
        meta = self.manifest_meta(dataset, version)
        df = pd.DataFrame(meta["rows"], columns=meta["columns"])
        for column, dtype in meta.get("dtypes", {}).items():
            if column in df and dtype.startswith(_RESTORED_DTYPES):
                df[column] = df[column].astype(dtype)
        return df

    def clips(self, dataset: str) -> list[str]:
        """Clip ids of a dataset in clip-axis order."""
        meta = self.manifest_meta(dataset)
        return [row[meta["columns"].index("clip_id")] for row in meta["rows"]]

