"""Store overhead per clip: what ``commit_clip`` and ``reuse_clip`` cost beyond the kernels, and S3 requests.

A pipeline-shaped set of entries (the outputs of ingest, detect, landmarks, align, equalize, mesti, flow and
flow-image, with their dtypes and per-clip/stacked layout) is committed clip by clip with arrays of the shapes a
``--size``/``--frames`` clip gives (random values, so that compression does real work), then every clip is
reused into an entry of the same recipe built from another clips-table version.

Figures:
  commit ms/clip    wall and CPU time of committing all eight stages' outputs of one clip (median over clips),
                    and the wall time of that spent waiting for fsync (the disk, not this process: on a shared
                    machine it grows with other users' writes);
  queued ms/clip    the same commits as the runner makes them (mer.store.commit_queue): the caller's part (encode,
                    checksums and writes, the fsync wait column its own share) and, with no stage computing
                    meanwhile, the wait for the background part (fsync of the files, markers, claims released)
                    that process_clip's end would see; the runner hides that wait behind the clip's next stage;
  reuse ms/clip     the same for copying one clip's eight stages from the sibling entry;
  S3 requests       with moto installed: requests by HTTP method (HEAD, GET, PUT, ...) for committing and for
                    reusing ``--s3-clips`` clips on a local moto server, and for a whole ``mer-cli preprocess
                    --stages ingest,detect`` of a synthetic set of that many clips into a bucket (the manifest,
                    entries, claims, commits and run report: what a run costs an object store).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_store.py [--clips 8 --frames 60 --s3-clips 4]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from mer.store import open_store
from mer.store.backend import PendingWrites
from mer.store.commit_queue import CommitQueue
from mer.store.entries import EntryRef, OutputSpec

CROP = 256  # aligned face crop size (pixels)


def pipeline_outputs(frames: int) -> dict[str, list[tuple[OutputSpec, tuple[int, ...]]]]:
    """Each stage's outputs as (spec, per-clip shape), as the face, MESTI and flow stages store them."""
    per = OutputSpec
    pairs = 2
    return {
        "ingest": [(per("frame_sha256", "uint8"), (frames, 32)), (per("frame_size", "int32", True, (3,)), (3,))],
        "detect": [(per("box", "float32", True, (4,)), (4,)), (per("detection", "float32", True, (3,)), (3,))],
        "landmarks": [
            (per("landmarks", "float32"), (frames, 68, 2)),
            (per("quality", "float32"), (frames,)),
            (per("landmarks_raw", "float32"), (frames, 68, 2)),
        ],
        "align": [
            (per("frames", "uint8"), (frames, CROP, CROP, 3)),
            (per("transforms", "float32"), (frames, 2, 3)),
            (per("landmarks", "float32"), (frames, 68, 2)),
        ],
        "equalize": [(per("frames", "uint8"), (frames, CROP, CROP, 3))],
        "mesti": [
            (per("image", "uint8", True, (3, 224, 224)), (3, 224, 224)),
            (per("apex", "int32", True, (2,)), (2,)),
        ],
        "flow": [(per("flow", "int16"), (pairs, CROP, CROP, 2)), (per("pairs", "int32"), (pairs, 2))],
        "flow-image": [(per("image", "float32", True, (3, 28, 28)), (3, 28, 28))],
    }


