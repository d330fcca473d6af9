"""Array files written without zarr's API: the same bytes as zarr writes, stale files removed, durable before the
commit marker."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from mer.store import open_store
from mer.store.arrays import implicit_group_document, regular_chunks, template_for
from mer.store.commit import ARRAY_CONFIG, chunk_shape, compressors_for
from mer.store.entries import EntryRef, OutputSpec

CLIP = "s01/s01_c01"
OUTPUTS = [
    OutputSpec("frames", "uint8"),  # blosc lz4, chunked along frames (edge chunk padded)
    OutputSpec("points", "float32"),  # zstd, one chunk
    OutputSpec("pairs", "int16"),
    OutputSpec("flag", "bool"),
    OutputSpec("score", "float64"),  # 0-d, stored as shape (1,)
    OutputSpec("row", "float32", stacked=True, row_shape=(3, 4)),
    OutputSpec("count", "int32", stacked=True, row_shape=(2,)),
]


def clip_arrays(seed: int, n_frames: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "frames": rng.integers(0, 256, size=(n_frames, 256, 256, 3), dtype=np.uint8),
        "points": rng.normal(size=(n_frames, 68, 2)).astype(np.float32),
        "pairs": rng.integers(-300, 300, size=(n_frames, 2)).astype(np.int16),
        "flag": rng.random(n_frames) > 0.5,
        "score": np.float64(rng.normal()),
        "row": rng.normal(size=(3, 4)).astype(np.float32),
        "count": rng.integers(0, 99, size=2).astype(np.int32),
    }


def new_entry(location: str, n_clips: int = 2):
    st = open_store(location, "a")
    clip_ids = [CLIP, "s01/s01_c02"][:n_clips]
    attrs = {"clip_ids": clip_ids, "primary": "frames", "recipe": "r"}
    return st, st.ensure_entry(EntryRef("ds", "stage", "key"), OUTPUTS, attrs)


def files(root: Path, below: str = "") -> dict[str, bytes]:
    top = root / below
    return {str(p.relative_to(root)): p.read_bytes() for p in top.rglob("*") if p.is_file() and p.name[0] != "."}


def marker_matches_files(st, entry, index: int) -> bool:
    """Every chunk and metadata checksum of the clip's commit marker matches the file on disk."""
    marker = st.marker(entry, index)
    recorded = {**marker["chunks"], **marker["meta"]}
    root = Path(st.location) / entry.ref.path
    return len(recorded) > 0 and all(
        hashlib.sha256((root / key).read_bytes()).hexdigest() == digest for key, digest in recorded.items()
    )


def zarr_reference(root: Path, entry_path: str, index: int, arrays: dict[str, np.ndarray]) -> None:
    """What the store wrote before this module existed: zarr's own create_array / setitem, file by file."""
    zstore = zarr.storage.LocalStore(root)
    for spec in OUTPUTS:
        arr = np.ascontiguousarray(arrays[spec.name])
        if spec.stacked:
            zarr.open_array(store=zstore, path=f"{entry_path}/{spec.name}", mode="r+").with_config(ARRAY_CONFIG)[
                index
            ] = arr
            continue
        arr = arr.reshape(1) if arr.ndim == 0 else arr
        zarr.create_array(
            store=zstore,
            name=f"{entry_path}/clips/{CLIP}/{spec.name}",
            shape=arr.shape,
            chunks=chunk_shape(arr.shape, arr.dtype.itemsize),
            dtype=arr.dtype,
            fill_value=0,
            config=ARRAY_CONFIG,
            overwrite=True,
            compressors=compressors_for(arr.dtype, arr.ndim),
        )[...] = arr


DTYPES = ["uint8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (5, 3), (45, 64, 64, 3), (3, 68, 2), (2, 9, 9, 2)])
def test_rendered_metadata_and_chunks_are_zarrs_own_bytes(dtype, shape):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=shape) * 60).astype(dtype)
    chunks = chunk_shape(arr.shape, arr.dtype.itemsize)
    if shape == (45, 64, 64, 3):
        chunks = (20, *shape[1:])  # an edge chunk of 5 rows, padded with the fill value as zarr does
    compressors = compressors_for(arr.dtype, arr.ndim)
    written: dict = {}
    zarr.create_array(
        store=zarr.storage.MemoryStore(store_dict=written), name="a", shape=shape, chunks=chunks, dtype=arr.dtype,
        fill_value=0, config=ARRAY_CONFIG, compressors=compressors,
    )[...] = arr
    template = template_for(arr.dtype, arr.ndim, compressors, ARRAY_CONFIG)
    assert template is not None
    assert template.document(shape, chunks) == written["a/zarr.json"].to_bytes()
    ours = {f"a/{key}": template.encoder.encode(block) for key, block in regular_chunks(arr, chunks)}
    assert ours == {k: v.to_bytes() for k, v in written.items() if k.startswith("a/c/")}


