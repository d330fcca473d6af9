"""Opening the ``--store`` a user named: a clear one-line error for what is not a usable mer store."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mer.store import StoreError, open_store
from mer.store.backend import is_url
from mer.store.store import FeatureStore


def open_cli_store(location: str, mode: str = "r") -> FeatureStore:
    """Open the store at ``location`` for the CLI (``mode`` ``"r"`` or ``"a"``), refusing with a message naming it:

    a file; for writing, a folder that holds files but no store (a mer store is never created among other files)
    or one this process cannot write; a root ``zarr.json`` that is damaged; a zarr hierarchy that is not a mer store.
    """
    local = not is_url(location)
    path = Path(str(location).removeprefix("file://"))
    if local and path.exists() and not path.is_dir():
        raise ValueError(f"--store {location}: is a file, not a store folder; give a folder (new or a mer store)")
    # a folder with other files (and no store) is refused by the store itself, which ignores its own temporary files
    if local and mode == "a" and path.is_dir() and not os.access(path, os.W_OK):
        raise PermissionError(13, "the store cannot be written (read-only)", str(path))
    try:
        return open_store(location, mode)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{os.path.join(location, 'zarr.json')}: damaged JSON ({exc.msg} at line {exc.lineno}); "
            "restore it from a backup or rebuild the store"
        ) from None
