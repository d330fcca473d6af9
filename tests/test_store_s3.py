"""Sharing a store: the same store tests against a local S3 server (moto) and a folder; read-only consumers;
xarray and plain zarr access.

The S3 server runs on 127.0.0.1 on a free port inside the test run; the store reaches it through the standard
``AWS_*`` variables only (endpoint, credentials), as a lab's would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import fsspec
import numpy as np
import pytest

from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.clip_pass import process_clip
from mer.pipeline.context import ClipContext
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import prepare_entries, run_plan
from mer.pipeline.stage import Output, Stage, get_stage, register
from mer.store import StoreError, open_store

pytest.importorskip("moto")
from moto.server import ThreadedMotoServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUCKET = "mer-lab"
STAGE = "test-share"
STAGES = ["ingest", STAGE]


@dataclass(frozen=True)
class ShareParams:
    delay: float = 0.0  # seconds per clip (the concurrency test needs clips that take a moment)


def _compute(ctx: ClipContext, params: ShareParams) -> dict[str, np.ndarray]:
    if params.delay:
        time.sleep(params.delay)
    frames = ctx.frames().astype(np.float32)
    return {"image": np.ascontiguousarray(frames[0, :8, :8, :].transpose(2, 0, 1)), "series": frames.mean((1, 2, 3))}


def register_share_stage() -> None:
    try:
        get_stage(STAGE)
    except ValueError:
        register(
            Stage(
                STAGE,
                "1",
                ShareParams,
                ("ingest",),
                (Output("image", "float32", lambda p: (3, 8, 8), ("channel", "y", "x")), Output("series", "float32")),
                _compute,
            )
        )


register_share_stage()


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3 server with one bucket; ``AWS_*`` point at it for the module (and its child processes)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "mer-test",
        "AWS_SECRET_ACCESS_KEY": "mer-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    fsspec.filesystem("s3").clear_instance_cache()
    server.stop()


@pytest.fixture(params=["folder", "s3"])
def location(request, tmp_path) -> str:
    if request.param == "folder":
        return str(tmp_path / "store")
    request.getfixturevalue("s3_endpoint")
    return f"s3://{BUCKET}/{tmp_path.name}/store"


def objects(location: str) -> dict[str, bytes]:
    """Every object of a store by key, run reports and the stat cache aside (a machine's own bookkeeping)."""
    fs, root = fsspec.core.url_to_fs(location, **({"use_listings_cache": False} if "://" in location else {}))
    fs.invalidate_cache()
    out = {}
    for path in fs.find(root):
        key = path[len(root.rstrip("/")) + 1 :]
        if key.split("/")[0] not in ("_runs", "_cache") and not key.rsplit("/", 1)[-1].startswith("."):
            out[key] = fs.cat_file(path)
    return out


def put(location: str, key: str, data: bytes) -> None:
    """Write one object behind the store's back (damage, a kill's leftovers)."""
    fs, root = fsspec.core.url_to_fs(location)
    path = f"{root}/{key}"
    if "://" not in location:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def committed(location: str) -> dict[str, bytes]:
    """Chunks and commit markers of every entry (group documents carry creation times)."""
    return {k: v for k, v in objects(location).items() if "/c/" in k or "/_done/" in k}


def _prepare(location: str, tiny_dataset, delay: float = 0.0):
    root, manifest = tiny_dataset
    st = open_store(location, "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    return st, build_plan(st, "tiny", STAGES, {STAGE: {"delay": delay}} if delay else None)


def _expected_images(manifest) -> np.ndarray:
    first = [cv2.cvtColor(cv2.imread(p[0]), cv2.COLOR_BGR2RGB) for p in manifest["frame_paths"]]
    return np.stack([f[:8, :8, :].transpose(2, 0, 1).astype(np.float32) for f in first])


# ------------------------------------------------------------------------------------------------ the suite
def test_round_trip_verify_catches_an_altered_object_and_repair_recomputes_it(location, tiny_dataset):
    _, manifest = tiny_dataset
    st, plan = _prepare(location, tiny_dataset)
    report = run_plan(st, "tiny", plan, workers=1)
    assert report.computed == {"ingest": 4, STAGE: 4} and report.failures == []
    before = objects(location)

    reader = open_store(location, "r")
    np.testing.assert_array_equal(reader.read("tiny", STAGE, name="image"), _expected_images(manifest))
    assert [i.status for i in reader.ls()] == ["complete", "complete"]
    assert reader.verify() == []

    chunk = next(k for k in before if k.startswith(f"tiny/{STAGE}/") and "/image/c/2/" in k)
    data = bytearray(before[chunk])
    data[-1] ^= 1
    put(location, chunk, bytes(data))
    issues = open_store(location, "r").verify()
    assert [(i.clip, i.problem) for i in issues] == [(manifest.iloc[2]["clip_id"], "altered chunk")]

    writer = open_store(location, "a")
    assert writer.repair()[0].startswith("withdrew")
    report = run_plan(writer, "tiny", build_plan(writer, "tiny", STAGES), workers=1)
    assert report.computed == {"ingest": 0, STAGE: 1}
    assert open_store(location, "r").verify() == []
    assert objects(location) == before


def test_kill_and_resume_gives_the_bytes_of_an_uninterrupted_run(location, tiny_dataset, tmp_path):
    reference = str(tmp_path / "reference")
    st, plan = _prepare(reference, tiny_dataset)
    run_plan(st, "tiny", plan, workers=1)

    st, plan = _prepare(location, tiny_dataset)
    entries = prepare_entries(st, "tiny", plan)
    rows = st.manifest("tiny").to_dict(orient="records")
    for index in (0, 1):
        process_clip(st, "tiny", plan, index, rows[index])
    # the "kill": clip 2 half written (a chunk, no marker) under a claim whose holder died long ago
    put(location, f"{entries[1].ref.path}/image/c/2/0/0/0", b"half a chunk")
    dead = {"host": "gone-node", "pid": 1, "time": 0.0}
    put(location, f"{entries[1].ref.path}/_claims/000002.json", json.dumps(dead).encode())

    report = run_plan(open_store(location, "a"), "tiny", plan, workers=1)
    assert report.computed == {"ingest": 2, STAGE: 2} and report.skipped == 2
    assert committed(location) == committed(reference)
    assert open_store(location, "r").verify() == []


WRITER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_store_s3 import STAGES, STAGE, register_share_stage
    import mer.pipeline.catalog  # registers the built-in stages
    from mer.pipeline.graph import build_plan
    from mer.pipeline.runner import run_plan
    from mer.store import open_store
    register_share_stage()
    st = open_store({location!r}, "a")
    sys.stdin.readline()  # start together
    report = run_plan(st, "tiny", build_plan(st, "tiny", STAGES, {{STAGE: {{"delay": 0.3}}}}), workers=1,
                      poll_seconds=0.1)
    print(json.dumps({{"computed": [o.clip_id for o in report.outcomes if STAGE in o.computed],
                      "failures": [o.error for o in report.failures]}}))
    """
)


def test_two_concurrent_writers_compute_each_clip_once(location, tiny_dataset):
    _, manifest = tiny_dataset
    st, plan = _prepare(location, tiny_dataset, delay=0.3)
    prepare_entries(st, "tiny", plan)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    script = WRITER.format(tests=str(REPO / "tests"), location=location)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env=env, cwd=REPO)
        for _ in range(2)
    ]
    time.sleep(4.0)  # both imported and waiting
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    computed = [clip for r in results for clip in r["computed"]]
    assert all(r["failures"] == [] for r in results)
    assert sorted(computed) == sorted(manifest["clip_id"])  # every clip once, by one writer or the other
    reader = open_store(location, "r")
    assert reader.verify() == [] and reader.done_mask(reader.find("tiny", STAGE)).all()
    np.testing.assert_array_equal(reader.read("tiny", STAGE, name="image"), _expected_images(manifest))


# ------------------------------------------------------------------------------------------ read-only consumers
def _tree_state(location: str) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time (folder), or every object's bytes (S3)."""
    if "://" in location:
        return {k: (v, 0) for k, v in objects(location).items()}
    root = Path(location)
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_a_read_only_store_serves_every_read_command_and_writes_nothing(location, tiny_dataset, tmp_path):
    from typer.testing import CliRunner

    from mer.cli import app
    from mer.store.export import export_entry_h5
    from mer.train.store_inputs import load_training_data

    _, manifest = tiny_dataset
    st, plan = _prepare(location, tiny_dataset)
    run_plan(st, "tiny", plan, workers=1)
    state = _tree_state(location)

    ro = open_store(location, "r")
    entry = ro.find("tiny", STAGE)
    assert [i.n_done for i in ro.ls()] == [4, 4]
    assert ro.info_of(entry.ref).params == {"delay": 0.0}
    np.testing.assert_array_equal(ro.read_entry(entry, name="image"), _expected_images(manifest))
    assert ro.verify() == []
    assert export_entry_h5(ro, entry, tmp_path / "out.h5") == 4
    data = load_training_data(ro, "tiny", STAGE, labels="3class")
    np.testing.assert_array_equal(data.X, _expected_images(manifest))
    for write in (
        lambda: ro.repair(),
        lambda: ro.commit_clip(entry, 0, {"image": np.zeros((3, 8, 8), np.float32), "series": np.zeros(5, np.float32)}),
        lambda: ro.ensure_entry(entry.ref, list(entry.outputs.values()), entry.attrs),
        lambda: ro.withdraw_clip(entry, 0),
        lambda: ro.try_claim(entry, 0),
        lambda: ro.record_failure(entry, 0, STAGE, "x"),
        lambda: ro.write_run_report("x", {}),
        lambda: ro.write_manifest("tiny", manifest, {}),
    ):
        with pytest.raises(StoreError, match="open read-only; this needs write access"):
            write()
    runner = CliRunner()
    for args in (["store", "ls", location], ["store", "verify", location],
                 ["store", "export", location, f"tiny/{STAGE}", "--to", str(tmp_path / "cli.h5")],
                 ["store", "export", location, f"tiny/{STAGE}", "--to", str(tmp_path / "cli.zarr.zip")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert _tree_state(location) == state


# ------------------------------------------------------------------------------------------ xarray and plain zarr
def test_xarray_and_plain_zarr_open_an_entry_with_named_dimensions_and_clip_ids(location, tiny_dataset, tmp_path):
    xr = pytest.importorskip("xarray")
    import zarr

    _, manifest = tiny_dataset
    st, plan = _prepare(location, tiny_dataset)
    run_plan(st, "tiny", plan, workers=1)
    entry = st.find("tiny", STAGE)
    expected = st.read_entry(entry, name="image")

    ds = xr.open_zarr(location, group=entry.ref.path, consolidated=False)
    image = ds["image"]
    assert image.dims == ("clip", "channel", "y", "x")
    assert image["clip_id"].values.tolist() == list(manifest["clip_id"])
    np.testing.assert_array_equal(image.values, expected)
    one = ds.set_xindex("clip_id").sel(clip_id=manifest.iloc[2]["clip_id"])["image"].values
    np.testing.assert_array_equal(one, st.read("tiny", STAGE, clip=manifest.iloc[2]["clip_id"], name="image"))

    group = zarr.open_group(location, path=entry.ref.path, mode="r")
    assert group["image"].metadata.dimension_names == ("clip", "channel", "y", "x")
    assert group["clip_id"][...].tolist() == list(manifest["clip_id"])
    np.testing.assert_array_equal(group["image"][...], expected)

    from mer.store.export import export_entry_zarr_zip

    assert export_entry_zarr_zip(st, entry, tmp_path / "entry.zarr.zip") == 4
    exported = xr.open_zarr(zarr.storage.ZipStore(tmp_path / "entry.zarr.zip", mode="r"), consolidated=False)
    assert exported["image"].dims == image.dims
    assert exported["clip_id"].values.tolist() == list(manifest["clip_id"])
    np.testing.assert_array_equal(exported["image"].values, expected)
    clip = manifest.iloc[1]["clip_id"]
    zipped = zarr.open_group(zarr.storage.ZipStore(tmp_path / "entry.zarr.zip", mode="r"), mode="r")
    per_clip = zipped[f"clips/{clip}/series"]
    np.testing.assert_array_equal(per_clip[...], st.read_entry(entry, clip=clip, name="series"))


# ------------------------------------------------------------------------------------------ the command line
def test_cli_preprocess_and_ls_on_a_bucket_given_by_storage_options(s3_endpoint, tiny_dataset, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mer.cli import app
    from mer.store.backend import STORAGE_OPTIONS_ENV

    root, manifest = tiny_dataset
    lines = [f"{r.subject},{r.clip},{r.onset},{r.apex},{r.offset},{r.emotion}" for r in manifest.itertuples()]
    (root / "annotations.csv").write_text("subject,clip,onset,apex,offset,emotion\n" + "\n".join(lines) + "\n")
    location = f"s3://{BUCKET}/{tmp_path.name}/cli"
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the endpoint now comes from --storage-option only
    monkeypatch.delenv(STORAGE_OPTIONS_ENV, raising=False)
    option = ["--storage-option", f"endpoint_url={s3_endpoint}"]
    runner = CliRunner()
    done = runner.invoke(app, [*option, "preprocess", "--root", str(root), "--store", location, "--name", "tiny",
                               "--stages", "ingest", "--workers", "1", "--quiet"])
    assert done.exit_code == 0, done.output
    # the options reached the store through the environment (workers inherit it) for that command only: a later
    # command, or a later test in this process, does not talk to this (by then stopped) server
    assert STORAGE_OPTIONS_ENV not in os.environ
    listing = runner.invoke(app, [*option, "store", "ls", location])
    assert listing.exit_code == 0 and "complete" in listing.output and "tiny" in listing.output
    endpoint = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    first = manifest.iloc[0]["clip_id"]
    frames = open_store(location, "r", storage_options=endpoint).read("tiny", "ingest", clip=first)
    assert frames.shape == (5, 32)
    bad = runner.invoke(app, ["--storage-option", "endpoint_url", "store", "ls", location])
    assert bad.exit_code == 2 and "expected key=value" in bad.output


def test_verify_checks_the_clip_id_coordinate_and_repair_rewrites_it(tiny_dataset, tmp_path):
    location = str(tmp_path / "store")
    st, plan = _prepare(location, tiny_dataset)
    run_plan(st, "tiny", plan, workers=1)
    before = objects(location)
    entry = st.find("tiny", STAGE)
    coordinate = next(k for k in before if k.startswith(f"{entry.ref.path}/clip_id/c/"))
    put(location, coordinate, before[coordinate][:-3])
    issues = open_store(location, "r").verify()
    assert [(i.entry, i.problem) for i in issues] == [(entry.ref.path, "damaged clip-id coordinate")]
    assert open_store(location, "a").repair() == [f"rewrote {entry.ref.path}/clip_id from the entry's clip ids"]
    assert objects(location) == before