def test_arrays_outside_the_rendered_path_are_left_to_zarr():
    assert template_for(np.dtype("U4"), 1, "auto", ARRAY_CONFIG) is None
    assert template_for(np.dtype("float32"), 0, "auto", ARRAY_CONFIG) is None


def test_a_commit_writes_the_files_zarr_writes_byte_for_byte(tmp_path):
    st, entry = new_entry(str(tmp_path / "ours"))
    _, reference_entry = new_entry(str(tmp_path / "zarr"))
    arrays = clip_arrays(seed=1, n_frames=50)
    st.commit_clip(entry, 0, arrays, fingerprint="f")
    zarr_reference(tmp_path / "zarr", reference_entry.ref.path, 0, arrays)

    ours, theirs = files(tmp_path / "ours"), files(tmp_path / "zarr")
    marker = ours.pop(f"{entry.ref.path}/_done/000000.json")
    assert set(ours) == set(theirs)
    differing = sorted(k for k in ours if ours[k] != theirs[k])
    assert differing == [], differing
    assert f"{entry.ref.path}/clips/{CLIP}/frames/c/2/0/0/0" in ours  # 50 frames: three chunks of 21 rows
    assert f"{entry.ref.path}/clips/s01/zarr.json" in ours  # zarr's implicit parent groups, also written
    assert ours[f"{entry.ref.path}/clips/zarr.json"] == implicit_group_document()
    assert b'"fingerprint":"f"' in marker
    assert marker_matches_files(st, entry, 0)
    for name, value in arrays.items():
        np.testing.assert_array_equal(st.read_entry(entry, clip=CLIP, name=name).reshape(np.shape(value)), value)


def test_a_recommit_of_another_shape_leaves_only_the_new_arrays_files(tmp_path):
    st, entry = new_entry(str(tmp_path / "ours"))
    st.commit_clip(entry, 0, clip_arrays(seed=1, n_frames=50))
    st.withdraw_clip(entry, 0)
    (tmp_path / "ours" / entry.ref.path / "clips" / CLIP / "points" / "zarr.json").write_bytes(b"{damaged")
    shorter = clip_arrays(seed=2, n_frames=12)
    st.commit_clip(entry, 0, shorter)

    _, reference_entry = new_entry(str(tmp_path / "zarr"))
    zarr_reference(tmp_path / "zarr", reference_entry.ref.path, 0, shorter)
    below = f"{entry.ref.path}/clips"
    assert files(tmp_path / "ours", below) == files(tmp_path / "zarr", below)  # no chunk of 50 frames is left
    assert marker_matches_files(st, entry, 0)
    np.testing.assert_array_equal(st.read_entry(entry, clip=CLIP, name="frames"), shorter["frames"])


@pytest.fixture
def synced(monkeypatch) -> list[str]:
    """The paths ``os.fsync`` is called on from now on, in order (the real fsync still runs)."""
    paths: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return paths


def test_every_file_a_marker_covers_is_on_disk_before_the_marker(tmp_path, synced):
    """fsync of every chunk and metadata file, all before the marker's own (in commit and in reuse)."""
    st, entry = new_entry(str(tmp_path / "s"))
    synced.clear()  # from the first commit on
    st.commit_clip(entry, 0, clip_arrays(seed=3, n_frames=30), fingerprint="same")
    other = st.ensure_entry(EntryRef("ds", "stage", "key2"), OUTPUTS, {**entry.attrs, "clip_ids": [CLIP]})
    assert st.reuse_clip(other, 0, "same")

    for ref in (entry.ref, other.ref):
        marker = st.marker(st.entry(ref), 0)
        covered = [f"{ref.path}/{k}" for k in marker["chunks"]]
        covered += [f"{ref.path}/{k}" for k in marker["meta"] if k.startswith("clips/")]
        assert len(covered) == 2 + 6 + 5  # stacked rows; chunks of the per-clip arrays (frames: 2); their metadata
        root = str((tmp_path / "s").resolve())
        marker_at = max(i for i, p in enumerate(synced) if p.startswith(f"{root}/{ref.path}/_done/"))
        for key in covered:
            assert f"{root}/{key}" in synced[:marker_at], key


