"""Compare the stores that two versions of the code build from the same synthetic data, array by array, by content.

Issue 12 made the apex one stage: ``mesti``, ``apex-frame`` (was ``apex``), ``diff``, ``apex-frame-raw`` (was
``apex-raw``) and ``flow`` read the ``apex`` stage instead of choosing the apex themselves, so their keys changed.
For every stage whose meaning did not change the arrays must be bit-identical; keys are ignored (they differ by
design). The only meaning that changed is the detected apex (the project's flow kernel and ``flow_motion`` instead
of a private Farneback), so ``mesti`` with a detected apex may differ, and the report says by how many clips.

Run (the old code is taken from git at ``--old``, default the commit before the change)::

    PYTHONPATH=. .venv/bin/python benchmarks/compare_stores.py --out /tmp/compare            # demo sizes
    PYTHONPATH=. .venv/bin/python benchmarks/compare_stores.py --subjects 2 --clips 1 --frame-size 160x120

Each side is built in its own process with its own code on ``PYTHONPATH``; the data are generated once.
Exit status 1 when a stage expected identical differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OLD_COMMIT = "aceab8b"
"""main before issue 12's apex stage."""

# label -> (old stage name, new stage name, whether the values must be identical)
COMPARED: dict[str, tuple[str, str, bool]] = {
    "ingest": ("ingest", "ingest", True),
    "detect": ("detect", "detect", True),
    "landmarks": ("landmarks", "landmarks", True),
    "align": ("align", "align", True),
    "equalize": ("equalize", "equalize", True),
    "mesti": ("mesti", "mesti", True),
    "dynamic": ("dynamic", "dynamic", True),
    "apex-frame": ("apex", "apex-frame", True),
    "onset": ("onset", "onset", True),
    "diff": ("diff", "diff", True),
    "onset-raw": ("onset-raw", "onset-raw", True),
    "apex-frame-raw": ("apex-raw", "apex-frame-raw", True),
    "flow": ("flow", "flow", True),
    "flow-image": ("flow-image", "flow-image", True),
    "mesti-detected": ("mesti", "mesti", False),
}

BUILDER = r'''
import json, sys
import mer.pipeline.catalog
from mer.datasets import load
from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.store import open_store

side, data, store_dir, size, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
result = load("folder", data, labels="3class", dataset_name="synth")
store = open_store(store_dir, "a")
write_dataset_manifest(store, "synth", result.manifest, data, result.adapter, result.label_set.to_dict())
image = {"size": size}
if side == "old":
    apex = {"apex": "annotated", "apex_fallback": "middle"}
    sharp = {"landmarks": {"landmark_blur": 0.0}}
    passes = {
        "main": (["mesti", "dynamic", "apex", "onset", "diff", "onset-raw", "apex-raw", "flow-image"],
                 sharp | {"mesti": image | apex, "dynamic": image, "apex": image | apex, "onset": image,
                          "diff": image | apex, "onset-raw": image, "apex-raw": image | apex, "flow": apex,
                          "flow-image": {"size": 28}}),
        "detected": (["mesti"], sharp | {"mesti": image | {"apex": "detected"}}),
    }
else:
    # landmarks v3 turns the predictor's crop with the face and measures its blur in crop pixels, v4 tracks every 4th
    # frame with 3 starts (new values, issue 18); both sides run one sharp start on every frame without the turn,
    # where v2, v3 and v4 are one algorithm, so that what the move and the apex stage changed is compared on its own
    apex = {"apex": {"mode": "annotated", "fallback": "middle"},
            "landmarks": {"follow_rotation": False, "landmark_blur": 0.0, "n_inits": 1, "stride": 1,
                          "half_res_blur": False, "calibration_frames": 2, "runaway_scale": 0.0}}
    passes = {
        "main": (["mesti", "dynamic", "apex-frame", "onset", "diff", "onset-raw", "apex-frame-raw", "flow-image"],
                 apex | {"mesti": image, "dynamic": image, "apex-frame": image, "onset": image, "diff": image,
                         "onset-raw": image, "apex-frame-raw": image, "flow": {}, "flow-image": {"size": 28}}),
        "detected": (["mesti"], {"apex": {"mode": "detected"}, "mesti": image, "landmarks": apex["landmarks"]}),
    }
keys = {}
for name, (targets, overrides) in passes.items():
    plan = build_plan(store, "synth", targets, overrides)
    report = run_plan(store, "synth", plan, workers=workers)
    if report.failures:
        sys.exit(f"{side} {name}: {report.failures[0].clip_id}: {report.failures[0].error}")
    for planned in plan:
        label = planned.stage.name + ("-detected" if name == "detected" else "")
        if name == "main" or planned.stage.name in ("mesti", "apex"):
            keys[label] = planned.key
print(json.dumps(keys))
'''


