"""Comparison tables across experiment runs (rows: input x model; columns: metric per dataset)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from mer.train.results import CONFIG_FILE, METRICS_FILE, PROVENANCE_FILE, read_json

METRICS = ("uf1", "uar", "acc", "wf1")


def _input_name(run_dir: Path, config: dict) -> str:
    if config.get("input"):
        return str(config["input"])
    prov_path = run_dir / PROVENANCE_FILE
    if prov_path.exists():
        prov = read_json(prov_path)
        for key in ("input", "stage", "input_name"):
            if prov.get(key):
                return str(prov[key])
    return "?"


def compare_runs(run_dirs: Iterable[str | os.PathLike], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per run, indexed by (input, model); columns ``all/<metric>`` and ``<dataset>/<metric>``.

    Also carries ``protocol`` and ``run`` (directory name) columns so that runs of one input x model under
    different protocols or options stay distinguishable. Metric values are fractions.
    """
    rows = []
    for d in run_dirs:
        d = Path(d)
        cfg, m = read_json(d / CONFIG_FILE), read_json(d / METRICS_FILE)
        row: dict = {"input": _input_name(d, cfg), "model": cfg.get("model", "?"), "run": d.name}
        proto = cfg.get("protocol", {})
        row["protocol"] = proto.get("name", "?") if isinstance(proto, dict) else str(proto)
        for key in metrics:
            row[f"all/{key}"] = m.get(key)
        for ds, dm in sorted(m.get("per_dataset", {}).items()):
            for key in metrics:
                row[f"{ds}/{key}"] = dm.get(key)
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["input", "model", "run", "protocol"]).set_index(["input", "model"])
    df = pd.DataFrame(rows)
    fixed = ["input", "model", "run", "protocol"]
    metric_cols = [c for c in df.columns if c not in fixed]
    overall = [c for c in metric_cols if c.startswith("all/")]
    others = sorted(c for c in metric_cols if not c.startswith("all/"))
    return df[fixed + overall + others].set_index(["input", "model"]).sort_index(kind="stable")


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def to_text(df: pd.DataFrame, digits: int = 3) -> str:
    """Plain fixed-width text table (metrics with ``digits`` decimals, missing values as '–')."""
    flat = df.reset_index()
    return flat.to_string(index=False, formatters={c: (lambda v: _fmt(v, digits)) for c in flat.columns})


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """GitHub-flavoured Markdown table of ``df`` (index included as leading columns)."""
    flat = df.reset_index()
    cols = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in flat.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], digits).replace("|", "\\|") for c in flat.columns) + " |")
    return "\n".join(lines) + "\n"