def test_the_stacked_arrays_metadata_and_its_folders_are_on_disk_once_when_the_entry_is_made(tmp_path, synced):
    """What a marker's ``meta`` names outside the clip's folder (the stacked arrays' zarr.json, that zarr writes
    without an fsync), the clip-id coordinate, the entry's group documents, and every folder down to them: synced
    by ensure_entry, before any marker, and never again per clip."""
    st, entry = new_entry(str(tmp_path / "s"))
    at_creation = list(synced)
    st.commit_clip(entry, 0, clip_arrays(seed=3, n_frames=8))
    st.commit_clip(entry, 1, clip_arrays(seed=4, n_frames=8))

    root = Path(st.location)
    stacked = [k for k in st.marker(entry, 0)["meta"] if not k.startswith("clips/")]
    assert sorted(stacked) == ["count/zarr.json", "row/zarr.json"]
    documents = [root / entry.ref.path / key for key in (*stacked, "clip_id/zarr.json", "zarr.json")]
    documents += [root / "ds/zarr.json", root / "ds/stage/zarr.json"]
    for document in documents:
        assert str(document) in at_creation, document
        for folder in document.relative_to(root).parents:  # the folder holding each name, up to the store's own
            assert str(root / folder) in at_creation, folder
    after = set(synced[len(at_creation):])
    assert not after & {str(d) for d in documents}  # once when the entry is made, not per clip
    assert after & {str(root / entry.ref.path / "clips" / CLIP / "frames" / "zarr.json")}  # the clip's own files are


@pytest.fixture
def counted_s3(monkeypatch):
    """A moto S3 server whose requests are logged as (method, key); ``AWS_*`` point at it."""
    pytest.importorskip("moto")
    import logging

    import boto3
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket="mer-bucket")
    log: list[tuple[str, str]] = []
    app = server._server.app

    def logging_app(environ, start_response):
        log.append((environ["REQUEST_METHOD"], environ["PATH_INFO"].removeprefix("/mer-bucket/")))
        return app(environ, start_response)

    server._server.app = logging_app
    yield log
    fsspec.filesystem("s3").clear_instance_cache()
    server.stop()


def test_an_s3_commit_asks_nothing_about_the_files_it_writes(counted_s3):
    st, entry = new_entry("s3://mer-bucket/store")
    counted_s3.clear()
    st.commit_clip(entry, 0, clip_arrays(seed=4, n_frames=8))
    puts = {key for method, key in counted_s3 if method == "PUT"}
    asked = [(m, key) for m, key in counted_s3 if m in ("HEAD", "GET") and key in puts]
    assert f"store/{entry.ref.path}/clips/{CLIP}/frames/zarr.json" in puts
    # only whether the two shared parent groups exist (once a process); zarr's create_array asked about every file
    # and parent level first, about 30 HEAD/GET for these five arrays
    parents = [f"store/{entry.ref.path}/clips/zarr.json", f"store/{entry.ref.path}/clips/s01/zarr.json"]
    assert asked == [("HEAD", key) for key in parents]
    # and the listing of the new, empty clip folder, after which s3fs checks whether the name is an object
    assert [key for m, key in counted_s3 if m == "HEAD"] == [f"store/{entry.ref.path}/clips/{CLIP}", *parents]

    counted_s3.clear()
    assert st.read_entry(entry, clip=CLIP, name="frames").shape == (8, 256, 256, 3)
    assert st.backend.read_bytes(f"{entry.ref.path}/_done/000000.json") is not None
    assert counted_s3[-1] == ("GET", f"store/{entry.ref.path}/_done/000000.json")
    assert counted_s3[-2][0] != "HEAD"  # one GET an object, no HEAD for its size first


@pytest.mark.parametrize(
    ("frames", "expected_rows"),
    [(36, 18), (21, 21), (22, 11), (55, 19), (5, 5), (64, 16)],
)
def test_a_frame_stack_is_chunked_evenly_so_that_little_padding_is_written(frames, expected_rows):
    rows = chunk_shape((frames, 256, 256, 3), 1)[0]  # at most 21 rows of 192 KiB in 4 MiB
    assert rows == expected_rows
    assert math.ceil(frames / rows) * rows - frames < math.ceil(frames / rows)  # less than a row per chunk padded


def test_frame_stacks_are_stored_without_a_codec_and_other_arrays_with_zarrs_default():
    assert compressors_for(np.dtype("uint8"), 4) is None
    assert compressors_for(np.dtype("uint8"), 2) == "auto"
    assert compressors_for(np.dtype("float32"), 4) == "auto"
