"""The feature store: a zarr v3 hierarchy of entries (dataset × stage × key) with per-clip commits.

Layout (see design.md): ``<dataset>/manifest`` (the clips table, every version kept), ``<dataset>/<stage>/<key>/``
(group attrs: parameters, inputs, outputs, provenance, the clips table version) holding per-clip arrays under
``clips/<subject>/<clip>/<name>`` and dataset arrays ``<name>`` with a clip axis (one chunk per clip). A clip counts
as written only once its commit marker ``_done/<index>.json`` exists.

The class is assembled from one module per job: :mod:`~mer.store.catalogue` (ls, info, find),
:mod:`~mer.store.manifests` (clips tables), :mod:`~mer.store.commit` (entries, commits, claims),
:mod:`~mer.store.reader` (reads) and :mod:`~mer.store.verify` (verify, repair), over a
:class:`~mer.store.backend.Backend`.
"""

from __future__ import annotations

import json
from typing import Any

from mer.store.backend import make_backend
from mer.store.catalogue import Catalogue
from mer.store.commit import Committer
from mer.store.documents import FORMAT_VERSION, root_document
from mer.store.entries import Entry, EntryInfo, EntryRef, OutputSpec, VerifyIssue
from mer.store.errors import StoreError
from mer.store.manifests import ManifestShelf
from mer.store.reader import Reader
from mer.store.verify import Verifier

__all__ = ["Entry", "EntryInfo", "EntryRef", "FeatureStore", "OutputSpec", "VerifyIssue", "open_store"]


class FeatureStore(Catalogue, ManifestShelf, Committer, Reader, Verifier):
    """A feature store at a local path or fsspec URL, opened read-only (``"r"``) or for appending (``"a"``)."""

    def __init__(
        self, location: str, mode: str = "r", damaged_ok: bool = False, storage_options: dict[str, Any] | None = None
    ):
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        self.backend = make_backend(location, storage_options)
        self.location = self.backend.location
        self.mode = mode
        self._entries: dict[EntryRef, Entry] = {}
        self._siblings: dict[EntryRef, list[Entry]] = {}
        self._manifest_cache: dict[str, dict[str, Any]] = {}
        self._meta_digests: dict[str, str] = {}
        self._encoders: dict[str, Any] = {}  # chunk encoders of stacked arrays, by metadata key
        self._known_keys: set[str] = set()  # group documents known to exist (never removed while writing)
        try:
            root_meta = self.backend.read_bytes("zarr.json")
        except IsADirectoryError:
            raise StoreError(f"{self.location}/zarr.json is a folder: not a mer store") from None
        except NotADirectoryError:
            raise StoreError(f"{self.location} is a file, not a store folder") from None
        if root_meta is None:
            if mode == "r":
                raise FileNotFoundError(
                    f"no mer store at {self.location} (no zarr.json); create it with `mer-cli preprocess`"
                )
            if self.backend.list_dir(""):
                raise StoreError(
                    f"{self.location}: this folder holds other files and no mer store (no zarr.json); "
                    "give a new or empty folder, or an existing store"
                )
            if not self.backend.writable():
                raise StoreError(f"cannot create a store at {self.location}: no write permission")
        self._zstore = self.backend.zarr_store(read_only=(mode == "r"))
        if root_meta is None:
            self.backend.write_bytes("zarr.json", root_document())
            return
        try:
            fmt = json.loads(root_meta).get("attributes", {}).get("mer_store", {}).get("format")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            if damaged_ok:  # opened by verify, which reports (and repair rewrites) the damaged root
                return
            raise StoreError(
                f"{self.location}/zarr.json is damaged (not valid JSON); `mer-cli store verify --repair` rewrites it"
            ) from None
        if fmt is None:
            raise StoreError(f"{self.location} is a zarr hierarchy but not a mer store (no mer_store attribute)")
        if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
            raise StoreError(
                f"{self.location}/zarr.json: store format {fmt!r} is not a format number (1 to {FORMAT_VERSION}); "
                "the file was edited or written by another program"
            )
        if fmt > FORMAT_VERSION:
            raise StoreError(f"store format {fmt} is newer than this mer understands ({FORMAT_VERSION}); upgrade mer")
        if fmt < FORMAT_VERSION:
            raise StoreError(
                f"{self.location} is a format-{fmt} store from an earlier mer; this mer (format {FORMAT_VERSION}) "
                "identifies clips by content and versions clips tables, so old stores must be rebuilt: "
                "preprocess into a new folder"
            )
        if mode == "a" and not self.backend.writable():
            raise StoreError(f"store {self.location} is read-only for this user; open it for reading only")


def open_store(
    location: str, mode: str = "r", damaged_ok: bool = False, storage_options: dict[str, Any] | None = None
) -> FeatureStore:
    """Open a feature store at a local folder or fsspec URL (``mode="a"`` creates it when missing).

    ``damaged_ok`` opens a store whose root metadata is damaged, for ``verify``/``repair`` only.
    ``storage_options`` go to the fsspec filesystem of a URL (default: ``$MER_STORAGE_OPTIONS``, then the
    filesystem's own configuration, e.g. the ``AWS_*`` variables for ``s3://``)."""
    return FeatureStore(str(location), mode, damaged_ok, storage_options)
