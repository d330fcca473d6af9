"""Where one worker's time goes besides the kernels: ``mer-cli preprocess`` (face, MESTI, flow) in this process with
one worker, timing on the main thread every store call that ``process_clip`` makes.

Figures, per clip: the time of ``process_clip``, of its kernels, the rest and the ratio (as bench_pipeline's
overhead, without start-up), then each store call (encode and writes, fsync waits on the main thread, claims,
markers, the wait for the background commits at a clip's end). Calls made on the commit queue's background thread
are not counted: they overlap the next stage. Works on earlier versions too (it counts what exists), so that two
versions can be compared on one synthetic set: run it from outside both checkouts with ``PYTHONPATH`` set to each.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_overhead.py [--subjects 2 --clips-per-subject 10]``
(``--data DIR`` uses a synthetic set made earlier, e.g. bench_pipeline's ``--work-dir``/data).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SPENT: collections.defaultdict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter[str] = collections.Counter()


def timed_on_main_thread(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` (when it exists) with a wrapper adding its main-thread wall time to ``label``."""
    real = getattr(owner, name, None)
    if real is None:
        return
    main = threading.main_thread()

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not main:
            return real(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - t0
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def instrument() -> list[Any]:
    """Wrap the store calls of ``process_clip``; the list that collects each clip's outcome."""
    import importlib

    import mer.pipeline.executors as executors
    import mer.store.arrays as arrays
    import mer.store.backend as backend
    import mer.store.catalogue as catalogue
    import mer.store.commit as commit
    import mer.store.reader as reader

    timed_on_main_thread(os, "fsync", "fsync on the main thread")
    timed_on_main_thread(getattr(backend, "PendingWrites", None), "flush", "flush (fsync) on the main thread")
    timed_on_main_thread(commit.Committer, "commit_clip", "commit_clip (a whole commit)")
    timed_on_main_thread(commit.Committer, "write_clip", "write_clip (encode, checksums, writes)")
    timed_on_main_thread(arrays.ChunkEncoder, "encode", "  of which chunk encoding")
    timed_on_main_thread(backend.LocalBackend, "write_many", "  of which write_many (with fsync)")
    timed_on_main_thread(backend.LocalBackend, "write_many_deferred", "  of which writes (no fsync)")
    timed_on_main_thread(backend.LocalBackend, "write_bytes", "write_bytes (markers, records)")
    for name in ("try_claim", "release_claim", "record_failure", "reuse_clip"):
        timed_on_main_thread(commit.Committer, name, name)
    timed_on_main_thread(catalogue.Catalogue, "is_done", "is_done")
    timed_on_main_thread(reader.Reader, "reusable_source", "reusable_source")
    try:
        queue = importlib.import_module("mer.store.commit_queue")
    except ImportError:
        pass
    else:
        timed_on_main_thread(queue.CommitQueue, "submit", "commit queue: submit")
        timed_on_main_thread(queue.CommitQueue, "wait", "commit queue: wait for the background")
    outcomes: list[Any] = []
    real_process_clip = executors.process_clip

    def process_clip(*args: Any, **kwargs: Any) -> Any:
        outcome = real_process_clip(*args, **kwargs)
        outcomes.append(outcome)
        return outcome

    executors.process_clip = process_clip  # what the in-process executor calls (--workers 1)
    return outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=2, help="synthetic subjects (default 2)")
    ap.add_argument("--clips-per-subject", type=int, default=10, help="clips per subject (default 10)")
    ap.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--stages", default="face,mesti,flow", help="stages to run (default face,mesti,flow)")
    ap.add_argument("--data", type=Path, default=None, help="a synthetic set made earlier (default: make one)")
    args = ap.parse_args()
    import mer

    work = Path(tempfile.mkdtemp(prefix="bench_overhead."))
    data = args.data
    if data is None:
        from mer.synthetic.clips import generate_synthetic

        width, height = (int(v) for v in args.size.lower().split("x"))
        data = work / "data"
        generate_synthetic(data, subjects=args.subjects, clips_per_subject=args.clips_per_subject, classes=3, seed=0,
                           frame_size=(width, height))
    outcomes = instrument()
    from mer.cli import app

    sys.argv = ["mer-cli", "preprocess", "--root", str(data), "--store", str(work / "store"), "--name", "synth",
                "--labels", "3class", "--stages", args.stages, "--workers", "1", "--quiet"]
    before = os.getloadavg()[0]
    try:
        app()
    except SystemExit as done:
        if done.code not in (0, 1, None):
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = max(len(outcomes), 1)
    total = sum(o.seconds for o in outcomes)
    kernels = sum(o.compute_seconds for o in outcomes)
    print(f"mer from {Path(mer.__file__).parent}; {len(outcomes)} clips; load avg (1 min) {before:.2f} -> "
          f"{os.getloadavg()[0]:.2f}")
    print(f"process_clip {total / n * 1e3:.0f} ms/clip, kernels {kernels / n * 1e3:.0f}, rest "
          f"{(total - kernels) / n * 1e3:.0f} ms/clip, ratio {total / max(kernels, 1e-9):.3f}")
    print("main-thread time in store calls (nested rows indented; the background commit thread is not counted):")
    for label in sorted(SPENT, key=lambda k: -SPENT[k]):
        print(f"  {label:42s} {SPENT[label] / n * 1e3:7.1f} ms/clip  ({CALLS[label]} calls)")


if __name__ == "__main__":
    main()
