"""MESTI and the other single-image stages on stored faces: apex choice, stored values, errors (issue 8)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.pipeline.temporal.apex import detected_apex
from mer.pipeline.temporal.single_image import encode_clip
from mer.store import open_store


@pytest.fixture
def store_copy(face_store, tmp_path):
    base, dataset = face_store
    shutil.copytree(base / "store", tmp_path / "store")
    return open_store(str(tmp_path / "store"), "a"), dataset, base / "data"


def _build(store, dataset, stage, apex=None, **params):
    plan = build_plan(store, dataset, [stage], {stage: params} | ({"apex": apex} if apex else {}))
    report = run_plan(store, dataset, plan, workers=1)
    return plan[-1], report


def test_mesti_stores_the_rank_pooled_equalised_clip_and_its_annotated_apex(store_copy):
    store, ds, _ = store_copy
    planned, report = _build(store, ds, "mesti", size=32)
    assert report.computed["mesti"] == 6 and not report.failures
    images = store.read(ds, "mesti")
    apex = store.read(ds, "mesti", name="apex")
    manifest = store.manifest(ds)
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8
    for i, row in manifest.iterrows():
        numbers = list(row["frame_numbers"])
        assert apex[i].tolist() == [numbers.index(int(row["apex"])), int(row["apex"])]
        frames = store.read(ds, "equalize", clip=row["clip_id"])
        expected = encode_clip(frames, "mesti", apex=apex[i, 0], scheme="mesti", size=32, norm="minmax")
        np.testing.assert_array_equal(images[i], expected)
        assert images[i].min() == 0 and images[i].max() == 255


def test_middle_apex_and_zscore(store_copy):
    store, ds, _ = store_copy
    _build(store, ds, "mesti", apex={"mode": "middle"}, norm="zscore", size=16)
    images = store.read(ds, "mesti")
    assert images.dtype == np.float32
    np.testing.assert_allclose(images.reshape(6, -1).mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(images.reshape(6, -1).std(axis=1), 1, atol=1e-3)
    n_frames = store.manifest(ds)["n_frames"].to_numpy()
    assert store.read(ds, "mesti", name="apex")[:, 0].tolist() == ((n_frames - 1) // 2).tolist()


def test_missing_apex_is_a_clip_error_unless_a_fallback_is_given(face_store, tmp_path):
    base, _ = face_store
    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    sheet = pd.read_csv(data / "annotations.csv")
    sheet["apex"] = sheet["apex"].astype("object")
    sheet.loc[1, "apex"] = ""
    sheet.to_csv(data / "annotations.csv", index=False)
    store = str(tmp_path / "store")
    runner = CliRunner()
    args = ["preprocess", "--root", str(data), "--store", store, "--name", "synth", "--quiet", "--workers", "1"]
    assert runner.invoke(app, args).exit_code == 0
    build = ["build-mesti", "--store", store, "--dataset", "synth", "--size", "16", "--workers", "1", "--quiet"]
    failed = runner.invoke(app, [*build, "--apex-fallback", "none"])
    assert failed.exit_code == 1
    missing_clip = f"{sheet.loc[1, 'subject']}/{sheet.loc[1, 'clip']}"
    assert missing_clip in " ".join(failed.output.split()) and "no annotated apex" in " ".join(failed.output.split())
    ok = runner.invoke(app, [*build, "--apex-fallback", "middle"])
    assert ok.exit_code == 0, ok.output
    st = open_store(store)
    entry = [i for i in st.ls("synth", "mesti") if i.status == "complete"][0]
    apex = st.read("synth", "mesti", key=entry.key, name="apex")
    n = int(st.manifest("synth").loc[1, "n_frames"])
    assert apex[1, 0] == (n - 1) // 2
    # the apex stage says which clip fell back: rule 1 (middle) for it, 0 (annotated) for the others
    rule = st.read("synth", "apex", key=entry.inputs["apex"], name="rule")[:, 0]
    assert rule.tolist() == [1 if i == 1 else 0 for i in range(len(rule))]
    # the default (no option) is the same rule: build-mesti again reuses the complete apex entry, computes nothing
    again = runner.invoke(app, build)
    assert again.exit_code == 0, again.output
    assert [i.key for i in st.ls("synth", "mesti") if i.status == "complete"] == [entry.key]


def test_detected_apex_is_near_the_annotated_one(face_store):
    base, ds = face_store
    store = open_store(str(base / "store"))
    errors = []
    for _, row in store.manifest(ds).iterrows():
        frames = store.read(ds, "equalize", clip=row["clip_id"])
        errors.append(abs(detected_apex(frames) - list(row["frame_numbers"]).index(int(row["apex"]))))
    # s02_c02's motion curve is a plateau from frame 21 to 27 (0.244-0.248 with landmarks v4, 0.235-0.237 with
    # v3): the largest value moves by 4 frames with the alignment. bench_apex's 16 clips: mean 0.62, max 2 either way.
    assert np.mean(errors) <= 1.5 and max(errors) <= 4, errors


def test_other_inputs_dynamic_onset_diff(store_copy):
    store, ds, _ = store_copy
    for stage, params in (("dynamic", {}), ("onset", {}), ("diff", {"apex": {"mode": "annotated"}})):
        _build(store, ds, stage, size=16, **params)
    clip = store.clips(ds)[0]
    frames = store.read(ds, "equalize", clip=clip)
    np.testing.assert_array_equal(store.read(ds, "onset")[0], encode_clip(frames, "onset", size=16))
    np.testing.assert_array_equal(store.read(ds, "dynamic")[0], encode_clip(frames, "dynamic", size=16))
    assert store.read(ds, "onset", name="apex")[0].tolist() == [-1, -1]
    assert store.read(ds, "diff", name="apex")[0, 0] >= 0


def test_unknown_parameters_fail_before_any_clip(store_copy):
    store, ds, _ = store_copy
    with pytest.raises(ValueError, match="scheme"):
        build_plan(store, ds, ["mesti"], {"mesti": {"scheme": "nope"}})
    with pytest.raises(ValueError, match="unknown parameter"):
        build_plan(store, ds, ["mesti"], {"mesti": {"apx": "middle"}})
    with pytest.raises(ValueError, match="unknown parameter"):  # the apex is the apex stage's, not MESTI's
        build_plan(store, ds, ["mesti"], {"mesti": {"apex": "middle"}})
    with pytest.raises(ValueError, match="apex mode='peak'"):
        build_plan(store, ds, ["mesti"], {"apex": {"mode": "peak"}})
