"""What each candidate codec costs and gains on the frame stacks the pipeline stores (aligned and equalised crops).

One synthetic clip set goes through ``face`` (ingest .. equalize) into a temporary store; each candidate codec then
encodes every full 21-frame chunk of those stacks (one thread, as a worker runs). Printed per codec: milliseconds
to encode a chunk, the compression ratio, and what a clip's two stacks cost to encode. The store writes frame stacks
uncompressed (``mer.store.commit.compressors_for``): this is the measurement behind that choice.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_codecs.py [--clips 4] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CANDIDATES = [
    ("stored raw (no codec)", None),
    ("blosc lz4 1 bitshuffle", ("lz4", 1, 2)),
    ("blosc lz4 1 byte shuffle", ("lz4", 1, 1)),
    ("blosc lz4 5 bitshuffle", ("lz4", 5, 2)),
    ("blosc zstd 1 bitshuffle", ("zstd", 1, 2)),
    ("blosc zstd 3 bitshuffle (zarr default)", ("zstd", 3, 2)),
]


def frame_stacks(work: Path, clips: int) -> list[np.ndarray]:
    """The aligned and equalised frame stacks of ``clips`` synthetic clips, computed by ``mer-cli preprocess``."""
    import zarr

    from mer.synthetic.clips import generate_synthetic

    data, store = work / "data", work / "store"
    generate_synthetic(data, subjects=1, clips_per_subject=clips, classes=3, seed=0, frame_size=(640, 480))
    subprocess.run(
        [sys.executable, "-c", "from mer.cli import app; app()", "preprocess", "--root", str(data), "--store",
         str(store), "--name", "synth", "--labels", "3class", "--stages", "face", "--workers", "1", "--quiet"],
        check=True, capture_output=True,
    )
    return [
        zarr.open_array(str(path), mode="r")[...]
        for stage in ("align", "equalize")
        for path in sorted((store / "synth" / stage).glob("*/clips/*/*/frames"))
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4, help="synthetic clips (default 4)")
    ap.add_argument("--repeats", type=int, default=5, help="passes per codec; the best is printed (default 5)")
    args = ap.parse_args()
    import numcodecs.blosc
    from numcodecs import Blosc

    numcodecs.blosc.use_threads = False  # as zarr sets it: one thread
    with tempfile.TemporaryDirectory(prefix="bench_codecs.") as tmp:
        stacks = frame_stacks(Path(tmp), args.clips)
    chunks = [np.ascontiguousarray(s[i:i + 21]) for s in stacks for i in range(0, len(s) - 20, 21)]
    chunk_bytes = sum(c.nbytes for c in chunks)
    per_clip = 2 * sum(len(s) for s in stacks) / len(stacks) / 21  # chunks of a clip's two stacks
    print(f"{len(stacks)} stacks (aligned and equalised, {stacks[0].shape[1:]} uint8), {len(chunks)} chunks of 21 "
          f"frames, {chunk_bytes / 2**20:.1f} MiB")
    print(f"{'codec':<40} {'ms a chunk':>10} {'ratio':>6} {'ms a clip':>9}")
    for name, settings in CANDIDATES:
        if settings is None:
            codec = None
        else:
            cname, clevel, shuffle = settings
            codec = Blosc(cname=cname, clevel=clevel, shuffle=shuffle)
        best = float("inf")
        for _ in range(args.repeats):  # the best of a few passes: the first also pays for page faults
            t0 = time.perf_counter()
            encoded = [c.tobytes() if codec is None else codec.encode(c) for c in chunks]
            best = min(best, time.perf_counter() - t0)
        ms = best / len(chunks) * 1e3
        ratio = chunk_bytes / sum(len(e) for e in encoded)
        print(f"{name:<40} {ms:>10.2f} {ratio:>6.3f} {ms * per_clip:>9.1f}")


if __name__ == "__main__":
    main()
