"""The ``apex`` stage is the one place a clip's apex is chosen: MESTI, the apex frame, diff and flow read it, so one
clip's inputs share one apex (annotated, detected, or a fallback for a missing annotation), and a training run
names the apex entry it used (issue 12)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.pipeline.context import ClipContext
from mer.pipeline.flow.stages import FlowParams, compute_flow_stage
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.pipeline.temporal.apex import APEX_RULES, detected_apex, middle_apex
from mer.pipeline.temporal.stages import ApexParams, MestiParams, compute_apex, compute_image
from mer.store import open_store
from mer.train.store_inputs import load_training_inputs


@pytest.fixture
def store_copy(face_store, tmp_path):
    base, dataset = face_store
    shutil.copytree(base / "store", tmp_path / "store")
    return open_store(str(tmp_path / "store"), "a"), dataset


def _entry(store, dataset, plan, stage):
    return store.entry(next(p for p in plan if p.stage.name == stage).ref(dataset))


@pytest.mark.parametrize("apex", [{"mode": "annotated"}, {"mode": "detected"}])
def test_flow_and_mesti_of_a_clip_read_one_apex_entry(store_copy, apex):
    store, ds = store_copy
    overrides = {"apex": apex, "mesti": {"size": 16}, "flow": {"pairs": "onset-apex,apex-offset"}}
    plan = build_plan(store, ds, ["mesti", "flow"], overrides)
    report = run_plan(store, ds, plan, workers=1)
    assert not report.failures, report.failures
    apex_entry, mesti, flow = (_entry(store, ds, plan, s) for s in ("apex", "mesti", "flow"))
    assert mesti.attrs["inputs"]["apex"] == flow.attrs["inputs"]["apex"] == apex_entry.ref.key
    positions = store.read_entry(apex_entry, name="apex")
    np.testing.assert_array_equal(store.read_entry(mesti, name="apex"), positions)
    rules = store.read_entry(apex_entry, name="rule")[:, 0]
    assert set(rules.tolist()) == {APEX_RULES.index(apex["mode"])}
    manifest = store.manifest(ds)
    for i, row in manifest.iterrows():
        clip = row["clip_id"]
        pairs = store.read_entry(flow, clip=clip, name="pairs")
        n = len(row["frame_numbers"])
        assert pairs.tolist() == [[0, positions[i, 0]], [positions[i, 0], n - 1]]
        assert positions[i, 1] == row["frame_numbers"][positions[i, 0]]
        motion = store.read_entry(apex_entry, clip=clip, name="motion")
        if apex["mode"] == "annotated":
            assert positions[i, 0] == list(row["frame_numbers"]).index(int(row["apex"])) and np.isnan(motion).all()
        else:  # the stored curve is the detector's, its peak the stored apex, on the aligned faces
            aligned = store.read(ds, "align", clip=clip)
            assert int(np.argmax(motion)) == positions[i, 0] == detected_apex(aligned)


@pytest.mark.parametrize("fallback", ["middle", "detected"])
def test_a_clip_without_annotation_gets_the_fallback_in_every_stage(face_store, fallback):
    base, ds = face_store
    store = open_store(str(base / "store"))
    row = store.manifest(ds).iloc[2].to_dict()
    row["apex"] = None
    ctx = ClipContext(row, 2)
    ctx.computed["align"] = {"frames": store.read(ds, "align", clip=row["clip_id"])}
    ctx.computed["equalize"] = {"frames": store.read(ds, "equalize", clip=row["clip_id"])}
    apex = compute_apex(ctx, ApexParams(mode="annotated", fallback=fallback))
    n = len(row["frame_numbers"])
    expected = middle_apex(n) if fallback == "middle" else detected_apex(ctx.computed["align"]["frames"])
    assert apex["apex"].tolist() == [expected, row["frame_numbers"][expected]]
    assert APEX_RULES[int(apex["rule"][0])] == fallback
    ctx.computed["apex"] = apex
    mesti = compute_image("mesti", ctx, MestiParams(size=16))
    flow = compute_flow_stage(ctx, FlowParams(pairs="onset-apex,apex-offset"))
    np.testing.assert_array_equal(mesti["apex"], apex["apex"])
    assert flow["pairs"].tolist() == [[0, expected], [expected, n - 1]]
    with pytest.raises(ValueError, match=f"clip {row['clip_id']}: .*no annotated apex"):
        compute_apex(ctx, ApexParams(mode="annotated", fallback=None))


def test_build_flow_reuses_the_apex_that_build_mesti_chose(store_copy, tmp_path):
    store, ds = store_copy
    runner = CliRunner()
    common = ["--store", str(tmp_path / "store"), "--dataset", ds, "--workers", "1", "--quiet"]
    result = runner.invoke(app, ["build-mesti", *common, "--size", "16", "--apex", "middle"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["build-flow", *common])  # no --apex: the stored apex entry
    assert result.exit_code == 0, result.output
    store = open_store(str(tmp_path / "store"))
    (apex,) = store.ls(ds, "apex")
    assert apex.params == {"mode": "middle", "fallback": "middle"}
    (mesti,), (flow,) = store.ls(ds, "mesti"), store.ls(ds, "flow")
    assert mesti.inputs["apex"] == flow.inputs["apex"] == apex.key
    n = store.manifest(ds)["n_frames"].to_numpy()
    assert store.read(ds, "mesti", name="apex")[:, 0].tolist() == ((n - 1) // 2).tolist()


def test_a_training_run_names_the_apex_entry_behind_each_input(store_copy):
    store, ds = store_copy
    overrides = {"apex": {"mode": "middle"}, "mesti": {"size": 16}, "flow-image": {"size": 8}}
    plan = build_plan(store, ds, ["mesti", "flow-image"], overrides)
    assert not run_plan(store, ds, plan, workers=1).failures
    apex_key = next(p.key for p in plan if p.stage.name == "apex")
    data = load_training_inputs(store, ds, {"mesti": "mesti", "flow": "flow-image"})
    records = data.provenance["entries"][ds]
    for name in ("mesti", "flow"):
        upstream = records[name]["upstream"]
        assert upstream["apex"]["key"] == apex_key
        assert upstream["apex"]["params"] == {"mode": "middle", "fallback": "middle"}
        assert upstream["apex"]["entry"] == f"{ds}/apex/{apex_key}"
    assert records["mesti"]["inputs"]["apex"] == apex_key and "flow" in records["flow"]["upstream"]
    assert {"align", "equalize", "ingest"} <= set(records["flow"]["upstream"])
