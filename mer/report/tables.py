"""Comparison tables across experiment runs (rows: input x model; columns: metric per dataset).

A run whose protocol let test subjects into training (plain ``holdout`` / ``kfold``) is marked
``(subject-dependent)`` in the protocol column, and the text and Markdown tables end with a warning naming it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from mer.train.results import CONFIG_FILE, METRICS_FILE, PROVENANCE_FILE, read_json

METRICS = ("uf1", "uar", "acc", "wf1")
SUBJECT_DEPENDENT = "(subject-dependent)"
_DEPENDENT_PROTOCOLS = ("holdout", "kfold")


def run_is_subject_independent(config: dict) -> bool:
    """From config.json: the measured flag when present, else the protocol (older runs): grouped forms only."""
    if "subject_independent" in config:
        return bool(config["subject_independent"])
    proto = config.get("protocol", {})
    if not isinstance(proto, dict):
        return str(proto).split(":")[0] not in _DEPENDENT_PROTOCOLS or str(proto).endswith(":grouped")
    return proto.get("name") not in _DEPENDENT_PROTOCOLS or bool(proto.get("params", {}).get("grouped"))


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
        for name, value in ((CONFIG_FILE, cfg), (METRICS_FILE, m)):
            if not isinstance(value, dict):
                raise ValueError(f"{d / name}: not a JSON object ({type(value).__name__}); not a run folder's file")
        row: dict = {"input": _input_name(d, cfg), "model": cfg.get("model", "?"), "run": d.name}
        proto = cfg.get("protocol", {})
        row["protocol"] = proto.get("name", "?") if isinstance(proto, dict) else str(proto)
        if not run_is_subject_independent(cfg):
            row["protocol"] += f" {SUBJECT_DEPENDENT}"
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


def protocol_warnings(df: pd.DataFrame) -> list[str]:
    """One warning line when some runs of the table are subject-dependent (empty list otherwise)."""
    flat = df.reset_index()
    if "protocol" not in flat.columns:
        return []
    marked = flat[flat["protocol"].astype(str).str.endswith(SUBJECT_DEPENDENT)]
    if marked.empty:
        return []
    runs = ", ".join(str(r) for r in (marked["run"] if "run" in marked.columns else marked.index))
    return [
        f"Warning: {len(marked)} run(s) ({runs}) used a subject-dependent protocol: clips of one person are in both "
        "training and test, which inflates scores; use loso, or the grouped form (holdout:F:SEED:grouped, "
        "kfold:K:SEED:grouped), for results that generalise to new people."
    ]


def to_text(df: pd.DataFrame, digits: int = 3) -> str:
    """Plain fixed-width text table (metrics with ``digits`` decimals, missing values as '–'), then any warning."""
    flat = df.reset_index()
    table = flat.to_string(index=False, formatters={c: (lambda v: _fmt(v, digits)) for c in flat.columns})
    return "\n".join([table, *protocol_warnings(df)])


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """GitHub-flavoured Markdown table of ``df`` (index included as leading columns)."""
    flat = df.reset_index()
    cols = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in flat.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], digits).replace("|", "\\|") for c in flat.columns) + " |")
    lines += [f"\n> **{w.split(': ', 1)[0]}**: {w.split(': ', 1)[1]}" for w in protocol_warnings(df)]
    return "\n".join(lines) + "\n"
