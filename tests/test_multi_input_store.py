"""Raw onset/apex stages, inputs by name from the store (stage arrays + manifest AU column), and
``mer-cli train --model facesleuth`` end to end with provenance, recipe values and the θ figure (issue 14)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.datasets import AU_LIST, parse_aus
from mer.pipeline.temporal.single_image import raw_frame
from mer.store import open_store
from mer.train.store_inputs import load_training_inputs, parse_input_map, parse_source

SIZE = 32
TINY_OPTIONS = [
    "widths=[8,8,16,32]", "stem_channels=8", "fpf_embed=8", "fpf_depths=[1,1,1]", "fpf_heads=[1,2,4]", "window=2",
    "hidden=[16,8]",
]


@pytest.fixture(scope="module")
def pair_store(face_store, tmp_path_factory):
    base, dataset = face_store
    target = tmp_path_factory.mktemp("pairs") / "store"
    shutil.copytree(base / "store", target)
    for kind in ("onset-raw", "apex-frame-raw"):
        args = ["build-input", "--store", str(target), "--dataset", dataset, "--kind", kind, "--size", str(SIZE)]
        result = CliRunner().invoke(app, [*args, "--workers", "1", "--quiet"])
        assert result.exit_code == 0, result.output
    return target, dataset


def test_raw_frames_are_the_aligned_crop_without_rescaling(pair_store):
    target, dataset = pair_store
    st = open_store(str(target))
    manifest = st.manifest(dataset)
    clip = manifest["clip_id"][0]
    frames = st.read(dataset, "align", clip=clip)
    onset = st.read(dataset, "onset-raw", clip=clip)
    apex = st.read(dataset, "apex-frame-raw", clip=clip)
    position, frame_number = st.read(dataset, "apex-frame-raw", clip=clip, name="apex")
    assert onset.dtype == np.uint8 and onset.shape == (3, SIZE, SIZE)
    np.testing.assert_array_equal(onset, raw_frame(frames[0], SIZE))
    np.testing.assert_array_equal(apex, raw_frame(frames[position], SIZE))
    assert frame_number == int(manifest["apex"][0]) and position == list(manifest["frame_numbers"][0]).index(
        frame_number
    )
    # no per-image min-max: a dark frame stays dark
    dark = (np.full((40, 40, 3), 30, np.uint8))
    assert raw_frame(dark, 16).max() == 30


def test_named_inputs_are_aligned_and_provenance_lists_every_entry(pair_store):
    target, dataset = pair_store
    st = open_store(str(target))
    data = load_training_inputs(
        st, dataset, {"onset": "onset-raw", "apex": "apex-frame-raw:image", "au": "manifest:au_vector"}
    )
    manifest = st.manifest(dataset).set_index("clip_id")
    assert set(data.inputs) == {"onset", "apex", "au"} and len(data.meta) == len(manifest)
    assert data.inputs["au"].shape == (len(manifest), 21)
    for i, clip in enumerate(data.meta["clip_id"]):
        np.testing.assert_array_equal(data.inputs["onset"][i], st.read(dataset, "onset-raw", clip=clip))
        numbers = parse_aus(manifest.loc[clip, "action_units"]).numbers
        expected = [1.0 if au in numbers else 0.0 for au in AU_LIST]
        assert data.inputs["au"][i].tolist() == expected
    prov = data.provenance
    entries = prov["entries"][dataset]
    assert entries["onset"]["entry"].startswith(f"{dataset}/onset-raw/") and entries["apex"]["array"] == "image"
    assert entries["au"]["source"] == "manifest:au_vector"
    assert prov["manifests"][dataset] == st.manifest_meta(dataset)["hash"] == entries["onset"]["manifest_hash"]
    with pytest.raises(ValueError, match="no column"):
        load_training_inputs(st, dataset, {"au": "manifest:nope"})


def test_source_syntax():
    assert parse_source("roi-flow:roi_flow@ab12") == parse_source("roi-flow:roi_flow", "ab12")
    assert str(parse_source("mesti")) == "mesti" and parse_source("manifest:au_vector").is_manifest
    assert parse_input_map("onset=onset-raw, apex=apex-frame-raw") == {"onset": "onset-raw", "apex": "apex-frame-raw"}
    for bad in ("onset", "onset=", "a=x,a=y"):
        with pytest.raises(ValueError):
            parse_input_map(bad)


def _train(store, dataset, out, *extra):
    args = ["train", "--store", str(store), "--dataset", dataset, "--model", "facesleuth", "--device", "cpu"]
    args += ["--out", str(out), "--epochs", "2", "--batch-size", "3", *extra]
    for opt in TINY_OPTIONS:
        args += ["--option", opt]
    return CliRunner().invoke(app, args)


def test_train_facesleuth_from_the_store_with_a_recipe(pair_store, tmp_path):
    target, dataset = pair_store
    out = tmp_path / "fs"
    result = _train(target, dataset, out, "--recipe", "facesleuth-paper")
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["recipe"] == "facesleuth-paper"
    train = cfg["train"]
    assert train["epochs"] == 2 and train["batch_size"] == 3  # options override the recipe...
    assert (train["optimizer"], train["lr"], train["weight_decay"], train["lr_decay"]) == ("adamw", 8e-4, 0.6, 0.987)
    assert train["lr_groups"] == {"theta": 1e-2} and train["crop_padding"] == 4  # ...the rest is the recipe's
    assert cfg["input"] == "onset=onset-raw,apex=apex-frame-raw,au=manifest:au_vector"
    assert cfg["input_shape"] == {"onset": [3, SIZE, SIZE], "apex": [3, SIZE, SIZE], "au": [21]}
    prov = json.loads((out / "provenance.json").read_text())
    assert set(prov["entries"][dataset]) == {"onset", "apex", "au"}
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "angles.png").exists() and "learned SOA angles" in report.output


def test_train_cli_input_errors_are_one_line(pair_store, tmp_path):
    target, dataset = pair_store
    result = _train(target, dataset, tmp_path / "x", "--input", "mesti")
    assert result.exit_code != 0 and "takes inputs onset, apex, au" in result.output
    result = _train(target, dataset, tmp_path / "y", "--input", "nose=onset-raw")
    assert result.exit_code != 0 and "has no input nose" in result.output
    result = _train(target, dataset, tmp_path / "z", "--recipe", "nope")
    assert result.exit_code != 0 and "unknown recipe" in result.output
    assert "Traceback" not in result.output