def clip_arrays(rng: np.random.Generator, shapes: list[tuple[OutputSpec, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """Values with some structure (smooth plus noise), so that the compressors work as on real outputs."""
    out = {}
    for spec, shape in shapes:
        dtype = np.dtype(spec.dtype)
        base = rng.normal(0.0, 1.0, size=shape).cumsum(axis=-1)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            base = np.clip(np.round(base * 8 + (info.max + info.min) / 2 if dtype.kind == "u" else base * 8), info.min,
                           info.max)
        out[spec.name] = base.astype(dtype)
    return out


def make_entries(store, stages, clip_ids: list[str], key: str) -> dict[str, object]:
    entries = {}
    for stage, outs in stages.items():
        attrs = {"clip_ids": clip_ids, "recipe": f"recipe-{stage}", "primary": outs[0][0].name,
                 "provenance": {"created": key}}
        entries[stage] = store.ensure_entry(EntryRef("bench", stage, key), [spec for spec, _ in outs], attrs)
    return entries


FSYNC_SECONDS = [0.0]  # time the main thread spent waiting for the disk (wrappers installed by main)


def timed(fn: Callable[[], object]) -> tuple[float, float, float]:
    """Wall, CPU and fsync-wait seconds of one call."""
    w0, c0, f0 = time.perf_counter(), time.process_time(), FSYNC_SECONDS[0]
    fn()
    return time.perf_counter() - w0, time.process_time() - c0, FSYNC_SECONDS[0] - f0


def count_fsync_time() -> None:
    """Count the time the main thread waits for the disk: in ``os.fsync`` and in :meth:`PendingWrites.flush` (which
    syncs several files at once on helper threads). A commit queue's background thread is not counted."""
    real_fsync, real_flush = os.fsync, PendingWrites.flush
    state = threading.local()

    def waiting(call: Callable[[], None]) -> None:
        if threading.current_thread() is not threading.main_thread() or getattr(state, "inside", False):
            call()
            return
        t0, state.inside = time.perf_counter(), True
        try:
            call()
        finally:
            state.inside = False
            FSYNC_SECONDS[0] += time.perf_counter() - t0

    def fsync(fd: int) -> None:
        waiting(lambda: real_fsync(fd))

    def flush(self: PendingWrites) -> None:
        waiting(lambda: real_flush(self))

    os.fsync = fsync
    PendingWrites.flush = flush


def encode_seconds(arrays: list[dict[str, np.ndarray]], stages) -> float:
    """Time to encode every chunk alone (zarr's codecs), for the share of commit time that is compression."""
    import zarr

    from mer.store.commit import chunk_shape, compressors_for

    memory = zarr.storage.MemoryStore()
    t0 = time.perf_counter()
    for clip in arrays:
        for name, arr in clip.items():
            spec = next(s for outs in stages.values() for s, _ in outs if s.name == name)
            if spec.stacked:
                continue
            a = zarr.create_array(store=memory, name="x", shape=arr.shape, chunks=chunk_shape(arr.shape, arr.itemsize),
                                  dtype=arr.dtype, fill_value=0, compressors=compressors_for(arr.dtype, arr.ndim),
                                  overwrite=True, config={"write_empty_chunks": True})
            a[...] = arr
    return time.perf_counter() - t0


def run(location: str, n_clips: int, frames: int, seed: int) -> dict[str, list[tuple[float, float, float]]]:
    """Commit every clip (timed per clip), the same through a commit queue (the caller's part and the wait, timed per
    clip), then reuse every clip into a sibling entry (timed per clip)."""
    stages = pipeline_outputs(frames)
    clip_ids = [f"s{i // 4:02d}/s{i // 4:02d}_c{i % 4:02d}" for i in range(n_clips)]
    store = open_store(location, "a")
    first = make_entries(store, stages, clip_ids, "k1")
    rng = np.random.default_rng(seed)
    times: dict[str, list[tuple[float, float, float]]] = {"commit": []}
    for index in range(n_clips):
        arrays = {stage: clip_arrays(rng, outs) for stage, outs in stages.items()}

        def commit_all(index=index, arrays=arrays) -> None:
            for stage, entry in first.items():
                store.commit_clip(entry, index, arrays[stage], fingerprint=f"fp{index}")

        times["commit"].append(timed(commit_all))
    queued = make_entries(store, stages, clip_ids, "k3")
    rng = np.random.default_rng(seed)
    times["queued"], times["queue wait"] = [], []
    for index in range(n_clips):
        arrays = {stage: clip_arrays(rng, outs) for stage, outs in stages.items()}
        with CommitQueue(store) as commits:

            def write_all(index=index, arrays=arrays, commits=commits) -> None:
                for stage, entry in queued.items():
                    commits.submit(stage, entry, index, store.write_clip(entry, index, arrays[stage], f"fp{index}"))

            times["queued"].append(timed(write_all))
            times["queue wait"].append(timed(commits.wait))
            if commits.failure is not None:
                raise SystemExit(f"queued commit failed: {commits.failure.error}")
    second = make_entries(store, stages, clip_ids, "k2")
    for index in range(n_clips):

        def reuse_all(index=index) -> None:
            for entry in second.values():
                if not store.reuse_clip(entry, index, f"fp{index}"):
                    raise SystemExit(f"clip {index} was not reused")

        times.setdefault("reuse", []).append(timed(reuse_all))
    return times


class RequestCounter:
    """Wraps a WSGI app and counts requests by HTTP method."""

    def __init__(self, app):
        self.app = app
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, environ, start_response):
        self.counts[environ["REQUEST_METHOD"]] += 1
        return self.app(environ, start_response)


@contextlib.contextmanager
def counted_moto_bucket(bucket: str) -> Iterator[tuple[RequestCounter, dict[str, str]]]:
    """A bucket on a local moto server (127.0.0.1) whose requests are counted by method; yields the counter and the
    ``AWS_*`` variables that point a client at it. The server stops on exit."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    try:
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                     aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket=bucket)
        counter = RequestCounter(server._server.app)
        server._server.app = counter
        yield counter, env
    finally:
        server.stop()


def _have_moto() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("boto3", "moto"))


def s3_requests(n_clips: int, frames: int) -> dict[str, collections.Counter[str]] | str:
    """Requests by method for committing, then reusing, ``n_clips`` clips into a bucket on a local moto server."""
    if not _have_moto():
        return "moto/boto3 not installed: no S3 figures"
    import fsspec

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_ENDPOINT_URL")}
    with counted_moto_bucket("bench") as (counter, env):
        os.environ.update(env)
        try:
            stages = pipeline_outputs(frames)
            clip_ids = [f"s00/s00_c{i:02d}" for i in range(n_clips)]
            store = open_store("s3://bench/store", "a")
            first = make_entries(store, stages, clip_ids, "k1")
            second = make_entries(store, stages, clip_ids, "k2")
            rng = np.random.default_rng(0)
            counter.counts.clear()
            for index in range(n_clips):
                arrays = {stage: clip_arrays(rng, outs) for stage, outs in stages.items()}
                for stage, entry in first.items():
                    store.commit_clip(entry, index, arrays[stage], fingerprint=f"fp{index}")
            committed = collections.Counter(counter.counts)
            counter.counts.clear()
            for index in range(n_clips):
                for entry in second.values():
                    store.reuse_clip(entry, index, f"fp{index}")
            return {"commit": committed, "reuse": collections.Counter(counter.counts)}
        finally:
            fsspec.filesystem("s3").clear_instance_cache()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def s3_run_requests(n_clips: int) -> collections.Counter[str] | str:
    """Requests by method of one ``mer-cli preprocess --stages ingest,detect --workers 1`` into a moto bucket."""
    if not _have_moto():
        return "moto/boto3 not installed: no S3 figures"
    import subprocess
    import sys

    from mer.synthetic.clips import generate_synthetic

    with counted_moto_bucket("run") as (counter, env), tempfile.TemporaryDirectory(prefix="bench_store_run.") as tmp:
        data = Path(tmp) / "data"
        generate_synthetic(data, subjects=1, clips_per_subject=n_clips, classes=3, seed=0, frame_size=(160, 120))
        cmd = [sys.executable, "-c", "from mer.cli import app; app()", "preprocess", "--root", str(data),
               "--store", "s3://run/store", "--name", "synth", "--labels", "3class", "--stages", "ingest,detect",
               "--workers", "1", "--quiet"]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
        if done.returncode != 0:
            return f"preprocess into moto failed: {done.stderr.strip().splitlines()[-1:]}"
        return collections.Counter(counter.counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60, help="frames per clip")
    ap.add_argument("--s3-clips", type=int, default=4, help="clips for the S3 request count (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    stages = pipeline_outputs(args.frames)
    n_arrays = sum(len(outs) for outs in stages.values())
    n_per_clip = sum(not spec.stacked for outs in stages.values() for spec, _ in outs)
    print(f"{args.clips} clips of {args.frames} frames, {len(stages)} stages, {n_arrays} outputs a clip "
          f"({n_per_clip} per-clip arrays, {n_arrays - n_per_clip} stacked rows); load avg "
          + "/".join(f"{v:.2f}" for v in os.getloadavg()))
    count_fsync_time()
    with tempfile.TemporaryDirectory(prefix="bench_store.") as tmp:
        times = run(str(Path(tmp) / "store"), args.clips, args.frames, args.seed)
    rng = np.random.default_rng(args.seed)
    sample = [{k: v for outs in stages.values() for k, v in clip_arrays(rng, outs).items()} for _ in range(2)]
    enc = encode_seconds(sample, stages) / len(sample)
    print(f"{'':>10} {'wall ms/clip':>12} {'cpu ms/clip':>11} {'fsync wait ms/clip':>18}"
          f"  (medians over {args.clips} clips)")
    for kind, rows in times.items():
        wall, cpu, wait = (statistics.median(r[i] for r in rows) * 1e3 for i in range(3))
        print(f"{kind:>10} {wall:>12.1f} {cpu:>11.1f} {wait:>18.1f}")
    print(f"encoding the per-clip chunks alone (zarr in memory, includes its array creation): {enc * 1e3:.1f} ms/clip")
    if args.s3_clips:
        counts = s3_requests(args.s3_clips, args.frames)
        if isinstance(counts, str):
            print(counts)
        else:
            for kind, c in counts.items():
                print(f"S3 requests, {kind} of {args.s3_clips} clips x {len(stages)} stages: "
                      f"{sum(c.values())} ({', '.join(f'{m} {n}' for m, n in sorted(c.items()))})")
        whole = s3_run_requests(args.s3_clips)
        if isinstance(whole, str):
            print(whole)
        else:
            print(f"S3 requests, mer-cli preprocess --stages ingest,detect of {args.s3_clips} clips: "
                  f"{sum(whole.values())} ({', '.join(f'{m} {n}' for m, n in sorted(whole.items()))})")


if __name__ == "__main__":
    main()
