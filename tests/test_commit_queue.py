"""Commits made durable on a background thread (mer.store.commit_queue) as the runner uses them: the next stage
computes while the previous one's files reach the disk, yet a marker appears only over durable files, in stage order,
under a claim held until then, and a failure there is the clip's failure."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.context import ClipContext
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.pipeline.stage import Output, Stage, register
from mer.store import open_store
from mer.store.commit import PendingCommit
from mer.store.commit_queue import CommitQueue
from mer.store.entries import EntryRef, OutputSpec

FIRST_STARTED = threading.Event()  # set by the second stage's compute (the tests reset it)


@dataclass(frozen=True)
class NoParams:
    pass


def _first(ctx: ClipContext, params: NoParams) -> dict[str, np.ndarray]:
    frames = ctx.frames()
    return {"copy": frames[:, ::2, ::2].copy(), "total": np.array([frames.sum()], dtype=np.int64)}


def _second(ctx: ClipContext, params: NoParams) -> dict[str, np.ndarray]:
    FIRST_STARTED.set()
    return {"mean": ctx.input("test-queue-first", "copy").mean(axis=(1, 2, 3)).astype(np.float32)}


register(Stage("test-queue-first", "1", NoParams, ("ingest",),
               (Output("copy", "uint8"), Output("total", "int64", lambda p: (1,))), _first))
register(Stage("test-queue-second", "1", NoParams, ("test-queue-first",), (Output("mean", "float32"),), _second))
STAGES = ["ingest", "test-queue-first", "test-queue-second"]


def _store(tmp_path: Path, tiny_dataset, name: str = "store"):
    root, manifest = tiny_dataset
    st = open_store(str(tmp_path / name), "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    return st, build_plan(st, "tiny", STAGES)


def _files(root: Path) -> dict[str, bytes]:
    skip = {"_runs", "_claims", "_failed"}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != "zarr.json" and not p.name.startswith(".") and not skip & set(p.parts)}


def test_the_next_stage_computes_while_the_commit_before_it_waits_for_the_disk(tmp_path, tiny_dataset, monkeypatch):
    st, plan = _store(tmp_path, tiny_dataset)
    first = plan[1].ref("tiny")  # (the entry is made by run_plan)
    root = Path(st.location)
    overlapped: list[bool] = []
    window: list[tuple[bool, bool]] = []  # (claim held, marker absent) of the first stage, while the second computes
    real_finish = PendingCommit.finish

    def slow_finish(self: PendingCommit) -> None:
        if self._entry_path == first.path:  # wait (up to 5 s) for the second stage to start computing
            overlapped.append(FIRST_STARTED.wait(timeout=5.0))
            index = int(self._name.split(".")[0])
            window.append(((root / first.path / "_claims" / self._name).exists(),
                           not (root / first.path / "_done" / self._name).exists()))
            FIRST_STARTED.clear()
            assert index in range(4)
        real_finish(self)

    monkeypatch.setattr(PendingCommit, "finish", slow_finish)
    FIRST_STARTED.clear()
    report = run_plan(st, "tiny", plan, workers=1)
    assert report.failures == [] and report.computed == {stage: 4 for stage in STAGES}
    assert overlapped == [True] * 4  # each clip's second stage began before its first stage's marker was written
    assert window == [(True, True)] * 4  # meanwhile the first stage's clip stayed claimed, without a marker
    assert st.verify() == [] and all(st.claims(p.ref("tiny")) == {} for p in plan)


def test_markers_follow_durable_files_in_stage_order_and_claims_outlive_them(tmp_path, tiny_dataset, monkeypatch):
    st, plan = _store(tmp_path, tiny_dataset)
    root = str(Path(st.location).resolve())
    events: list[tuple[str, str]] = []  # ("fsync" | "marker" | "release", path), in the order they happened
    lock = threading.Lock()
    real_fsync, backend = os.fsync, st.backend
    real_write, real_delete = backend.write_bytes, backend.delete

    def fsync(fd: int) -> None:
        real_fsync(fd)
        with lock:
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    def write_bytes(key: str, data: bytes) -> None:
        real_write(key, data)
        if "/_done/" in key:
            with lock:
                events.append(("marker", key))

    def delete(key: str) -> None:
        if "/_claims/" in key:
            with lock:
                events.append(("release", key))
        real_delete(key)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(backend, "write_bytes", write_bytes)
    monkeypatch.setattr(backend, "delete", delete)
    assert run_plan(st, "tiny", plan, workers=1).failures == []

    markers = [(i, key) for i, (kind, key) in enumerate(events) if kind == "marker"]
    assert len(markers) == 3 * 4
    for at, key in markers:
        entry_path, name = key.split("/_done/")
        marker = st.marker(st.entry(next(p.ref("tiny") for p in plan if p.ref("tiny").path == entry_path)),
                           int(name.split(".")[0]))
        covered = [f"{root}/{entry_path}/{k}" for k in marker["chunks"]]
        covered += [f"{root}/{entry_path}/{k}" for k in marker["meta"] if k.startswith("clips/")]
        synced = {path for kind, path in events[:at] if kind == "fsync"}
        assert covered and all(path in synced for path in covered), key
        release = events.index(("release", f"{entry_path}/_claims/{name}"))
        assert release > at, key  # the claim went only once the marker was there
    for clip in range(4):  # a clip's markers appear in the order of its stages
        order = [key.split("/")[1] for _, key in markers if key.endswith(f"/_done/{clip:06d}.json")]
        assert order == STAGES, clip


def test_a_commit_that_fails_in_the_background_is_the_clips_failure(tmp_path, tiny_dataset, monkeypatch):
    st, plan = _store(tmp_path, tiny_dataset)
    first = plan[1].ref("tiny")  # (the entry is made by run_plan)
    real_finish = PendingCommit.finish

    def failing_finish(self: PendingCommit) -> None:
        if self._entry_path == first.path and self._name.startswith("000001"):
            self.abandon()
            raise OSError(28, "No space left on device")
        real_finish(self)

    monkeypatch.setattr(PendingCommit, "finish", failing_finish)
    report = run_plan(st, "tiny", plan, workers=1)
    (failed,) = report.failures
    assert (failed.index, failed.failed_stage) == (1, "test-queue-first")
    assert "No space left on device" in failed.error and failed.computed == ["ingest"]
    assert report.computed == {"ingest": 4, "test-queue-first": 3, "test-queue-second": 3}
    assert [st.is_done(st.entry(p.ref("tiny")), 1) for p in plan] == [True, False, False]
    assert [r["index"] for r in st.failed_records(first)] == [1]
    assert all(st.claims(p.ref("tiny")) == {} for p in plan)  # no claim left behind by the failure
    assert st.verify() == []

    monkeypatch.setattr(PendingCommit, "finish", real_finish)
    again = run_plan(st, "tiny", plan, workers=1)
    assert again.failures == [] and again.computed == {"ingest": 0, "test-queue-first": 1, "test-queue-second": 1}
    assert st.failed_records(first) == []
    clean, clean_plan = _store(tmp_path, tiny_dataset, "clean")
    run_plan(clean, "tiny", clean_plan, workers=1)
    assert _files(Path(st.location)) == _files(Path(clean.location))  # the retried clip's bytes as a clean run's


def test_a_shared_queue_abandons_only_the_failed_clips_later_commits(tmp_path, monkeypatch):
    st = open_store(str(tmp_path / "s"), "a")
    clip_ids = ["s01/c01", "s01/c02"]
    outputs = [OutputSpec("values", "float32"), OutputSpec("row", "int32", stacked=True, row_shape=(2,))]
    entries = [st.ensure_entry(EntryRef("ds", stage, "k"), outputs, {"clip_ids": clip_ids, "primary": "values"})
               for stage in ("one", "two")]
    real_finish = PendingCommit.finish

    def failing_finish(self: PendingCommit) -> None:
        if self._entry_path == entries[0].ref.path and self._name.startswith("000000"):
            self.abandon()
            raise OSError(5, "Input/output error")
        real_finish(self)

    monkeypatch.setattr(PendingCommit, "finish", failing_finish)
    with CommitQueue(st) as commits:
        for entry in entries:
            for index in (0, 1):
                assert st.try_claim(entry, index)
                arrays = {"values": np.full(3, index, np.float32), "row": np.array([index, 7], np.int32)}
                commits.submit(entry.ref.stage, entry, index, st.write_clip(entry, index, arrays))
        first = commits.wait()
    assert first is not None and first.stage == "one" and "Input/output error" in first.error
    assert list(commits.failures) == [0]
    assert [[st.is_done(e, i) for i in (0, 1)] for e in entries] == [[False, True], [False, True]]
    assert [r["index"] for r in st.failed_records(entries[0].ref)] == [0] and st.failed_records(entries[1].ref) == []
    assert all(st.claims(e.ref) == {} for e in entries)
    assert st.read_entry(entries[1], clip="s01/c02", name="row").tolist() == [1, 7]
