"""Errors raised by the feature store, each naming the entry, clip or key involved."""


class StoreError(Exception):
    """Base class for store errors."""


class EntryNotFoundError(StoreError, KeyError):
    """No entry matches the dataset/stage/key asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AmbiguousEntryError(StoreError):
    """Several entries match; the user must choose a key."""


class IncompleteEntryError(StoreError):
    """The entry (or the clip asked for) is not completely written."""
