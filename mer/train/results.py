"""Result files of one experiment run and their readers.

A run directory holds ``metrics.json``, ``predictions.csv``, ``config.json``, ``history.csv`` and,
optionally, ``provenance.json`` and ``checkpoints/fold###.pt`` (state dicts; load with
``torch.load(path, weights_only=True)``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
PROVENANCE_FILE = "provenance.json"


@dataclass
class ExperimentResult:
    """What :func:`mer.train.experiment.run_experiment` returns (also written to ``out_dir``)."""

    metrics: dict
    predictions: pd.DataFrame
    history: pd.DataFrame
    config: dict
    out_dir: Path | None


def _clean(obj: Any) -> Any:
    """Replace NaN/inf by None recursively so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return _clean(obj.item())
    return obj


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write strict, indented JSON atomically (write a temp file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, sort_keys=False, allow_nan=False) + "\n")
    os.replace(tmp, path)


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a CSV atomically (no index)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a damaged one (cut short, edited, not UTF-8) is a ValueError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: damaged JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): cut short or edited; "
            "train that run again (a new --out) or restore the file"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 JSON file; train that run again (a new --out) or restore it") from None


def write_run(
    out_dir: str | os.PathLike,
    config: dict,
    provenance: dict | None,
    predictions: pd.DataFrame,
    history: pd.DataFrame,
    metrics: dict,
) -> None:
    """Write a run folder: config, provenance (when given), predictions, history, and ``metrics.json`` last (its
    presence marks a finished run)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, config)
    if provenance is not None:
        write_json(out / PROVENANCE_FILE, provenance)
    write_csv(out / PREDICTIONS_FILE, predictions)
    write_csv(out / HISTORY_FILE, history)
    write_json(out / METRICS_FILE, metrics)
