"""Finding things in a store: datasets, entries, their status, and the one entry a reader means."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from mer.config import canonical_json
from mer.names import validate_component
from mer.store.backend import Backend
from mer.store.documents import RESERVED, marker_name
from mer.store.entries import Entry, EntryInfo, EntryRef, OutputSpec
from mer.store.errors import AmbiguousEntryError, EntryNotFoundError, IncompleteEntryError, StoreError


class Catalogue:
    """Listing and resolving entries (mixed into :class:`~mer.store.store.FeatureStore`)."""

    backend: Backend
    location: str
    _entries: dict[EntryRef, Entry]
    _siblings: dict[EntryRef, list[Entry]]


    def datasets(self) -> list[str]:
        """Datasets that have a manifest."""
        return [
            d
            for d in self.backend.list_dir("")
            if not d.startswith("_") and self.backend.exists(f"{d}/manifest/zarr.json")
        ]

    def entry_refs(self, dataset: str | None = None, stage: str | None = None) -> Iterator[EntryRef]:
        """Every entry of the store (of one dataset, of one stage); a given name must be a safe path component
        (``..`` listed the store's root as the stages of a dataset)."""
        if dataset:
            validate_component("dataset", dataset)
        if stage:
            validate_component("stage", stage)
        for ds in [dataset] if dataset else self.datasets():
            stages = [stage] if stage else [s for s in self.backend.list_dir(ds) if s not in RESERVED]
            for st in stages:
                if st in RESERVED or st.startswith("_"):
                    continue
                for key in self.backend.list_dir(f"{ds}/{st}"):
                    if key not in RESERVED and self.backend.exists(f"{ds}/{st}/{key}/zarr.json"):
                        yield EntryRef(ds, st, key)

    _entry_refs = entry_refs

    def attrs_of(self, ref: EntryRef) -> dict[str, Any]:
        """An entry's ``mer`` attributes, read from its group metadata."""
        raw = self.backend.read_bytes(f"{ref.path}/zarr.json")
        if raw is None:
            raise EntryNotFoundError(f"no entry {ref}")
        try:
            attrs = json.loads(raw).get("attributes", {}).get("mer")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise StoreError(
                f"{self.location}/{ref.path}/zarr.json is damaged (not valid JSON); run `mer-cli store verify --repair`"
            ) from None
        if attrs is None:
            raise StoreError(f"{ref} has no mer attributes: not an entry")
        return attrs

    _attrs = attrs_of

    def entry(self, ref: EntryRef) -> Entry:
        """Open an existing entry (cached: an entry's attributes never change once written, same key same content)."""
        if ref not in self._entries:
            attrs = self.attrs_of(ref)
            outputs = {n: OutputSpec.from_json(n, d) for n, d in attrs["outputs"].items()}
            self._entries[ref] = Entry(ref, attrs, outputs)
        return self._entries[ref]

    def is_done(self, entry: Entry, index: int) -> bool:
        """Whether clip ``index`` of the entry is committed (its marker exists)."""
        return self.backend.exists(f"{entry.ref.path}/_done/{marker_name(index)}")

    def done_indices(self, ref: EntryRef) -> set[int]:
        """Clip indices whose commit marker exists."""
        names = self.backend.list_dir(f"{ref.path}/_done")
        return {int(n.split(".")[0]) for n in names if n.endswith(".json") and n.split(".")[0].isdigit()}

    def failed_records(self, ref: EntryRef) -> list[dict[str, Any]]:
        """Failure records of clips that failed in this entry and have not succeeded since."""
        out = []
        for name in self.backend.list_dir(f"{ref.path}/_failed"):
            if not name.split(".")[0].isdigit():
                continue  # the folder's own zarr.json
            raw = self.backend.read_bytes(f"{ref.path}/_failed/{name}")
            if raw is not None:
                try:
                    out.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return out

    def info_of(self, ref: EntryRef) -> EntryInfo:
        """Parameters, inputs and status of one entry."""
        attrs = self.attrs_of(ref)
        done = self.done_indices(ref)
        failed = {r["index"] for r in self.failed_records(ref) if "index" in r} - done
        return EntryInfo(
            ref,
            attrs["params"],
            attrs["inputs"],
            attrs["n_clips"],
            len(done),
            len(failed),
            attrs.get("provenance", {}).get("created", ""),
            attrs.get("manifest_hash", ""),
        )

    def ls(self, dataset: str | None = None, stage: str | None = None) -> list[EntryInfo]:
        """Every entry with its dataset, stage, key, parameters and status."""
        return [self.info_of(ref) for ref in self.entry_refs(dataset, stage)]

    def find(
        self,
        dataset: str,
        stage: str,
        key: str | None = None,
        complete_only: bool = True,
        current_versions: Mapping[str, str] | None = None,
    ) -> Entry:
        """Resolve the entry of a stage: the given key (or unique key prefix), else the one complete entry built
        from the dataset's current clips table (with ``complete_only=False``, the one entry there is when none or
        several are complete). Entries of earlier table versions stay readable by key.

        ``current_versions`` (stage name → code version, e.g. the pipeline's registry): when several complete
        entries qualify, the one whose whole chain of inputs was computed by these versions is taken (an upgrade
        leaves the entries of older stage versions beside the new ones; they stay readable by key). The key taken
        is recorded by the reader (a training run's ``provenance.json``), so it is never a silent choice."""
        refs = list(self.entry_refs(dataset, stage))
        if not refs:
            known = sorted({r.stage for r in self.entry_refs(dataset)}) if dataset in self.datasets() else []
            hint = f"; stages present: {', '.join(known)}" if known else f"; datasets: {', '.join(self.datasets())}"
            raise EntryNotFoundError(f"no entry for stage {stage!r} of dataset {dataset!r} in {self.location}{hint}")
        if key is not None:
            matches = [r for r in refs if r.key.startswith(key)]
            if len(matches) != 1:
                listing = ", ".join(r.key for r in refs)
                raise EntryNotFoundError(f"key {key!r} matches {len(matches)} entries of {dataset}/{stage}: {listing}")
            return self.entry(matches[0])
        current = self.current_manifest_hash(dataset)
        infos = [i for i in (self.info_of(r) for r in refs) if i.manifest_hash == current]
        if not infos:
            raise EntryNotFoundError(
                f"no entry of {dataset}/{stage} is built from the current clips table ({current[:16]}); "
                "run preprocess/build again (earlier versions stay readable with key=)"
            )
        candidates = [i for i in infos if i.status == "complete"]
        if not complete_only and len(candidates) != 1:
            candidates = infos
        if len(candidates) == 1:
            return self.entry(candidates[0].ref)
        if not candidates:
            states = "; ".join(f"{i.key} ({i.status})" for i in infos)
            raise IncompleteEntryError(
                f"no complete entry for {dataset}/{stage}: {states}. "
                "Run preprocess again to finish it, or pass a key to read what is there."
            )
        current = [i for i in candidates if current_versions and self.chain_is_current(i.ref, current_versions)]
        if len(current) == 1:
            return self.entry(current[0].ref)
        listing = "\n".join(
            f"  {i.key}  {canonical_json(i.params)}  created {i.created or '?'}"
            + ("  (this code's chain)" if i in current else "")
            for i in candidates
        )
        raise AmbiguousEntryError(
            f"{len(candidates)} complete entries for {dataset}/{stage}; choose one by key "
            f"(key=KEY, or {stage}@KEY as a training input):\n{listing}"
        )

    def chain_is_current(self, ref: EntryRef, versions: Mapping[str, str]) -> bool:
        """Whether the entry and every entry it was computed from carry the code versions in ``versions``."""
        seen: set[EntryRef] = set()
        todo = [ref]
        while todo:
            ref = todo.pop()
            if ref in seen:
                continue
            seen.add(ref)
            try:
                attrs = self.entry(ref).attrs
            except (EntryNotFoundError, StoreError):
                return False
            if versions.get(ref.stage) != str(attrs.get("version")):
                return False
            todo += [EntryRef(ref.dataset, s, k) for s, k in (attrs.get("inputs") or {}).items() if s != "manifest"]
        return True

    def siblings(self, entry: Entry) -> list[Entry]:
        """Entries of the same dataset and recipe built from other versions of the clips table (newest first), whose
        committed clips can be reused when the clip itself did not change."""
        if not entry.recipe:
            return []
        if entry.ref in self._siblings:
            return self._siblings[entry.ref]
        out = []
        for ref in self.entry_refs(entry.ref.dataset, entry.ref.stage):
            if ref == entry.ref:
                continue
            try:
                other = self.entry(ref)
            except StoreError:
                continue
            if other.recipe == entry.recipe:
                out.append(other)
        out.sort(key=lambda e: e.attrs.get("provenance", {}).get("created", ""), reverse=True)
        self._siblings[entry.ref] = out
        return out
