"""Accuracy of the detected apex (``mer.pipeline.temporal.apex.detected_apex``) on synthetic clips with known apexes.

The clips are the aligned faces the ``apex`` stage sees (ingest → detect → landmarks → align on a synthetic set);
they are computed once and cached in ``--cache`` (an ``.npz``, no pickle), so that two versions of the code can be
measured on the very same frames::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_apex.py --cache /tmp/apex_clips.npz          # this checkout
    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/bench_apex.py --cache /tmp/apex_clips.npz

Prints, per measure, the mean and largest |detected − true| apex error in frames and the share of clips within
1 and 2 frames, and the seconds per clip.

Measured on the default 16 clips (4 subjects × 4, 320×240, seed 3) plus the demo store's 48 (``--store``, 640×480),
``local``, mean / largest |error| in frames:
    before (aceab8b: own Farneback, float luma, top 10 %):  16 clips 0.62 / 2, 48 clips 0.52 / 4 (all 0.55 / 4)
    after  (flow kernel, DETECT_FLOW, to_grey, top 20 %):  16 clips 0.62 / 2, 48 clips 0.62 / 2 (all 0.62 / 2)
(``flow`` and ``diff``, which let the head drift count, miss by 10–14 frames on average either way. The old code's
figures on the demo clips come from the store of ``benchmarks/compare_stores.py``: its detected MESTI entry.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def build_cache(path: Path, subjects: int, clips: int, seed: int) -> None:
    """Aligned faces of a synthetic set and each clip's true apex position (0-based in onset..offset)."""
    import mer.pipeline.catalog  # noqa: F401  (registers the stages)
    from mer.datasets import load
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.pipeline.graph import build_plan
    from mer.pipeline.runner import run_plan
    from mer.store import open_store
    from mer.synthetic.clips import generate_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_synthetic(data, subjects=subjects, clips_per_subject=clips, classes=3, seed=seed,
                           frame_size=(320, 240))
        result = load("folder", data, labels="3class", dataset_name="synth")
        store = open_store(str(Path(tmp) / "store"), "a")
        write_dataset_manifest(store, "synth", result.manifest, data, result.adapter, result.label_set.to_dict())
        report = run_plan(store, "synth", build_plan(store, "synth", ["align"]), workers=2)
        if report.failures:
            raise SystemExit(f"face stages failed: {report.failures}")
        manifest = store.manifest("synth")
        frames = [store.read("synth", "align", clip=c, name="frames") for c in manifest["clip_id"]]
        truth = [list(r.frame_numbers).index(int(r.apex)) for r in manifest.itertuples()]
        lengths = [len(f) for f in frames]
        np.savez(path, frames=np.concatenate(frames), lengths=np.asarray(lengths), truth=np.asarray(truth))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="default /tmp/mer_apex_clips_<S>x<C>_s<seed>.npz")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--methods", default="local,flow,diff")
    ap.add_argument("--store", default=None, help="also the aligned clips of dataset synth in this store (a demo's)")
    args = ap.parse_args()
    args.cache = args.cache or Path(f"/tmp/mer_apex_clips_{args.subjects}x{args.clips}_s{args.seed}.npz")
    if not args.cache.exists():
        build_cache(args.cache, args.subjects, args.clips, args.seed)
    from mer.pipeline.temporal.apex import detected_apex

    with np.load(args.cache, allow_pickle=False) as z:
        frames, lengths, truth = z["frames"], z["lengths"], list(z["truth"])
    clips = np.split(frames, np.cumsum(lengths)[:-1])
    if args.store:
        from mer.store import open_store

        store = open_store(args.store)
        manifest = store.manifest("synth")
        clips += [store.read("synth", "align", clip=c) for c in manifest["clip_id"]]
        truth += [list(r.frame_numbers).index(int(r.apex)) for r in manifest.itertuples()]
    sizes = [len(c) for c in clips]
    print(f"{len(clips)} clips, {min(sizes)}-{max(sizes)} frames")
    for method in args.methods.split(","):
        start = time.perf_counter()
        errors = np.array([abs(detected_apex(c, method=method) - t) for c, t in zip(clips, truth, strict=True)])
        seconds = (time.perf_counter() - start) / len(clips)
        print(
            f"{method:<6} mean |error| {errors.mean():5.2f} frames, max {errors.max():3d}, "
            f"within 1: {np.mean(errors <= 1):4.0%}, within 2: {np.mean(errors <= 2):4.0%}, {seconds:.3f} s/clip"
        )


if __name__ == "__main__":
    main()
