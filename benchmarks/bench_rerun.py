"""Re-run of ``mer-cli preprocess`` on an unchanged, complete store — what a lab does every day.

A CASME II-sized folder dataset (26 subjects, about 250 clips, about 20k frames; small 48x48 JPEG frames, since a
re-run reads no pixels) is preprocessed once (``--stages ingest``), then preprocessed again. The re-run must load
the sheet, check every frame file's size and mtime against the stat cache (hashing none), find the clips table
unchanged and every clip committed — goal: under 10 s on a 2-core machine. A third run after touching one frame's
content shows the cost of noticing a change (one file re-hashed, one clip recomputed).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_rerun.py [--clips 250 --frames 80]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

MER_CLI = [sys.executable, "-c", "from mer.cli import app; app()"]


def make_dataset(root: Path, n_clips: int, n_frames: int, n_subjects: int = 26) -> int:
    """A folder-adapter dataset of random 48x48 JPEG frames; returns the number of frames written."""
    rng = np.random.default_rng(0)
    rows = []
    frames = 0
    for c in range(n_clips):
        subject, clip = f"sub{c % n_subjects + 1:02d}", f"EP{c:03d}"
        folder = root / subject / clip
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(1, n_frames + 1):
            cv2.imwrite(str(folder / f"img{t:05d}.jpg"), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
        frames += n_frames
        rows.append([subject, clip, 1, n_frames // 2, n_frames, "12", "happiness"])
    with open(root / "annotations.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "clip", "onset", "apex", "offset", "action_units", "emotion"])
        writer.writerows(rows)
    return frames


def preprocess(root: Path, store: Path) -> tuple[float, dict]:
    """One ``mer-cli preprocess --stages ingest`` as its own process; wall seconds and the run report."""
    cmd = [*MER_CLI, "preprocess", "--root", str(root), "--store", str(store), "--name", "bench", "--stages",
           "ingest", "--workers", "2", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"preprocess failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    reports = sorted((store / "_runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return wall, json.loads(reports[-1].read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=250)
    parser.add_argument("--frames", type=int, default=80)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, store = Path(tmp) / "data", Path(tmp) / "store"
        t0 = time.perf_counter()
        n = make_dataset(root, args.clips, args.frames)
        print(f"dataset: {args.clips} clips, {n} frames ({time.perf_counter() - t0:.1f} s to write)")
        first, report = preprocess(root, store)
        print(f"first run (hash and ingest every frame): {first:.1f} s, computed {report['computed']}")
        again, report = preprocess(root, store)
        print(f"re-run on the unchanged, complete store: {again:.2f} s (goal < 10 s), "
              f"skipped {report['skipped']} of {report['n_clips']} clips")
        frame = root / "sub01" / "EP000" / "img00001.jpg"
        cv2.imwrite(str(frame), np.full((48, 48, 3), 7, np.uint8))
        changed, report = preprocess(root, store)
        print(f"after changing one frame: {changed:.2f} s, computed clips {report['computed_clips']}, "
              f"reused {report['reused']}")
        print(f"ratio re-run / first run: {again / first:.3f}")


if __name__ == "__main__":
    main()
