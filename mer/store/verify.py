"""Checking everything a reader trusts — chunks, array and group metadata, clips tables, commit markers — and
withdrawing what fails, so that the same preprocess command recomputes exactly that.

Repair never invents data: a damaged metadata document is restored from its intact copy (every entry keeps one
under ``_meta/``; every clips table version is kept twice), anything else is withdrawn (its commit marker removed,
or the damaged table removed) and recomputed by the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zarr

from mer.store.backend import Backend
from mer.store.commit import claim_is_stale
from mer.store.documents import EMPTY_GROUP, RESERVED, attrs_intact, marker_name, root_document, sha256, unseal
from mer.store.entries import CLIP_COORD, EntryRef, VerifyIssue
from mer.store.manifests import table_checksums


@dataclass
class Finding(VerifyIssue):
    """A verify issue with what repair would do about it."""

    action: str = ""
    target: str = ""
    source: str = ""


@dataclass
class VerifyReport:
    """What ``verify`` found: problems (each repairable), partial entries and claims (information)."""

    issues: list[Finding] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    entries: int = 0
    clips: int = 0

    @property
    def ok(self) -> bool:
        return not self.issues


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


class Verifier:
    """Verify and repair (mixed into :class:`~mer.store.store.FeatureStore`)."""

    backend: Backend
    location: str
    _zstore: Any
    _known_keys: set[str]
    _encoders: dict[str, Any]

    def verify(self, progress: Callable[[], None] | None = None) -> list[VerifyIssue]:
        """Every problem found (see :meth:`verify_report` for partial entries and claims too)."""
        return list(self.verify_report(progress).issues)

    def verify_report(self, progress: Callable[[], None] | None = None) -> VerifyReport:
        """Re-read every committed chunk and metadata document and compare them with their checksums; check every
        clips table against its own checksums; list partial entries and claims."""
        report = VerifyReport()
        root = _json(self.backend.read_bytes("zarr.json"))
        if not isinstance(root, dict) or "mer_store" not in root.get("attributes", {}):
            report.issues.append(Finding("store", "-", "zarr.json", "damaged store metadata", "rewrite", "zarr.json"))
        for dataset in self._verify_datasets():
            self._check_plain_group(report, dataset, f"{dataset}/zarr.json")
            self._check_manifests(report, dataset)
            for stage in self.backend.list_dir(dataset):
                if stage in RESERVED or stage.startswith("_") or stage == "zarr.json":
                    continue
                self._check_plain_group(report, dataset, f"{dataset}/{stage}/zarr.json")
                for key in self.backend.list_dir(f"{dataset}/{stage}"):
                    if key != "zarr.json" and key not in RESERVED:
                        self._check_entry(report, EntryRef(dataset, stage, key), progress)
        return report

    def _verify_datasets(self) -> list[str]:
        """Every dataset folder, also one whose clips table is damaged or gone."""
        return [d for d in self.backend.list_dir("") if not d.startswith("_") and d != "zarr.json"]

    def _check_plain_group(self, report: VerifyReport, where: str, key: str) -> None:
        doc = _json(self.backend.read_bytes(key))
        if not (isinstance(doc, dict) and doc.get("node_type") == "group"):
            report.issues.append(Finding(where, "-", key, "damaged group metadata", "rewrite", key))

    # ---------------------------------------------------------------- tables
    def _table_problem(self, raw: bytes | None) -> tuple[str, list[str]] | None:
        """None when a stored clips table is intact, else (problem, clip ids of rows that changed)."""
        doc = _json(raw)
        try:
            meta = doc["attributes"]["mer_manifest"]
            columns, rows = meta["columns"], meta["rows"]
        except (TypeError, KeyError):
            return ("damaged clips table (unreadable)", [])
        whole, per_row = table_checksums(columns, rows)
        if whole == meta.get("table_sha256"):
            return None
        recorded = meta.get("row_sha256") or []
        at = columns.index("clip_id") if "clip_id" in columns else None
        changed = [
            str(rows[i][at]) if at is not None else f"row {i}"
            for i in range(len(rows))
            if i >= len(recorded) or per_row[i] != recorded[i]
        ]
        return ("clips table differs from its checksum (edited rows)", changed)

    def _check_manifests(self, report: VerifyReport, dataset: str) -> None:
        current_key = f"{dataset}/manifest/zarr.json"
        current_raw = self.backend.read_bytes(current_key)
        versions = {
            v: f"{dataset}/manifest/versions/{v}/zarr.json"
            for v in self.backend.list_dir(f"{dataset}/manifest/versions")
            if v != "zarr.json"
        }
        intact = {v: k for v, k in versions.items() if self._table_problem(self.backend.read_bytes(k)) is None}
        current = self._table_problem(current_raw)
        current_hash = None
        if current is None:
            current_hash = _json(current_raw)["attributes"]["mer_manifest"].get("hash")
        else:
            doc = _json(current_raw)
            claimed = doc.get("attributes", {}).get("mer_manifest", {}).get("hash") if isinstance(doc, dict) else None
            source = intact.get(claimed) if claimed else None
            for clip in current[1] or ["-"]:
                report.issues.append(
                    Finding(
                        f"{dataset}/manifest",
                        clip,
                        current_key,
                        current[0],
                        "restore" if source else "withdraw",
                        current_key,
                        source or "",
                    )
                )
        for version, key in versions.items():
            if version in intact:
                continue
            problem = self._table_problem(self.backend.read_bytes(key)) or ("damaged", [])
            source = current_key if current is None and current_hash == version else ""
            for clip in problem[1] or ["-"]:
                report.issues.append(
                    Finding(
                        f"{dataset}/manifest@{version[:12]}",
                        clip,
                        key,
                        problem[0],
                        "restore" if source else "withdraw",
                        key,
                        source,
                    )
                )
        if current is None and current_hash and current_hash not in versions:
            report.issues.append(
                Finding(f"{dataset}/manifest", "-", current_key, "current clips table has no version copy",
                        "restore", f"{dataset}/manifest/versions/{current_hash}/zarr.json", current_key)
            )

    # ---------------------------------------------------------------- entries
    def _entry_document(self, key: str) -> dict[str, Any] | None:
        doc = _json(self.backend.read_bytes(key))
        attrs = doc.get("attributes", {}).get("mer") if isinstance(doc, dict) else None
        return attrs if attrs_intact(attrs) else None

    def _check_entry(self, report: VerifyReport, ref: EntryRef, progress: Callable[[], None] | None) -> None:
        group_key, copy_key = f"{ref.path}/zarr.json", f"{ref.path}/_meta/zarr.json"
        attrs = self._entry_document(group_key)
        if attrs is None:
            copy = self._entry_document(copy_key)
            action = ("restore", group_key, copy_key) if copy is not None else ("withdraw-entry", ref.path, "")
            report.issues.append(Finding(ref.path, "-", group_key, "damaged entry metadata", *action))
            if copy is None:
                return
            attrs = copy
        elif self.backend.read_bytes(copy_key) != self.backend.read_bytes(group_key):
            report.issues.append(
                Finding(ref.path, "-", copy_key, "damaged copy of entry metadata", "restore", copy_key, group_key)
            )
        report.entries += 1
        clip_ids = list(attrs.get("clip_ids", []))
        done = self.done_indices(ref)
        if len(done) < len(clip_ids):
            report.partial.append(f"{ref.path}: {len(done)} of {len(clip_ids)} clips committed")
        for index, holder in sorted(self.claims(ref).items()):
            clip = clip_ids[index] if index < len(clip_ids) else str(index)
            state = "unreadable" if holder is None else "stale" if claim_is_stale(holder) else "live"
            who = f"host {holder.get('host')} pid {holder.get('pid')}" if holder else "unknown holder"
            report.claims.append(f"{ref.path} clip {clip}: {state} claim ({who})")
        self._check_clip_coordinate(report, ref, attrs)
        stacked_ok: dict[str, bool] = {}
        for index in sorted(done):
            clip = clip_ids[index] if index < len(clip_ids) else f"#{index}"
            marker_key = f"{ref.path}/_done/{marker_name(index)}"
            marker = unseal(self.backend.read_bytes(marker_key))
            if marker is None or marker.get("clip") != clip or marker.get("index") != index:
                report.issues.append(
                    Finding(ref.path, clip, marker_key, "damaged commit marker", "withdraw", marker_key)
                )
                continue
            report.clips += 1
            broken = []
            for key, digest in marker["chunks"].items():
                data = self.backend.read_bytes(f"{ref.path}/{key}")
                if data is None:
                    broken.append((key, "missing chunk"))
                elif sha256(data) != digest:
                    broken.append((key, "altered chunk"))
            for key, digest in marker.get("meta", {}).items():
                if not key.startswith("clips/"):
                    if key not in stacked_ok:
                        stacked_ok[key] = self._check_stacked_meta(report, ref, key, digest)
                    continue
                data = self.backend.read_bytes(f"{ref.path}/{key}")
                if data is None:
                    broken.append((key, "missing array metadata"))
                elif sha256(data) != digest:
                    broken.append((key, "damaged array metadata"))
            for key, problem in broken:
                report.issues.append(Finding(ref.path, clip, key, problem, "withdraw", marker_key))
            if progress is not None:
                progress()

    def _check_clip_coordinate(self, report: VerifyReport, ref: EntryRef, attrs: dict[str, Any]) -> None:
        """An entry with stacked outputs holds its clip ids as the ``clip_id`` array (xarray's coordinate)."""
        if not any(o.get("stacked") for o in attrs.get("outputs", {}).values()):
            return
        try:
            values = zarr.open_array(store=self._zstore, path=f"{ref.path}/{CLIP_COORD}", mode="r")[...].tolist()
        except Exception:  # noqa: BLE001 — missing or damaged: rewritten from the entry's attributes
            values = None
        if values != list(attrs.get("clip_ids", [])):
            report.issues.append(
                Finding(ref.path, "-", f"{ref.path}/{CLIP_COORD}", "damaged clip-id coordinate", "rewrite-coordinate",
                        ref.path)
            )

    def _check_stacked_meta(self, report: VerifyReport, ref: EntryRef, key: str, digest: str) -> bool:
        live, copy = f"{ref.path}/{key}", f"{ref.path}/_meta/{key}"
        live_ok = (data := self.backend.read_bytes(live)) is not None and sha256(data) == digest
        copy_ok = (data := self.backend.read_bytes(copy)) is not None and sha256(data) == digest
        if live_ok and copy_ok:
            return True
        if live_ok:
            report.issues.append(Finding(ref.path, "-", copy, "damaged copy of array metadata", "restore", copy, live))
        elif copy_ok:
            report.issues.append(Finding(ref.path, "-", live, "damaged array metadata", "restore", live, copy))
        else:
            report.issues.append(Finding(ref.path, "-", live, "damaged array metadata", "withdraw-entry", ref.path))
        return live_ok

    # ----------------------------------------------------------------- repair
    def repair(self, report: VerifyReport | None = None) -> list[str]:
        """Act on every finding of ``report`` (a fresh verify by default); return one line per action taken.

        Afterwards the store verifies clean, and the same preprocess/build command recomputes exactly what was
        withdrawn. Stale claims are removed too."""
        self._require_writable()
        report = report or self.verify_report()
        done: list[str] = []
        seen: set[tuple[str, str]] = set()
        for f in report.issues:
            if (f.action, f.target) in seen:
                continue
            seen.add((f.action, f.target))
            if f.action == "rewrite":
                self.backend.write_bytes(f.target, root_document() if f.target == "zarr.json" else EMPTY_GROUP)
                done.append(f"rewrote {f.target}")
            elif f.action == "restore":
                self.backend.write_bytes(f.target, self.backend.read_bytes(f.source) or b"")
                done.append(f"restored {f.target} from {f.source}")
            elif f.action == "withdraw":
                self.backend.delete(f.target)
                done.append(f"withdrew {f.target} ({f.problem}: {f.entry} clip {f.clip})")
            elif f.action == "rewrite-coordinate":
                group = _json(self.backend.read_bytes(f"{f.target}/zarr.json")) or {}
                clip_ids = group.get("attributes", {}).get("mer", {}).get("clip_ids")
                if clip_ids is not None:
                    self.write_clip_coordinate(f.target, list(clip_ids), overwrite=True)
                    done.append(f"rewrote {f.target}/{CLIP_COORD} from the entry's clip ids")
            elif f.action == "withdraw-entry":
                self.backend.remove_tree(f.target)
                done.append(f"withdrew entry {f.target} ({f.problem})")
        for ref in list(self.entry_refs()):
            for index in self.release_stale_claims(ref, committed_only=False):
                done.append(f"removed stale claim {ref.path} #{index}")
        self._entries.clear()
        self._siblings.clear()
        self._manifest_cache.clear()
        self._known_keys.clear()
        self._encoders.clear()
        return done
