"""Helpers for the runner-at-scale tests: the CLI as a subprocess, store file comparison, run reports, claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MER_CLI = [sys.executable, "-c", "from mer.cli import app; app()"]
DATASET = "synth"
STAGES = "face,mesti"
_IGNORED_PARTS = {"_runs", "_claims", "_failed", "_cache"}  # _cache: stat cache of frame files


def preprocess_cmd(root: Path, store: Path, stages: str = STAGES, workers: int = 1, *extra: str) -> list[str]:
    """The ``mer-cli preprocess`` command line for the synthetic dataset."""
    return [
        *MER_CLI,
        "preprocess",
        "--root",
        str(root),
        "--store",
        str(store),
        "--name",
        DATASET,
        "--labels",
        "3class",
        "--stages",
        stages,
        "--workers",
        str(workers),
        "--quiet",
        *extra,
    ]


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: no Dask scheduler inherited, one BLAS thread."""
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(root: Path, store: Path, stages: str = STAGES, workers: int = 1) -> subprocess.CompletedProcess:
    """Run one preprocess to completion and return the finished process."""
    return subprocess.run(
        preprocess_cmd(root, store, stages, workers), capture_output=True, text=True, env=cli_env(), timeout=300
    )


def store_files(store: Path, stages: list[str] | None = None) -> dict[str, bytes]:
    """Chunks and commit markers of a store by relative path: ``zarr.json``, run reports, claims, failure
    records and hidden temporary files aside; only the entries of ``stages`` when given."""
    out = {}
    for path in store.rglob("*"):
        rel = path.relative_to(store)
        if not path.is_file() or path.name == "zarr.json" or _is_leftover(path):
            continue
        if _IGNORED_PARTS & set(rel.parts):
            continue
        if stages is not None and (len(rel.parts) < 2 or rel.parts[1] not in stages):
            continue
        out[str(rel)] = path.read_bytes()
    return out


def _is_leftover(path: Path) -> bool:
    """A temporary file of an atomic write that was interrupted: ours are hidden, zarr's end in ``.partial``."""
    return path.name.startswith(".") or path.name.endswith(".partial")


def leftovers(store: Path) -> list[str]:
    """Temporary files of interrupted atomic writes left in the store (garbage, never read)."""
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and _is_leftover(p))


def done_markers(store: Path) -> list[Path]:
    """Every commit marker ``<dataset>/<stage>/<key>/_done/<index>.json`` in the store."""
    return sorted(store.glob("*/*/*/_done/*.json"))


def committed_mismatches(store: Path, reference: Path) -> list[str]:
    """Commit markers of ``store`` (and the chunks they list) whose bytes differ from ``reference``'s."""
    bad = []
    for marker in done_markers(store):
        rel = marker.relative_to(store)
        ref_marker = reference / rel
        if not ref_marker.exists() or ref_marker.read_bytes() != marker.read_bytes():
            bad.append(f"{rel}: marker differs from the reference")
            continue
        entry = marker.parent.parent
        for chunk in json.loads(marker.read_text())["chunks"]:
            mine, theirs = entry / chunk, reference / entry.relative_to(store) / chunk
            if not mine.exists() or mine.read_bytes() != theirs.read_bytes():
                bad.append(f"{rel}: chunk {chunk} differs from the reference")
    return bad


def run_reports(store: Path) -> list[dict[str, Any]]:
    """Every run report in ``_runs/``."""
    return [json.loads(p.read_text()) for p in sorted((store / "_runs").glob("*.json"))]


def claim_files(store: Path) -> list[str]:
    """Claim files left in any entry's ``_claims/`` folder."""
    return sorted(str(p.relative_to(store)) for p in store.glob("*/*/*/_claims/*") if not p.name.startswith("."))


def api_store(root: Path, location: Path) -> Any:
    """Open (create) a store at ``location`` holding the synthetic manifest, as ``preprocess`` writes it."""
    from mer.datasets import load
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.store import open_store

    result = load("folder", root, labels="3class", dataset_name=DATASET)
    store = open_store(str(location), "a")
    write_dataset_manifest(store, DATASET, result.manifest, root, result.adapter, result.label_set.to_dict())
    return store


def plan_for(store: Any, stages: str = STAGES) -> list[Any]:
    """The plan ``preprocess --stages`` builds."""
    from mer.pipeline.catalog import expand_stages
    from mer.pipeline.graph import build_plan

    return build_plan(store, DATASET, expand_stages(stages))
