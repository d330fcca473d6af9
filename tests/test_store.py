"""The feature store: commits, keys, reading, verification, export, failures and determinism."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from mer.datasets import manifest_hash
from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.context import ClipContext
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.pipeline.stage import Output, Stage, register
from mer.store import AmbiguousEntryError, IncompleteEntryError, open_store
from mer.store.export import export_entry_h5


@dataclass(frozen=True)
class MeanParams:
    scale: float = 1.0


def _compute_mean(ctx: ClipContext, params: MeanParams) -> dict[str, np.ndarray]:
    frames = ctx.frames().astype(np.float32)
    return {
        "mean": (frames.mean(axis=(1, 2)) * params.scale).astype(np.float32),
        "first": (frames[0].mean(axis=2) * params.scale).astype(np.float32),
    }


MEAN = register(
    Stage(
        "test-mean",
        "1",
        MeanParams,
        ("ingest",),
        (Output("mean", "float32"), Output("first", "float32", lambda p: (16, 16))),
        _compute_mean,
    )
)


def _ingest(tmp_path: Path, tiny_dataset, name: str = "store"):
    root, manifest = tiny_dataset
    st = open_store(str(tmp_path / name), "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    plan = build_plan(st, "tiny", ["ingest", "test-mean"])
    return st, plan, manifest


def test_ingest_records_file_checksums_and_sizes(tmp_path, tiny_dataset):
    st, plan, manifest = _ingest(tmp_path, tiny_dataset)
    report = run_plan(st, "tiny", plan)
    assert report.failures == [] and report.computed == {"ingest": 4, "test-mean": 4}
    clip = manifest.iloc[2]
    digests = st.read("tiny", "ingest", clip=clip["clip_id"])
    expected = [hashlib.sha256(Path(p).read_bytes()).digest() for p in clip["frame_paths"]]
    assert [bytes(row) for row in digests] == expected
    assert st.read("tiny", "ingest", name="frame_size").tolist() == [[16, 16, 5]] * 4
    assert {i.stage: i.status for i in st.ls("tiny")} == {"ingest": "complete", "test-mean": "complete"}


def test_stage_values_round_trip_through_store(tmp_path, tiny_dataset):
    st, plan, manifest = _ingest(tmp_path, tiny_dataset)
    run_plan(st, "tiny", plan)
    import cv2

    frames = np.stack([cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in manifest.iloc[1]["frame_paths"]])
    got = st.read("tiny", "test-mean", clip=manifest.iloc[1]["clip_id"])
    np.testing.assert_allclose(got, frames.astype(np.float32).mean(axis=(1, 2)), rtol=1e-6)
    stacked = st.read("tiny", "test-mean", name="first")
    assert stacked.shape == (4, 16, 16)
    np.testing.assert_allclose(stacked[1], frames[0].astype(np.float32).mean(axis=2), rtol=1e-6)


def test_rerun_skips_complete_clips_and_keys_follow_parameters(tmp_path, tiny_dataset):
    st, plan, _ = _ingest(tmp_path, tiny_dataset)
    run_plan(st, "tiny", plan)
    again = run_plan(st, "tiny", build_plan(st, "tiny", ["ingest", "test-mean"]))
    assert again.skipped == 4 and again.computed == {"ingest": 0, "test-mean": 0}
    scaled = build_plan(st, "tiny", ["test-mean"], {"test-mean": {"scale": 2.0}})
    assert scaled[0].key == plan[0].key  # ingest reused
    assert scaled[1].key != plan[1].key
    report = run_plan(st, "tiny", scaled)
    assert report.computed == {"ingest": 0, "test-mean": 4}
    with pytest.raises(AmbiguousEntryError, match="choose one by key"):
        st.read("tiny", "test-mean", name="first")
    doubled = st.read("tiny", "test-mean", key=scaled[1].key, name="first")
    np.testing.assert_allclose(doubled, 2 * st.read("tiny", "test-mean", key=plan[1].key, name="first"), rtol=1e-6)


def test_after_an_upgrade_the_entry_of_this_codes_chain_is_found_and_the_old_one_stays_readable(
    tmp_path, tiny_dataset, monkeypatch
):
    """An upgrade bumps an upstream stage: the same stage and parameters then have two complete entries. Given the
    code's versions, ``find`` takes the one whose whole chain this code computed; without them it is ambiguous and
    says which one that is; the old one is still read by key."""
    import dataclasses

    import mer.pipeline.stage as stage_module

    st, plan, _ = _ingest(tmp_path, tiny_dataset)
    run_plan(st, "tiny", plan)
    old_key = plan[1].key
    ingest = stage_module.get_stage("ingest")
    monkeypatch.setitem(stage_module._REGISTRY, "ingest", dataclasses.replace(ingest, version=ingest.version + "-next"))
    upgraded = build_plan(st, "tiny", ["ingest", "test-mean"])
    assert upgraded[1].key != old_key and upgraded[1].params == plan[1].params
    run_plan(st, "tiny", upgraded)
    versions = stage_module.registered_versions()
    assert st.find("tiny", "test-mean", current_versions=versions).ref.key == upgraded[1].key
    assert not st.chain_is_current(st.find("tiny", "test-mean", key=old_key).ref, versions)
    with pytest.raises(AmbiguousEntryError) as info:
        st.find("tiny", "test-mean")
    listed = str(info.value)
    assert old_key in listed and upgraded[1].key in listed and "(this code's chain)" not in listed
    assert st.find("tiny", "test-mean", key=old_key).ref.key == old_key


def test_corrupt_frame_fails_only_its_clip(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    bad = Path(manifest.iloc[1]["frame_paths"][3])
    bad.write_bytes(bad.read_bytes()[:20])
    st, plan, _ = _ingest(tmp_path, tiny_dataset)
    report = run_plan(st, "tiny", plan)
    assert [o.clip_id for o in report.failures] == [manifest.iloc[1]["clip_id"]]
    assert str(bad) in report.failures[0].error and report.failures[0].failed_stage == "ingest"
    info = {i.stage: i for i in st.ls("tiny")}
    assert info["ingest"].status == "done with 1 failed"
    assert info["test-mean"].n_done == 3
    with pytest.raises(IncompleteEntryError):
        st.read("tiny", "test-mean", key=plan[1].key, name="first")
    partial = st.read("tiny", "test-mean", key=plan[1].key, name="first", allow_partial=True)
    assert partial.shape == (4, 16, 16)
    assert st.done_mask(st.entry(plan[1].ref("tiny"))).tolist() == [True, False, True, True]


def test_verify_catches_truncated_altered_and_missing_chunks(tmp_path, tiny_dataset):
    st, plan, manifest = _ingest(tmp_path, tiny_dataset)
    run_plan(st, "tiny", plan)
    assert st.verify() == []
    base = Path(st.location) / plan[1].ref("tiny").path
    truncated = base / "first" / "c" / "2" / "0" / "0"
    truncated.write_bytes(truncated.read_bytes()[:-5])
    altered = next((base / "clips" / "s01" / "c01" / "mean" / "c").rglob("*"))
    while altered.is_dir():
        altered = next(altered.iterdir())
    data = bytearray(altered.read_bytes())
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    missing = base / "first" / "c" / "3" / "0" / "0"
    missing.unlink()
    problems = {(i.clip, i.problem) for i in st.verify()}
    clip_ids = list(manifest["clip_id"])
    assert problems == {(clip_ids[2], "altered chunk"), (clip_ids[0], "altered chunk"), (clip_ids[3], "missing chunk")}


def test_same_inputs_store_identical_bytes(tmp_path, tiny_dataset):
    stores = []
    for name in ("a", "b"):
        st, plan, _ = _ingest(tmp_path, tiny_dataset, name)
        run_plan(st, "tiny", plan)
        stores.append(Path(st.location))

    def content(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and p.name != "zarr.json" and "_runs" not in p.parts
        }

    a, b = content(stores[0]), content(stores[1])
    assert len(a) > 20 and a == b


def test_manifest_hash_ignores_mount_point_but_not_labels(tmp_path, tiny_dataset):
    root, manifest = tiny_dataset
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    relocated = manifest.copy()
    relocated["frame_paths"] = [[p.replace(str(root), str(moved)) for p in paths] for paths in manifest["frame_paths"]]
    assert manifest_hash(manifest) == manifest_hash(relocated)
    relabelled = manifest.copy()
    relabelled.loc[0, "label"] = 1
    assert manifest_hash(relabelled) != manifest_hash(manifest)


def test_export_h5_round_trip(tmp_path, tiny_dataset):
    st, plan, manifest = _ingest(tmp_path, tiny_dataset)
    run_plan(st, "tiny", plan)
    entry = st.entry(plan[1].ref("tiny"))
    target = tmp_path / "out.h5"
    assert export_entry_h5(st, entry, target) == 4
    with h5py.File(target) as h5:
        np.testing.assert_array_equal(h5["first"][...], st.read_entry(entry, name="first"))
        clip = manifest.iloc[3]["clip_id"]
        np.testing.assert_array_equal(h5[f"clips/{clip}/mean"][...], st.read_entry(entry, clip=clip))
        assert [c.decode() for c in h5["clip_ids"][...]] == list(manifest["clip_id"])


def test_read_only_store_refuses_writes_and_missing_store_is_clear(tmp_path, tiny_dataset):
    with pytest.raises(FileNotFoundError, match="no mer store"):
        open_store(str(tmp_path / "nothing"), "r")
    st, plan, _ = _ingest(tmp_path, tiny_dataset)
    run_plan(st, "tiny", plan)
    ro = open_store(st.location, "r")
    with pytest.raises(Exception, match="read-only"):
        ro.commit_clip(ro.entry(plan[0].ref("tiny")), 0, {})
