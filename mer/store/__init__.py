"""The zarr feature store: entries keyed by stage, parameters, inputs and code version."""

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
