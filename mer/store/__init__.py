"""The zarr feature store: entries keyed by stage, parameters, inputs, code version and clips-table version.

The small public API: :func:`open_store`, then ``store.ls()``, ``store.read()``, ``store.manifest()`` and
``store.verify()`` (``verify_report()``/``repair()`` for the details).
"""

from mer.store.errors import AmbiguousEntryError, EntryNotFoundError, IncompleteEntryError, StoreError
from mer.store.store import Entry, EntryInfo, EntryRef, FeatureStore, OutputSpec, VerifyIssue, open_store

__all__ = [
    "AmbiguousEntryError",
    "Entry",
    "EntryInfo",
    "EntryNotFoundError",
    "EntryRef",
    "FeatureStore",
    "IncompleteEntryError",
    "OutputSpec",
    "StoreError",
    "VerifyIssue",
    "open_store",
]
