"""Reading from a store: a clip's arrays, a dataset array with its clip axis, commit markers."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from mer.store.backend import Backend
from mer.store.documents import marker_name, sha256, unseal
from mer.store.entries import Entry
from mer.store.errors import EntryNotFoundError, IncompleteEntryError, StoreError


class Reader:
    """Array reads (mixed into :class:`~mer.store.store.FeatureStore`)."""

    backend: Backend
    location: str
    _zstore: Any

    def read(
        self,
        dataset: str,
        stage: str,
        clip: str | None = None,
        key: str | None = None,
        name: str | None = None,
        allow_partial: bool = False,
    ) -> np.ndarray:
        """A clip's array (``clip=``), or the dataset array with its clip axis (``clip=None``).

        ``key`` defaults to the one complete entry of the stage built from the current clips table; ``name`` to the
        stage's primary output.
        """
        entry = self.find(dataset, stage, key, complete_only=key is None and clip is None)
        return self.read_entry(entry, clip=clip, name=name, allow_partial=allow_partial)

    def read_entry(
        self, entry: Entry, clip: str | None = None, name: str | None = None, allow_partial: bool = False
    ) -> np.ndarray:
        """Like :meth:`read` on an open entry."""
        name = name or entry.primary
        if name not in entry.outputs:
            raise EntryNotFoundError(f"{entry.ref} has no output {name!r}; outputs: {', '.join(entry.outputs)}")
        spec = entry.outputs[name]
        if clip is None:
            done = self.done_indices(entry.ref)
            if not spec.stacked:
                raise StoreError(f"{entry.ref}/{name} is stored per clip; pass clip= (one of {len(entry.clip_ids)})")
            missing = [c for i, c in enumerate(entry.clip_ids) if i not in done]
            if missing and not allow_partial:
                raise IncompleteEntryError(
                    f"{entry.ref} is missing {len(missing)} of {len(entry.clip_ids)} clips "
                    f"(e.g. {', '.join(missing[:3])}); pass allow_partial=True for the rest"
                )
            return self._read_array(f"{entry.ref.path}/{name}", ...)
        index = entry.index_of(clip)
        if not self.is_done(entry, index):
            raise IncompleteEntryError(f"clip {clip} is not completely written in {entry.ref}")
        if spec.stacked:
            return self._read_array(f"{entry.ref.path}/{name}", index)
        return self._read_array(f"{entry.ref.path}/clips/{clip}/{name}", ...)

    def _read_array(self, path: str, selection: Any) -> np.ndarray:
        """``selection`` of the array at ``path``; a chunk that cannot be decoded (cut short or altered: zarr's
        reshape error, the codec's own) is a :class:`StoreError` naming the array and what to do."""
        array = zarr.open_array(store=self._zstore, path=path, mode="r")
        try:
            return array[selection]
        except (ValueError, RuntimeError) as exc:
            raise StoreError(
                f"{self.location}/{path}: damaged chunk data ({exc}); `mer-cli store verify STORE` names the file "
                "and `--repair` withdraws it for the next run to recompute"
            ) from None

    def done_mask(self, entry: Entry) -> np.ndarray:
        """Boolean mask over the clip axis: True where the clip is completely written."""
        done = self.done_indices(entry.ref)
        return np.array([i in done for i in range(len(entry.clip_ids))], dtype=bool)

    def marker(self, entry: Entry, index: int) -> dict[str, Any] | None:
        """A clip's commit marker, or None when it is missing, unreadable or altered."""
        return unseal(self.backend.read_bytes(f"{entry.ref.path}/_done/{marker_name(index)}"))

    def _chunks_intact(self, entry: Entry, marker: dict[str, Any]) -> bool:
        """Whether every chunk a marker lists still has the recorded checksum (so that damage is never copied)."""
        for key, digest in marker.get("chunks", {}).items():
            data = self.backend.read_bytes(f"{entry.ref.path}/{key}")
            if data is None or sha256(data) != digest:
                return False
        return True

    def reusable_source(self, entry: Entry, clip_id: str, fingerprint: str) -> tuple[Entry, dict[str, Any]] | None:
        """An entry of the same recipe, built from another version of the clips table, that holds ``clip_id`` intact
        with the same fingerprint (the clip itself did not change), and that clip's commit marker there."""
        if not fingerprint:
            return None
        for other in self.siblings(entry):
            if not other.has_clip(clip_id):
                continue
            marker = self.marker(other, other.index_of(clip_id))
            if marker is None or marker.get("fingerprint") != fingerprint:
                continue
            if set(other.outputs) == set(entry.outputs):
                return other, marker
        return None
