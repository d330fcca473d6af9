"""Shared fixtures: tiny image clips and manifests the store tests build themselves."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_tiny_clips(
    root: Path, n_clips: int = 4, n_frames: int = 5, size: int = 16, seed: int = 0
) -> pd.DataFrame:
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
