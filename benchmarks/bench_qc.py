"""Benchmark the QC gallery: seconds per clip for a row's pictures (read, draw, encode) against only reading
the arrays it shows from the store (goal: ratio ≤ 3), and headless Chromium's load time (best of ``--repeats``) of a
page of ``--rows`` clips against a page of the few real clips (goal: a 3000-row page loads in under 3× the time of a
4-row one; images are lazy, rows off screen are not rendered).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_qc.py [--rows 3000]``. Builds a small synthetic store in a
temporary folder first (2 subjects × 2 clips, 320×240, face stages and MESTI). The page part needs
``/usr/bin/chromium`` and is skipped without it.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from mer.datasets import load
from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.catalog import expand_stages
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.report.qc_page import clip_pictures, render_page, write_qc_report
from mer.report.qc_scores import resolve_entries
from mer.store import open_store
from mer.synthetic.clips import generate_synthetic

CHROMIUM = Path("/usr/bin/chromium")


def build_store(base: Path) -> str:
    data = base / "data"
    generate_synthetic(data, subjects=2, clips_per_subject=2, classes=3, seed=11, frame_size=(320, 240))
    result = load("folder", data, labels="3class", dataset_name="synth")
    store = open_store(str(base / "store"), "a")
    write_dataset_manifest(store, "synth", result.manifest, data, result.adapter, result.label_set.to_dict())
    run_plan(store, "synth", build_plan(store, "synth", expand_stages("ingest,face,mesti")), workers=1)
    return str(base / "store")


def load_seconds(page: Path, base: Path, repeats: int) -> float:
    """Best of ``repeats`` wall times of headless Chromium loading the page and dumping its DOM."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={base / 'profile'}"]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, check=True, timeout=300)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3, help="page loads: best of this many (shared machines)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        store = open_store(build_store(base))
        entries = resolve_entries(store, "synth")
        clips = store.clips("synth")
        needed = [
            (entries.landmarks, "quality"),
            (entries.equalize, "frames"),
            (entries.landmarks, "landmarks"),
            (entries.align, "landmarks"),
            (entries.align, "transforms"),
            (entries.detect, "box"),
            (entries.image, "image"),
        ]
        t0 = time.perf_counter()
        for clip in clips:
            for entry, name in needed:
                store.read_entry(entry, clip=clip, name=name)
        read = (time.perf_counter() - t0) / len(clips)
        out = base / "qc"
        t0 = time.perf_counter()
        report = write_qc_report(store, "synth", out)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        manifest = {r["clip_id"]: (i, r) for i, r in enumerate(store.manifest("synth").to_dict("records"))}
        pictures = {}
        for qc in report.table.to_dict("records"):
            index, row = manifest[qc["clip_id"]]
            pictures[qc["clip_id"]] = clip_pictures(store, entries, row, qc, out, f"{index:06d}", True)
        per_clip = (time.perf_counter() - t0) / len(clips)
        print(f"read the arrays a row shows        {read * 1e3:8.1f} ms per clip")
        print(
            f"thumbnails + curve (read included) {per_clip * 1e3:8.1f} ms per clip, "
            f"ratio {per_clip / read:.2f} (goal <= 3)"
        )
        print(f"write_qc_report, {len(clips)} clips         {total:8.2f} s (overview figure and CSV included)")
        if not CHROMIUM.exists():
            print("page load: skipped (no /usr/bin/chromium)")
            return
        copies = -(-args.rows // len(report.table))
        big = pd.concat(
            [report.table.assign(clip_id=report.table.clip_id + f"#{k}") for k in range(copies)], ignore_index=True
        ).iloc[: args.rows]
        big["rank"] = range(1, len(big) + 1)
        big_pictures = {c: pictures[c.rsplit("#", 1)[0]] for c in big.clip_id}
        page = out / "big.html"
        page.write_text(render_page("synth x", big, big_pictures, "mesti", 0.5, store.location), encoding="utf-8")
        small, large = load_seconds(report.page, base, args.repeats), load_seconds(page, base, args.repeats)
        print(f"page load, {len(report.table)} rows               {small:8.2f} s (headless Chromium, start included)")
        print(
            f"page load, {len(big)} rows            {large:8.2f} s  ratio {large / small:.2f} (goal <= 3), "
            f"{page.stat().st_size / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
