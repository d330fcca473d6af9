"""A store a lab can trust: identity by content, versioned clips tables, verify that covers everything, repair."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer.datasets.manifest_store import EmptyManifestError, ManifestChangedError, write_dataset_manifest
from mer.pipeline.context import ClipContext
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.pipeline.stage import Output, Stage, get_stage, register
from mer.store import open_store

STAGES = ["ingest", "test-trust"]


@dataclass(frozen=True)
class TrustParams:
    zero: bool = False


def _compute(ctx: ClipContext, params: TrustParams) -> dict[str, np.ndarray]:
    frames = ctx.frames().astype(np.float32)
    if params.zero:  # a legitimately all-zero result (a 1-frame MESTI, a diff with apex = onset)
        return {"series": np.zeros(len(frames), np.float32), "image": np.zeros((8, 8), np.float32)}
    return {"series": frames.mean(axis=(1, 2, 3)), "image": frames[0, :8, :8, 0]}


try:
    get_stage("test-trust")
except ValueError:
    register(
        Stage(
            "test-trust",
            "1",
            TrustParams,
            ("ingest",),
            (Output("series", "float32"), Output("image", "float32", lambda p: (8, 8))),
            _compute,
        )
    )


def _run(location: Path, root: Path, manifest, update: bool = False, overrides=None):
    st = open_store(str(location), "a")
    outcome = write_dataset_manifest(st, "tiny", manifest, root, "folder", None, update=update)
    report = run_plan(st, "tiny", build_plan(st, "tiny", STAGES, overrides), workers=1)
    return st, outcome, report


def _files(store: Path) -> dict[str, bytes]:
    """Every file of a store but run reports and the frame stat cache (a machine's own bookkeeping)."""
    out = {}
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store)
        if path.is_file() and rel.parts[0] not in ("_runs", "_cache") and not path.name.startswith("."):
            out[str(rel)] = path.read_bytes()
    return out


