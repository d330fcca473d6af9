"""A store behind an fsspec URL (``memory://`` stands in for object storage): write, read, verify."""

from __future__ import annotations

import fsspec
import numpy as np

from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.store import open_store


def test_fsspec_store_round_trip_and_verify(tiny_dataset, tmp_path):
    root, manifest = tiny_dataset
    url = f"memory://mer-test-{tmp_path.name}"
    st = open_store(url, "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    report = run_plan(st, "tiny", build_plan(st, "tiny", ["ingest"]), workers=1)
    assert report.computed == {"ingest": 4}

    local = open_store(str(tmp_path / "local"), "a")
    write_dataset_manifest(local, "tiny", manifest, root, "folder", None)
    run_plan(local, "tiny", build_plan(local, "tiny", ["ingest"]), workers=1)

    remote = open_store(url, "r")
    clip = manifest.iloc[1]["clip_id"]
    np.testing.assert_array_equal(remote.read("tiny", "ingest", clip=clip), local.read("tiny", "ingest", clip=clip))
    assert [i.key for i in remote.ls()] == [i.key for i in local.ls()]
    assert remote.verify() == []

    fs = fsspec.filesystem("memory")
    chunk = next(p for p in fs.find(url.removeprefix("memory://")) if "/frame_sha256/c/" in p)
    data = bytearray(fs.cat_file(chunk))
    data[-1] ^= 1
    fs.pipe_file(chunk, bytes(data))
    assert [i.problem for i in open_store(url, "r").verify()] == ["altered chunk"]
