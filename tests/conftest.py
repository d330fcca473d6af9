"""Shared fixtures: tiny image clips and manifests the store tests build themselves."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import mer.pipeline.catalog  # noqa: F401  (registers the built-in stages for every test)

os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_tiny_clips(root: Path, n_clips: int = 4, n_frames: int = 5, size: int = 16, seed: int = 0) -> pd.DataFrame:
    """Write ``n_clips`` clips of random PNG frames under root and return a manifest in the adapter's format."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_clips):
        subject, clip = f"s{c % 2 + 1:02d}", f"c{c + 1:02d}"
        folder = root / subject / clip
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for t in range(n_frames):
            path = folder / f"img{t + 1}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            paths.append(str(path))
        rows.append(
            {
                "dataset": "tiny",
                "subject": subject,
                "clip": clip,
                "clip_id": f"{subject}/{clip}",
                "onset": 1,
                "apex": 3,
                "offset": n_frames,
                "n_frames": n_frames,
                "frame_paths": paths,
                "frame_numbers": list(range(1, n_frames + 1)),
                "action_units": "12",
                "au_vector": [0] * 21,
                "emotion": "positive",
                "label": 0,
                "label_name": "positive",
                "source_file": str(root / "annotations.csv"),
                "source_row": c + 2,
            }
        )
    df = pd.DataFrame(rows)
    df["apex"] = df["apex"].astype("Int64")
    return df


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "data"
    return root, write_tiny_clips(root)


@pytest.fixture(scope="session")
def face_store(tmp_path_factory) -> tuple[Path, str]:
    """A synthetic 3-class dataset (2 subjects × 3 clips, 320×240) preprocessed through the face stages.

    Tests must not modify it: copy the folder first when a test writes to it.
    """
    from mer.datasets import load
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.pipeline.catalog import expand_stages
    from mer.pipeline.graph import build_plan
    from mer.pipeline.runner import run_plan
    from mer.store import open_store
    from mer.synthetic.clips import generate_synthetic

    base = tmp_path_factory.mktemp("face_store")
    data = base / "data"
    generate_synthetic(data, subjects=2, clips_per_subject=3, classes=3, seed=11, frame_size=(320, 240))
    result = load("folder", data, labels="3class", dataset_name="synth")
    store = open_store(str(base / "store"), "a")
    write_dataset_manifest(store, "synth", result.manifest, data, result.adapter, result.label_set.to_dict())
    report = run_plan(store, "synth", build_plan(store, "synth", expand_stages("ingest,face")), workers=1)
    assert not report.failures, report.failures
    return base, "synth"


@pytest.fixture
def wide_consoles():
    """The CLI's consoles 2000 columns wide for a test, so that a line or table is found whole in the output."""
    from mer.cli.console import console, err_console

    saved = console.width, err_console.width
    console.width = err_console.width = 2000
    yield
    console.width, err_console.width = saved