# ----------------------------------------------------------------------------------------------- identity
def test_changed_frame_content_recomputes_that_clip_only(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    st, first, report = _run(tmp_path / "store", root, manifest)
    assert report.computed == {"ingest": 4, "test-trust": 4}
    old_key = build_plan(st, "tiny", STAGES)[1].key
    before = st.read("tiny", "test-trust", name="image")
    edited = Path(manifest.iloc[2]["frame_paths"][0])
    image = cv2.imread(str(edited))
    image[:8, :8] = 255 - image[:8, :8]
    cv2.imwrite(str(edited), image)  # same file name, new content

    st, second, report = _run(tmp_path / "store", root, manifest)
    assert second.changed and second.diff.content_changed == [manifest.iloc[2]["clip_id"]]
    assert not second.diff.table_changed and second.hashed_files == 1  # only the changed file is re-read
    assert report.computed_clips == [manifest.iloc[2]["clip_id"]]
    assert report.reused == {"ingest": 3, "test-trust": 3}
    after = st.read("tiny", "test-trust", name="image")
    assert not np.array_equal(after[2], before[2])
    for i in (0, 1, 3):
        assert after[i].tobytes() == before[i].tobytes()
    # the earlier version stays readable, by key
    np.testing.assert_array_equal(st.read("tiny", "test-trust", key=old_key, name="image"), before)

    st, third, report = _run(tmp_path / "store", root, manifest)
    assert not third.changed and third.hashed_files == 0 and report.skipped == 4


def test_stale_frames_at_ingest_fail_the_clip_not_the_identity(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    st = open_store(str(tmp_path / "store"), "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    Path(manifest.iloc[1]["frame_paths"][0]).write_bytes(Path(manifest.iloc[0]["frame_paths"][0]).read_bytes())
    report = run_plan(st, "tiny", build_plan(st, "tiny", STAGES), workers=1)
    assert [o.clip_id for o in report.failures] == [manifest.iloc[1]["clip_id"]]
    assert "changed since the clips table was written" in report.failures[0].error


def test_changed_table_is_refused_then_versioned_with_reuse(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    st, first, _ = _run(tmp_path / "store", root, manifest)
    stored = _files(tmp_path / "store")
    relabelled = manifest.copy()
    relabelled.loc[1, "label"] = 2
    relabelled.loc[1, "emotion"] = "surprise"
    dropped = relabelled.drop(index=3).reset_index(drop=True)
    with pytest.raises(ManifestChangedError) as err:
        write_dataset_manifest(st, "tiny", dropped, root, "folder", None)
    text = str(err.value)
    assert manifest.iloc[1]["clip_id"] in text and "label" in text and "emotion" in text
    assert manifest.iloc[3]["clip_id"] in text and "removed" in text
    assert _files(tmp_path / "store") == stored  # nothing written

    st, second, report = _run(tmp_path / "store", root, dropped, update=True)
    assert second.changed and report.computed == {"ingest": 0, "test-trust": 0}
    assert report.reused == {"ingest": 3, "test-trust": 3}  # labels do not change features
    assert st.manifest("tiny")["label"].tolist() == [0, 2, 0]
    assert st.manifest("tiny", version=first.hash)["label"].tolist() == [0, 0, 0, 0]
    assert sorted(st.manifest_versions("tiny")) == sorted([first.hash, second.hash])


def test_two_datasets_under_one_name_and_an_empty_root_write_nothing(tmp_path, tiny_dataset):
    from conftest import write_tiny_clips

    root, manifest = tiny_dataset
    st, _, _ = _run(tmp_path / "store", root, manifest)
    stored = _files(tmp_path / "store")
    other_root = tmp_path / "other"
    other = write_tiny_clips(other_root, n_clips=3, seed=5)
    with pytest.raises(ManifestChangedError, match="differs from the one in the store"):
        write_dataset_manifest(st, "tiny", other, other_root, "folder", None)
    with pytest.raises(EmptyManifestError, match="no usable clips"):
        write_dataset_manifest(st, "tiny", manifest.iloc[0:0], tmp_path / "empty", "folder", None)
    assert _files(tmp_path / "store") == stored


def test_all_zero_outputs_commit_and_read_back(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    st, _, report = _run(tmp_path / "store", root, manifest, overrides={"test-trust": {"zero": True}})
    assert report.failures == [] and report.computed["test-trust"] == 4
    assert not st.read("tiny", "test-trust", name="image").any()
    assert st.read("tiny", "test-trust", clip=manifest.iloc[0]["clip_id"]).tolist() == [0.0] * 5
    assert st.verify() == []


# ----------------------------------------------------------------------------------------------- verify/repair
def _entry_path(store: Path) -> Path:
    return next(p for p in (store / "tiny" / "test-trust").iterdir() if p.is_dir())


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, len(path.read_bytes()) // 2)])


def _edit_label(path: Path) -> None:
    doc = json.loads(path.read_text())
    table = doc["attributes"]["mer_manifest"]
    table["rows"][2][table["columns"].index("label")] = 1
    path.write_text(json.dumps(doc))


DAMAGE = {
    "root metadata": (lambda s: s / "zarr.json", _truncate, "store", "-"),
    "dataset group": (lambda s: s / "tiny" / "zarr.json", _truncate, "tiny", "-"),
    "stage group": (lambda s: s / "tiny" / "test-trust" / "zarr.json", _truncate, "tiny", "-"),
    "entry metadata": (lambda s: _entry_path(s) / "zarr.json", _truncate, "test-trust", "-"),
    "stacked array metadata": (lambda s: _entry_path(s) / "image" / "zarr.json", _truncate, "test-trust", "-"),
    "per-clip array metadata": (
        lambda s: _entry_path(s) / "clips" / "s01" / "c03" / "series" / "zarr.json", _truncate, "test-trust", "s01/c03"
    ),
    "stacked chunk": (lambda s: _entry_path(s) / "image" / "c" / "1" / "0" / "0", _truncate, "test-trust", "s02/c02"),
    "per-clip chunk": (
        lambda s: _entry_path(s) / "clips" / "s02" / "c04" / "series" / "c" / "0", _truncate, "test-trust", "s02/c04"
    ),
    "commit marker": (lambda s: _entry_path(s) / "_done" / "000000.json", _truncate, "test-trust", "s01/c01"),
    "manifest truncated": (lambda s: s / "tiny" / "manifest" / "zarr.json", _truncate, "tiny/manifest", "-"),
    "manifest label edited": (lambda s: s / "tiny" / "manifest" / "zarr.json", _edit_label, "tiny/manifest", "s01/c03"),
}


@pytest.fixture
def reference_store(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    _run(tmp_path / "reference", root, manifest)
    return tmp_path / "reference", root, manifest


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_verify_names_damage_and_repair_restores_the_reference(tmp_path, reference_store, kind):
    reference, root, manifest = reference_store
    store = tmp_path / "damaged"
    shutil.copytree(reference, store)
    target, damage, where, clip = DAMAGE[kind]
    damage(target(store))
    if kind == "root metadata":
        with pytest.raises(Exception, match="damaged"):
            open_store(str(store), "r")
    st = open_store(str(store), "a", damaged_ok=True)
    report = st.verify_report()
    assert not report.ok
    assert any(where in f.entry and (clip == "-" or f.clip == clip) for f in report.issues), report.issues
    st.repair(report)
    _run(store, root, manifest)
    assert open_store(str(store), "r").verify() == []
    assert _files(store) == _files(reference)


def test_changed_frame_recomputes_that_clips_mesti_only(tmp_path, face_store):
    """The issue's case on real stages: one frame of one clip edited in place; the re-run recomputes that clip only,
    its MESTI changes, and every other clip's MESTI bytes stay identical."""
    from mer.datasets import load
    from mer.pipeline.catalog import expand_stages

    base, dataset = face_store
    shutil.copytree(base, tmp_path / "copy")
    data, location = tmp_path / "copy" / "data", tmp_path / "copy" / "store"

    def run():
        result = load("folder", data, labels="3class", dataset_name=dataset)
        st = open_store(str(location), "a")
        outcome = write_dataset_manifest(st, dataset, result.manifest, data, result.adapter, result.label_set.to_dict())
        plan = build_plan(st, dataset, expand_stages("ingest,face,mesti"))
        return st, outcome, run_plan(st, dataset, plan, workers=1)

    st, _, first = run()
    assert first.computed["mesti"] == 6 and not first.failures
    before = st.read(dataset, "mesti")
    clip = st.clips(dataset)[4]
    frame = Path(st.manifest(dataset).set_index("clip_id").loc[clip, "frame_paths"][-1])
    image = cv2.imread(str(frame))
    cv2.imwrite(str(frame), cv2.GaussianBlur(image, (0, 0), 3))  # same name, other content

    st, outcome, second = run()
    assert outcome.diff.content_changed == [clip] and not outcome.diff.table_changed
    assert second.computed_clips == [clip] and not second.failures
    assert set(second.reused.values()) == {5}
    after = st.read(dataset, "mesti")
    assert not np.array_equal(after[4], before[4])
    for i in (0, 1, 2, 3, 5):
        assert after[i].tobytes() == before[i].tobytes()


def test_a_run_waiting_on_a_live_claim_says_who_holds_it(tmp_path, tiny_dataset):
    """A clip claimed by a live process on another host is awaited with a message naming host, pid and clip."""
    import time

    from mer.pipeline.claim_wait import claim_wait_message
    from mer.pipeline.runner import prepare_entries

    root, manifest = tiny_dataset
    st = open_store(str(tmp_path / "store"), "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    plan = build_plan(st, "tiny", STAGES)
    (ingest, _) = prepare_entries(st, "tiny", plan)
    claim = Path(st.location) / ingest.ref.path / "_claims" / "000001.json"
    claim.parent.mkdir(parents=True, exist_ok=True)
    claim.write_text(json.dumps({"host": "lab-node-7", "pid": 4242, "time": time.time()}))
    seen: list[list[dict]] = []

    def on_wait(holders: list[dict]) -> None:
        seen.append(holders)
        claim.unlink()  # the other process finishes and releases its claim

    report = run_plan(st, "tiny", plan, workers=1, poll_seconds=0.01, on_wait=on_wait)
    assert report.failures == [] and report.computed == {"ingest": 4, "test-trust": 4}
    assert len(seen) == 1 and [(h["host"], h["pid"], h["clip"]) for h in seen[0]] == [
        ("lab-node-7", 4242, manifest.iloc[1]["clip_id"])
    ]
    line = claim_wait_message(seen[0])
    assert "lab-node-7" in line and "4242" in line and "MER_CLAIM_TIMEOUT" in line
