"""End-to-end preprocessing benchmark: ``mer-cli preprocess --stages face,mesti,flow`` with 1, 2, ... workers.

A CASME II-sized synthetic set by default (26 subjects x 10 clips of about 60 frames at 640x480). Each worker count
runs as its own ``mer-cli preprocess`` process on a fresh store (start-up, model loading and worker start included).

Figures, per worker count:
  wall          seconds of the whole process, and of ``run_plan`` alone (RunReport.seconds);
  efficiency    T(1 worker) / (workers x T(workers)) on the run_plan wall time -- goal >= 85 %;
  overhead      run_plan wall x workers / sum of the stages' kernel time (RunReport.compute_seconds) -- goal <= 1.25
                (what the runner adds: commits, compression, claims, scheduling, idle workers at the end);
  ms/clip       the same difference per clip: (run_plan wall x workers - kernel time) / clips;
  cpu s         CPU seconds of the whole process and its workers (user + system): on a shared machine the
                figure that other users' load does not inflate.
The stores of all worker counts are compared byte for byte (chunks and commit markers). The machine may be
shared: the load average is printed before and after each run.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_pipeline.py [--subjects 4 --clips-per-subject 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USAGE = """\
Full size (the figures the issue's goals refer to; about 4 min a worker count on 2 quiet cores):
  PYTHONPATH=. .venv/bin/python benchmarks/bench_pipeline.py
  (260 clips, about 14,350 frames at 640x480, face + MESTI + flow, 1 then 2 workers)
A smaller run, e.g. to profile one worker or compare two versions back to back on the same data:
  ... bench_pipeline.py --subjects 4 --clips-per-subject 10 --workers 1 --work-dir /tmp/bp --reuse-data
  (40 clips; --reuse-data keeps the synthetic set of an earlier run with the same --subjects,
  --clips-per-subject and --size in --work-dir instead of generating it again)
On a shared machine compare the overhead and ms/clip columns of runs made back to back, with the load printed.
To compare two versions, run this from outside both checkouts with PYTHONPATH set to each (mer-cli is started
with python -c, which puts the working folder first on the path); bench_overhead.py breaks the rest down by call."""

MER_CLI = [sys.executable, "-c", "from mer.cli import app; app()"]


def store_bytes(store: Path) -> dict[str, bytes]:
    """Chunks and commit markers (metadata, run reports, claims and failure records aside)."""
    skip = {"_runs", "_claims", "_failed"}
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and p.name != "zarr.json" and not p.name.startswith(".") and not skip & set(p.parts)
    }


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def run_once(data: Path, store: Path, stages: str, workers: int) -> dict:
    """One ``mer-cli preprocess`` on a fresh store; its run report plus the process wall time."""
    if store.exists():
        shutil.rmtree(store)
    cmd = [
        *MER_CLI,
        "preprocess",
        "--root",
        str(data),
        "--store",
        str(store),
        "--name",
        "synth",
        "--labels",
        "3class",
        "--stages",
        stages,
        "--workers",
        str(workers),
        "--quiet",
    ]
    t0 = time.perf_counter()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    if done.returncode not in (0, 1):  # 1: some clips failed and the others went on (they are counted below)
        raise SystemExit(f"preprocess with {workers} worker(s) failed:\n{done.stdout}\n{done.stderr}")
    (report_path,) = (store / "_runs").glob("*.json")
    report = json.loads(report_path.read_text())
    report["process_wall"] = wall
    report["process_cpu"] = cpu
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=USAGE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=26, help="synthetic subjects (default 26)")
    ap.add_argument("--clips-per-subject", type=int, default=10, help="clips per subject (default 10)")
    ap.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    ap.add_argument("--stages", default="face,mesti,flow", help="stages to run (default face,mesti,flow)")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep the data and stores here (default: temporary)")
    ap.add_argument("--reuse-data", action="store_true",
                    help="use the synthetic set already in --work-dir when it was made with the same size options")
    args = ap.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    width, height = (int(v) for v in args.size.lower().split("x"))

    from mer.synthetic.clips import generate_synthetic

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_pipeline."))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    t0 = time.perf_counter()
    recipe = {"subjects": args.subjects, "clips_per_subject": args.clips_per_subject, "size": [width, height]}
    stamp = work / "data.json"  # what the synthetic set in data/ was made with (for --reuse-data)
    if args.reuse_data and args.work_dir and stamp.exists() and json.loads(stamp.read_text())["recipe"] == recipe:
        made = json.loads(stamp.read_text())
        how = "reused from an earlier run"
    else:
        stamp.unlink(missing_ok=True)
        summary = generate_synthetic(
            data,
            subjects=args.subjects,
            clips_per_subject=args.clips_per_subject,
            classes=3,
            seed=0,
            frame_size=(width, height),
        )
        made = {"recipe": recipe, "n_clips": summary.n_clips, "n_frames": summary.n_frames}
        stamp.write_text(json.dumps(made))
        how = f"generated in {time.perf_counter() - t0:.1f} s"
    print(
        f"data: {made['n_clips']} clips, {made['n_frames']} frames ({made['n_frames'] / made['n_clips']:.0f} per clip) "
        f"at {width}x{height}, {how}; stages {args.stages}; "
        f"{os.cpu_count()} CPUs visible, {len(os.sched_getaffinity(0))} usable"
    )

    results = {}
    for workers in worker_counts:
        before = load()
        results[workers] = run_once(data, work / f"store_w{workers}", args.stages, workers)
        results[workers]["load"] = f"{before} -> {load()}"

    base = results[worker_counts[0]]
    base_run = base["seconds"] * worker_counts[0]
    print()
    print(
        f"{'workers':>7} {'process s':>9} {'cpu s':>7} {'run s':>7} {'kernel s':>8} {'efficiency':>10} {'overhead':>8} "
        f"{'ms/clip':>7} {'clips/s':>7}  load avg 1/5/15 min (before -> after)"
    )
    for workers, r in results.items():
        eff = base_run / (workers * r["seconds"])
        overhead = r["seconds"] * workers / max(r["compute_seconds"], 1e-9)
        per_clip = (r["seconds"] * workers - r["compute_seconds"]) / max(r["n_clips"], 1) * 1e3
        print(
            f"{workers:>7} {r['process_wall']:>9.1f} {r['process_cpu']:>7.1f} {r['seconds']:>7.1f} "
            f"{r['compute_seconds']:>8.1f} {eff:>9.0%} {overhead:>8.2f} {per_clip:>7.0f} "
            f"{r['n_clips'] / r['seconds']:>7.2f}  {r['load']}"
        )
    print("goals: efficiency >= 85 %, overhead <= 1.25")
    print()
    print("kernel seconds per stage (summed over clips; a kernel slowed by core sharing shows here):")
    for workers, r in results.items():
        print(f"  {workers} worker(s): " + ", ".join(f"{k} {v:.1f}" for k, v in r.get("stage_seconds", {}).items()))
    failures = {w: len(r["failures"]) for w, r in results.items()}
    print(f"failures per worker count: {failures}")
    reference = store_bytes(work / f"store_w{worker_counts[0]}")
    for workers in worker_counts[1:]:
        same = store_bytes(work / f"store_w{workers}") == reference
        print(f"store with {workers} workers byte-identical to {worker_counts[0]} worker(s): {same}")
    if args.work_dir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