def old_checkout(commit: str, into: Path) -> Path:
    """The tree of ``commit`` extracted with ``git archive`` (reads the repository, writes nothing to it)."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def build(side: str, code: Path, data: Path, store: Path, size: int, workers: int) -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", BUILDER, side, str(data), str(store), str(size), str(workers)],
        env=env, capture_output=True, text=True, cwd=str(code),
    )
    if out.returncode != 0:
        raise SystemExit(f"building the {side} store failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def entry_arrays(store, stage: str, key: str) -> dict[str, dict[str, np.ndarray]]:
    """Output name -> clip id -> array (a dataset array's row per clip)."""
    entry = store.find("synth", stage, key)
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for name, spec in entry.outputs.items():
        if spec.stacked:
            stacked = store.read_entry(entry, name=name)
            arrays[name] = {c: stacked[i] for i, c in enumerate(entry.clip_ids)}
        else:
            arrays[name] = {c: store.read_entry(entry, clip=c, name=name) for c in entry.clip_ids}
    return arrays


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(old_store: Path, new_store: Path, old_keys: dict[str, str], new_keys: dict[str, str]) -> list[dict]:
    """One row per compared stage: identical or not, the arrays and clips that differ."""
    from mer.store import open_store

    old, new = open_store(str(old_store)), open_store(str(new_store))
    rows = []
    for label, (old_stage, new_stage, expect_same) in COMPARED.items():
        suffix = "-detected" if label.endswith("-detected") else ""
        old_key, new_key = old_keys[old_stage + suffix], new_keys[new_stage + suffix]
        a, b = entry_arrays(old, old_stage, old_key), entry_arrays(new, new_stage, new_key)
        differing = {}
        for name in sorted(set(a) | set(b)):
            if name not in a or name not in b:
                differing[name] = "only in the " + ("new" if name in b else "old") + " entry"
                continue
            bad = [c for c in a[name] if c not in b[name] or not same(a[name][c], b[name][c])]
            if bad:
                differing[name] = f"{len(bad)} of {len(a[name])} clips"
        rows.append({"stage": label, "old": old_stage, "new": new_stage, "identical": not differing,
                     "expected_identical": expect_same, "differing": differing, "keys_equal": old_key == new_key})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--old", default=OLD_COMMIT, help="git commit of the old code, or a folder holding it")
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frame-size", default="640x480")
    ap.add_argument("--size", type=int, default=64, help="image size of the image stages (the demo's 64)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = run(args)
    width = max(len(r["stage"]) for r in rows)
    for r in rows:
        differing = ", ".join(f"{k} {v}" for k, v in r["differing"].items())
        verdict = "identical" if r["identical"] else f"DIFFERS: {differing}"
        expected = "" if r["identical"] == r["expected_identical"] else "   <-- unexpected"
        print(f"{r['stage']:<{width}}  {r['old']:>10} -> {r['new']:<14} same key: {str(r['keys_equal']):<5} "
              f"{verdict}{expected}")
    if any(r["expected_identical"] and not r["identical"] for r in rows):
        sys.exit(1)


def run(args: argparse.Namespace) -> list[dict]:
    from mer.synthetic.clips import generate_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        width, height = (int(v) for v in args.frame_size.split("x"))
        data = work / "data"
        if not (data / "annotations.csv").exists():
            generate_synthetic(data, subjects=args.subjects, clips_per_subject=args.clips, classes=3,
                               seed=args.seed, frame_size=(width, height))
        old_code = Path(args.old) if Path(args.old).is_dir() else old_checkout(args.old, work / "old-code")
        new_code = Path(__file__).resolve().parents[1]
        keys = {}
        for side, code in (("old", old_code), ("new", new_code)):
            keys[side] = build(side, code, data, work / f"{side}-store", args.size, args.workers)
        return compare(work / "old-store", work / "new-store", keys["old"], keys["new"])


if __name__ == "__main__":
    main()
