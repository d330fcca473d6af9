"""Writing to a store: entries, per-clip commits with markers, claims, failure records and run reports.

A clip of an entry becomes visible only when its commit marker ``_done/<index>.json`` exists. The marker lists
the SHA-256 of every chunk and metadata document it covers and the clip's fingerprint (what the clip's values
depend on in the clips table), and seals itself with its own checksum.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from typing import Any

import numpy as np
import zarr

from mer.names import validate_clip_id, validate_component
from mer.store.arrays import ChunkEncoder, implicit_group_document, regular_chunks, template_for
from mer.store.backend import Backend, PendingWrites
from mer.store.documents import EMPTY_GROUP, chunk_keys, group_document, marker_name, seal_attrs, sealed, sha256
from mer.store.entries import CLIP_COORD, CLIP_DIM, Entry, EntryRef, OutputSpec
from mer.store.errors import StoreError

ARRAY_CONFIG = {"write_empty_chunks": True}  # an all-zero clip is a value like any other: always write its chunks
_TARGET_CHUNK_BYTES = 4 * 2**20


def chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunk a per-clip array along its first axis in blocks of at most about 4 MiB (whole array when small).

    The rows are shared out evenly over the fewest chunks that keep that size, so that the last chunk is not mostly
    padding (36 frames of 256x256x3 are 2 chunks of 18, not 21 + 15 padded to 21): the padding is written too.
    """
    if not shape:
        return ()
    row_bytes = max(1, math.prod(shape[1:]) * itemsize)
    most_rows = max(1, min(shape[0], _TARGET_CHUNK_BYTES // row_bytes))
    if not shape[0]:
        return (1, *shape[1:])
    n_chunks = math.ceil(shape[0] / most_rows)
    return (math.ceil(shape[0] / n_chunks), *shape[1:])


def compressors_for(dtype: np.dtype, ndim: int) -> Any:
    """No compression for frame stacks (uint8, >= 3 axes); zarr's default (zstd) for everything else.

    Face crops are camera noise at the byte level: Blosc LZ4 with bit-shuffle, the fastest codec that compresses
    them at all, gives a ratio of only 1.08-1.14 on aligned and equalised crops at 7 ms a 21-frame 256x256x3 chunk
    (1 ms stored raw), and zstd 1.17-1.23 at 18-19 ms (one thread; ``benchmarks/bench_codecs.py``). That encoding was
    the largest part of what a commit costs the runner (about 40 of 110 ms a clip); 10 % more bytes cost less. The
    values are the same whatever the codec; each array's ``zarr.json`` names its own, so stores written with the
    earlier codecs read as before."""
    if np.dtype(dtype) == np.uint8 and ndim >= 3:
        return None
    return "auto"


def open_for_writing(zstore: Any, path: str) -> Any:
    """An existing array opened for writing with :data:`ARRAY_CONFIG` (zarr's default would skip all-fill chunks)."""
    return zarr.open_array(store=zstore, path=path, mode="r+").with_config(ARRAY_CONFIG)


def claim_is_stale(holder: dict[str, Any]) -> bool:
    """A claim whose process is gone (this host) or that is older than ``MER_CLAIM_TIMEOUT`` s (default 3600)."""
    if time.time() - float(holder.get("time", 0)) > claim_timeout():
        return True
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


def claim_timeout() -> float:
    return float(os.environ.get("MER_CLAIM_TIMEOUT", "3600"))


class PendingCommit:
    """A clip's files, written but maybe not yet durable, and the commit marker that may follow once they are.

    ``finish`` waits until every file is on the disk, then writes the marker (the clip becomes visible) and clears
    an earlier failure record; ``abandon`` gives up (the files stay without a marker, as after a kill, and are
    overwritten by the next attempt). Either may run on another thread than the one that wrote the files."""

    def __init__(self, backend: Backend, written: PendingWrites, entry_path: str, name: str, marker: bytes):
        self._backend = backend
        self._written = written
        self._entry_path = entry_path
        self._name = name
        self._marker = marker

    def finish(self) -> None:
        self._written.flush()
        self._backend.write_bytes(f"{self._entry_path}/_done/{self._name}", self._marker)
        self._backend.delete(f"{self._entry_path}/_failed/{self._name}")

    def abandon(self) -> None:
        self._written.close()


class Committer:
    """Entry creation, clip commits and claims (mixed into :class:`~mer.store.store.FeatureStore`)."""

    backend: Backend
    location: str
    mode: str
    _zstore: Any
    _meta_digests: dict[str, str]
    _encoders: dict[str, ChunkEncoder | None]
    _known_keys: set[str]

    def _require_writable(self) -> None:
        if self.mode != "a":
            raise StoreError(
                f"store {self.location} is open read-only; this needs write access (open it with mode='a', "
                "as preprocess, build-* and verify --repair do)"
            )

    def _write_group(self, path: str, attributes: dict[str, Any]) -> None:
        """Write a group's zarr.json with its attributes in one atomic write (parents made when missing), so that a
        concurrent reader never sees the group without its attributes."""
        self._require_writable()
        parts = path.split("/") if path else []
        for depth in range(1, len(parts)):
            key = "/".join(parts[:depth]) + "/zarr.json"
            if not self.backend.exists(key):
                self.backend.write_bytes(key, EMPTY_GROUP)
        self.backend.write_bytes(f"{path}/zarr.json" if path else "zarr.json", group_document(attributes))

    def ensure_entry(self, ref: EntryRef, outputs: list[OutputSpec], attrs: dict[str, Any]) -> Entry:
        """Create the entry group and its stacked arrays if missing; never touches what is already written.

        A copy of every metadata document is kept under ``_meta/`` so that ``verify --repair`` can restore one."""
        self._require_writable()
        for kind, name in (("dataset", ref.dataset), ("stage", ref.stage), ("key", ref.key)):
            validate_component(kind, name)  # no store path is ever built from unvalidated text
        if not self.backend.exists(f"{ref.path}/zarr.json"):
            sealed_attrs = seal_attrs({**attrs, "outputs": {o.name: o.to_json() for o in outputs}})
            self._write_group(ref.path, {"mer": sealed_attrs})
            self.backend.write_bytes(f"{ref.path}/_meta/zarr.json", self.backend.read_bytes(f"{ref.path}/zarr.json"))
        if any(out.name == CLIP_COORD for out in outputs):
            raise StoreError(f"stage {ref.stage}: an output may not be named {CLIP_COORD!r} (the clip-id coordinate)")
        stacked = [out for out in outputs if out.stacked]
        if stacked and not self.backend.exists(f"{ref.path}/{CLIP_COORD}/zarr.json"):
            self.write_clip_coordinate(ref.path, list(attrs["clip_ids"]))
        for out in stacked:
            if not self.backend.exists(f"{ref.path}/{out.name}/zarr.json"):
                n = len(attrs["clip_ids"])
                with contextlib.suppress(zarr.errors.ContainsArrayError):  # created by a concurrent process
                    zarr.create_array(
                        store=self._zstore,
                        name=f"{ref.path}/{out.name}",
                        shape=(n, *out.row_shape),
                        chunks=(1, *out.row_shape),
                        dtype=out.dtype,
                        fill_value=0,
                        config=ARRAY_CONFIG,
                        overwrite=False,
                        dimension_names=out.dimension_names,
                        attributes={"coordinates": CLIP_COORD},
                    )
                backup = f"{ref.path}/_meta/{out.name}/zarr.json"
                if not self.backend.exists(backup):
                    self.backend.write_bytes(backup, self.backend.read_bytes(f"{ref.path}/{out.name}/zarr.json"))
        self.backend.sync(self._entry_documents(ref, stacked))
        return self.entry(ref)

    def _entry_documents(self, ref: EntryRef, stacked: list[OutputSpec]) -> list[str]:
        """The files of an entry that every commit marker stands on: its group documents (and those of its dataset
        and stage), the stacked arrays' metadata, the clip-id coordinate, and their copies under ``_meta/``.

        zarr writes some of them without waiting for the disk, and none has its folder entry synced: ``ensure_entry``
        syncs them all once a run (also when a concurrent process created them), never once per clip."""
        parts = ref.path.split("/")
        keys = ["/".join(parts[:depth]) + "/zarr.json" for depth in range(1, len(parts) + 1)]
        keys.append(f"{ref.path}/_meta/zarr.json")
        if stacked:
            keys += [f"{ref.path}/{CLIP_COORD}/{key}" for key in self.backend.list_tree(f"{ref.path}/{CLIP_COORD}")]
        for out in stacked:
            keys += [f"{ref.path}/{out.name}/zarr.json", f"{ref.path}/_meta/{out.name}/zarr.json"]
        return keys

    def write_clip_coordinate(self, path: str, clip_ids: list[str], overwrite: bool = False) -> None:
        """The entry's clip ids as a string array along ``clip`` (what xarray shows as the ``clip_id`` coordinate
        of every stacked output; written whole, so concurrent creators write identical bytes). ``overwrite``
        replaces a damaged one (repair)."""
        self._require_writable()
        name = f"{path}/{CLIP_COORD}"
        try:
            coord = zarr.create_array(
                store=self._zstore,
                name=name,
                shape=(len(clip_ids),),
                chunks=(max(1, len(clip_ids)),),
                dtype=str,
                dimension_names=(CLIP_DIM,),
                overwrite=overwrite,
            )
        except zarr.errors.ContainsArrayError:  # created by a concurrent process: write the same values
            coord = zarr.open_array(store=self._zstore, path=name, mode="r+")
        coord[...] = np.array(clip_ids, dtype=object)

    def _meta_digest(self, key: str) -> str:
        """SHA-256 of a stacked array's metadata (immutable once created, so read once per process)."""
        if key not in self._meta_digests:
            data = self.backend.read_bytes(key)
            if data is None:
                raise StoreError(f"array metadata {key} is missing")
            self._meta_digests[key] = sha256(data)
        return self._meta_digests[key]

    def commit_clip(
        self, entry: Entry, index: int, arrays: dict[str, np.ndarray], fingerprint: str = ""
    ) -> None:
        """Write one clip's outputs, then its commit marker (the clip becomes visible only then).

        Chunks and array metadata are encoded here (:mod:`mer.store.arrays`, the bytes zarr would write) and written
        together with :meth:`Backend.write_many`, durable before the marker is written; the checksums are taken
        of the bytes written. Arrays that path does not cover are written through zarr and read back."""
        self.write_clip(entry, index, arrays, fingerprint).finish()

    def write_clip(
        self, entry: Entry, index: int, arrays: dict[str, np.ndarray], fingerprint: str = ""
    ) -> PendingCommit:
        """The first half of :meth:`commit_clip`: write one clip's files, and return what is left to do (wait for
        them to be durable, then write the marker) as a :class:`PendingCommit`, that may run on another thread.
        The caller holds the clip's claim until that is done."""
        self._require_writable()
        clip_id = validate_clip_id(entry.clip_ids[index])
        missing = set(entry.outputs) - set(arrays)
        if missing:
            raise StoreError(f"stage {entry.ref.stage} returned no {', '.join(sorted(missing))} for clip {clip_id}")
        writes: dict[str, bytes] = {}  # keys below the entry
        via_zarr: list[str] = []  # chunk keys written by zarr itself (read back for their checksums)
        meta: dict[str, str] = {}
        shapes: dict[str, list[int]] = {}
        per_clip: dict[str, np.ndarray] = {}
        for name, spec in entry.outputs.items():
            arr = np.ascontiguousarray(arrays[name])
            if arr.dtype != np.dtype(spec.dtype):
                raise StoreError(
                    f"{entry.ref.stage}.{name} for clip {clip_id}: dtype {arr.dtype}, declared {spec.dtype}"
                )
            shapes[name] = list(arr.shape)
            if not spec.stacked:
                per_clip[name] = arr.reshape(1) if arr.ndim == 0 else arr
                continue
            if tuple(arr.shape) != spec.row_shape:
                raise StoreError(
                    f"{entry.ref.stage}.{name} for clip {clip_id}: shape {arr.shape}, declared {spec.row_shape}"
                )
            path = f"{entry.ref.path}/{name}"
            key = f"{name}/c/{index}" + "/0" * len(spec.row_shape)
            encoder = self._stacked_encoder(f"{path}/zarr.json")
            if encoder is None or encoder.spec.shape != (1, *spec.row_shape):
                open_for_writing(self._zstore, path)[index] = arr
                via_zarr.append(key)
            else:
                writes[key] = encoder.encode(arr.reshape(1, *spec.row_shape))
            meta[f"{name}/zarr.json"] = self._meta_digest(f"{path}/zarr.json")
        stale = self._per_clip_writes(entry, clip_id, per_clip, writes, via_zarr, meta) if per_clip else []
        written = self.backend.write_many_deferred({f"{entry.ref.path}/{key}": data for key, data in writes.items()})
        try:
            for key in stale:  # files of an earlier array at the same place that the new one does not overwrite
                self.backend.delete(f"{entry.ref.path}/{key}")
            checksums = {key: sha256(data) for key, data in writes.items() if not key.endswith("zarr.json")}
            for key in via_zarr:
                data = self.backend.read_bytes(f"{entry.ref.path}/{key}")
                if data is None:
                    raise StoreError(f"chunk {entry.ref.path}/{key} was not written for clip {clip_id}")
                checksums[key] = sha256(data)
        except BaseException:
            written.close()
            raise
        marker = {
            "clip": clip_id,
            "index": index,
            "shapes": shapes,
            "chunks": checksums,
            "meta": meta,
            "fingerprint": fingerprint,
        }
        return PendingCommit(self.backend, written, entry.ref.path, marker_name(index), sealed(marker))

    def _stacked_encoder(self, key: str) -> ChunkEncoder | None:
        """The chunk encoder of a stacked array (its metadata is immutable once created, so built once a process)."""
        if key not in self._encoders:
            data = self.backend.read_bytes(key)
            if data is None:
                raise StoreError(f"array metadata {key} is missing")
            self._encoders[key] = ChunkEncoder.from_document(data, ARRAY_CONFIG)
        return self._encoders[key]

    def _per_clip_writes(
        self,
        entry: Entry,
        clip_id: str,
        arrays: dict[str, np.ndarray],
        writes: dict[str, bytes],
        via_zarr: list[str],
        meta: dict[str, str],
    ) -> list[str]:
        """Add the files of a clip's per-clip arrays (and the clip's group documents where missing) to ``writes``;
        the files already there that the new arrays replace without overwriting (to delete after the writes).

        One listing of the clip's folder tells what exists, as zarr's ``overwrite=True`` would have found out with
        a request per file and parent level."""
        folder = f"clips/{clip_id}"
        existing = set(self.backend.list_tree(f"{entry.ref.path}/{folder}"))
        subject = clip_id.split("/")[0]
        for group in ("clips", f"clips/{subject}"):
            key = f"{entry.ref.path}/{group}/zarr.json"
            if key not in self._known_keys:
                if not self.backend.exists(key):
                    writes[f"{group}/zarr.json"] = implicit_group_document()
                self._known_keys.add(key)
        if "zarr.json" not in existing:
            writes[f"{folder}/zarr.json"] = implicit_group_document()
        stale: list[str] = []
        for name, arr in arrays.items():
            path = f"{folder}/{name}"
            chunks = chunk_shape(arr.shape, arr.dtype.itemsize)
            template = None if 0 in arr.shape else template_for(
                arr.dtype, arr.ndim, compressors_for(arr.dtype, arr.ndim), ARRAY_CONFIG
            )
            if template is None:  # written by zarr (which also removes what was there)
                self._per_clip_array(f"{entry.ref.path}/{path}", arr.shape, chunks, arr.dtype)[...] = arr
                via_zarr.extend(k.removeprefix(entry.ref.path + "/") for k in chunk_keys(
                    f"{entry.ref.path}/{path}", arr.shape, chunks))
                data = self.backend.read_bytes(f"{entry.ref.path}/{path}/zarr.json")
                if data is None:
                    raise StoreError(f"array metadata {entry.ref.path}/{path}/zarr.json was not written for {clip_id}")
                meta[f"{path}/zarr.json"] = sha256(data)
                continue
            document = template.document(arr.shape, chunks)
            writes[f"{path}/zarr.json"] = document
            meta[f"{path}/zarr.json"] = sha256(document)
            for key, block in regular_chunks(arr, chunks):
                writes[f"{path}/{key}"] = template.encoder.encode(block)
            stale.extend(
                f"{folder}/{key}" for key in existing if key.startswith(f"{name}/") and f"{folder}/{key}" not in writes
            )
        return stale

    def reuse_clip(self, entry: Entry, index: int, fingerprint: str) -> bool:
        """Commit clip ``index`` by copying its chunks, byte for byte, from an entry of the same recipe where the clip
        is unchanged (see ``reusable_source``); False when there is none or its bytes do not match their checksums."""
        self._require_writable()
        clip_id = entry.clip_ids[index]
        found = self.reusable_source(entry, clip_id, fingerprint)
        if found is None:
            return False
        source, marker = found
        src_index = marker["index"]
        writes: dict[str, bytes] = {}
        checksums: dict[str, str] = {}
        for key, digest in marker["chunks"].items():
            data = self.backend.read_bytes(f"{source.ref.path}/{key}")
            if data is None or sha256(data) != digest:
                return False  # damaged there: compute instead (never copy damage)
            name, sep, rest = key.partition("/c/")
            if sep and name in entry.outputs and entry.outputs[name].stacked:
                key = f"{name}/c/{index}" + rest.removeprefix(str(src_index))
            writes[key], checksums[key] = data, digest
        meta: dict[str, str] = {}
        for key, digest in marker.get("meta", {}).items():
            if key.startswith("clips/"):
                data = self.backend.read_bytes(f"{source.ref.path}/{key}")
                if data is None or sha256(data) != digest:
                    return False
                writes[key], meta[key] = data, digest
            else:
                meta[key] = self._meta_digest(f"{entry.ref.path}/{key}")
        self.backend.write_many({f"{entry.ref.path}/{key}": data for key, data in writes.items()})
        record = {
            "clip": clip_id,
            "index": index,
            "shapes": marker["shapes"],
            "chunks": dict(sorted(checksums.items())),
            "meta": meta,
            "fingerprint": fingerprint,
        }
        self.backend.write_bytes(f"{entry.ref.path}/_done/{marker_name(index)}", sealed(record))
        self.backend.delete(f"{entry.ref.path}/_failed/{marker_name(index)}")
        return True

    def withdraw_clip(self, entry: Entry, index: int) -> None:
        """Remove a clip's commit marker: the clip is no longer complete, and the next run recomputes it."""
        self._require_writable()
        self.backend.delete(f"{entry.ref.path}/_done/{marker_name(index)}")

    # ----------------------------------------------------------------- claims
    def try_claim(self, entry: Entry, index: int) -> bool:
        """Claim a clip of an entry for this process, so that concurrent runs never write the same chunks.

        A claim left by a killed process is taken over: on this host when its process is gone, elsewhere once it
        is older than ``MER_CLAIM_TIMEOUT`` seconds (default 3600). On S3 the claim is a conditional put
        (``If-None-Match: *``); object stores without one always grant it (concurrent writers there may compute a
        clip twice, writing identical bytes).
        """
        self._require_writable()
        key = f"{entry.ref.path}/_claims/{marker_name(index)}"
        record = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        data = json.dumps(record).encode()
        if self.backend.create_exclusive(key, data):
            return True
        holder = self.claim_holder(key)
        if holder is not None and not claim_is_stale(holder):
            return holder["host"] == record["host"] and holder["pid"] == record["pid"]
        # Stale: several processes may find it so at once; only the first through the lock replaces it.
        # Object storage has no lock: there the replacement is a conditional put on the stale claim's bytes.
        with self.backend.lock(f"{entry.ref.path}/_claims"):
            raw = self.backend.read_bytes(key)
            if raw is None:
                return self.backend.create_exclusive(key, data)  # released meanwhile
            holder = self.claim_holder(key)
            if holder is not None and not claim_is_stale(holder):
                return holder["host"] == record["host"] and holder["pid"] == record["pid"]
            return self.backend.replace_if_unchanged(key, raw, data)

    def claim_holder(self, key: str) -> dict[str, Any] | None:
        """The record of a claim file, or None when it is missing or unreadable."""
        raw = self.backend.read_bytes(key)
        try:
            holder = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            holder = None  # damaged
        return holder if isinstance(holder, dict) and "pid" in holder and "host" in holder else None

    _claim_holder = claim_holder

    def claims(self, ref: EntryRef) -> dict[int, dict[str, Any] | None]:
        """Claims present in an entry by clip index, with their holder records (None when unreadable)."""
        out = {}
        for name in self.backend.list_dir(f"{ref.path}/_claims"):
            stem = name.split(".")[0]
            if name.endswith(".json") and stem.isdigit():
                out[int(stem)] = self.claim_holder(f"{ref.path}/_claims/{name}")
        return out

    def release_stale_claims(self, ref: EntryRef, committed_only: bool = True) -> list[int]:
        """Remove the claims whose holder is gone (or that are unreadable): by default only those on committed clips,
        which no process will ever release; with ``committed_only=False`` every one (``store verify --repair``).

        A process killed after writing a clip's commit marker and before releasing its claim leaves one on a
        committed clip. It blocks nothing (a clip is claimed only while it lacks its marker, and a claimer checks the
        marker again once it holds the claim), but it would stay in the store, and in ``store verify``'s list, for
        good; a stale claim on an uncommitted clip is taken over by the next run that computes it. One listing of
        the entry's claims; the clips' markers are listed only when there is a claim. Returns the clips' indices.
        """
        self._require_writable()
        claims = self.claims(ref)
        if not claims:
            return []
        done = self.done_indices(ref) if committed_only else set(claims)
        stale = [i for i, holder in claims.items() if i in done and (holder is None or claim_is_stale(holder))]
        for index in stale:
            self.backend.delete(f"{ref.path}/_claims/{marker_name(index)}")
        return stale

    def release_claim(self, entry: Entry, index: int) -> None:
        """Drop this process's claim on a clip (after its commit or its failure record)."""
        self._require_writable()
        self.backend.delete(f"{entry.ref.path}/_claims/{marker_name(index)}")

    def record_failure(self, entry: Entry, index: int, stage: str, error: str) -> None:
        """Remember that a clip failed in this entry (cleared when it later succeeds)."""
        from mer.config import canonical_json

        self._require_writable()
        record = {"clip": entry.clip_ids[index], "index": index, "stage": stage, "error": error}
        self.backend.write_bytes(
            f"{entry.ref.path}/_failed/{marker_name(index)}", canonical_json(record).encode("utf-8")
        )

    def write_run_report(self, name: str, report: dict[str, Any]) -> None:
        """Keep a run's summary and failure list in the store (``_runs/<name>.json``)."""
        self._require_writable()
        self.backend.write_bytes(f"_runs/{name}.json", json.dumps(report, indent=1).encode("utf-8"))
