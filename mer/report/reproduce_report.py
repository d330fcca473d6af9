"""The table of a reproduced experiment, our number beside the paper's in every cell: Markdown, LaTeX, a figure."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer.train.paper_grids import Experiment  # noqa: E402

QUICK_NOTE = (
    "Quick run (--quick): the grid shrunk on a synthetic store (tiny images, few epochs, the store's labels, every "
    "network a tiny MEGANet unless --real-networks). These numbers test the pipeline; they say nothing about the paper."
)


def _num(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _grid(exp: Experiment, cells: pd.DataFrame) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    return {
        (r["row"], r["column"]): (_none(r["ours"]), _none(r["paper"])) for _, r in cells.iterrows()
    }


def _none(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _dependent_runs(cells: pd.DataFrame) -> list[str]:
    flags = cells.dropna(subset=["run"])
    return sorted({r["run"] for _, r in flags.iterrows() if r["subject_independent"] is False})


def to_markdown(exp: Experiment, cells: pd.DataFrame, quick: bool = False) -> str:
    """Markdown: one row per table row, each cell ``ours (paper X)``; notes, warnings and run folders below."""
    grid = _grid(exp, cells)
    lines = [f"# {exp.table}: {exp.title}", ""]
    if quick:
        lines += [f"> {QUICK_NOTE}", ""]
    lines += ["| | " + " | ".join(exp.columns) + " |", "|---" * (len(exp.columns) + 1) + "|"]
    for row in exp.rows:
        entries = []
        for column in exp.columns:
            ours, paper = grid.get((row, column), (None, None))
            entries.append(f"{_num(ours)} (paper {_num(paper)})")
        lines.append(f"| {row} | " + " | ".join(entries) + " |")
    lines.append("")
    for row, reason in exp.not_reproduced.items():
        lines.append(f"- Not reproduced: {row}: {reason}.")
    dependent = _dependent_runs(cells)
    if dependent:
        lines.append(
            f"- **Warning**: {len(dependent)} run(s) used a subject-dependent protocol (test subjects also in "
            "training), as the paper did; scores are optimistic. `--subject-independent` holds out whole subjects."
        )
    lines += [f"- {note}" for note in exp.notes]
    runs = sorted({r for r in cells["run"].dropna()})
    lines += ["", "Run folders: " + ", ".join(f"`runs/{r}`" for r in runs), ""]
    return "\n".join(lines)


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("->", r"$\to$"), ("±", r"$\pm$"), ("°", r"$^\circ$")):
        text = text.replace(a, b)
    return text


def to_latex(exp: Experiment, cells: pd.DataFrame, quick: bool = False) -> str:
    """A ``tabular`` with ``ours / paper`` in every cell (booktabs rules)."""
    grid = _grid(exp, cells)
    spec = "l" + "c" * len(exp.columns)
    lines = [
        f"% {exp.table}: {exp.title}. Each cell: ours / paper." + (" QUICK RUN: synthetic data." if quick else ""),
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        " & ".join([""] + [_tex(c) for c in exp.columns]) + r" \\",
        r"\midrule",
    ]
    for row in exp.rows:
        entries = [_tex(row)]
        for column in exp.columns:
            ours, paper = grid.get((row, column), (None, None))
            entries.append(f"{_num(ours)} / {_num(paper)}".replace("–", "--"))
        lines.append(" & ".join(entries) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def plot_reproduction(exp: Experiment, cells: pd.DataFrame, path: Path, quick: bool = False) -> Path:
    """Paired horizontal bars, ours and the paper's, for every cell of the table."""
    grid = _grid(exp, cells)
    labels = [f"{r} · {c}" for r in exp.rows for c in exp.columns]
    ours = [grid.get((r, c), (None, None))[0] for r in exp.rows for c in exp.columns]
    paper = [grid.get((r, c), (None, None))[1] for r in exp.rows for c in exp.columns]
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.28 * len(labels)), dpi=100)
    ax.barh(y - 0.2, [np.nan if v is None else v for v in ours], height=0.4, label="ours")
    ax.barh(y + 0.2, [np.nan if v is None else v for v in paper], height=0.4, label="paper", alpha=0.7)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (fraction)")
    ax.set_title(f"{exp.table}: {exp.title}" + (" (quick, synthetic)" if quick else ""), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_reproduction(exp: Experiment, cells: pd.DataFrame, out: Path, quick: bool = False) -> list[Path]:
    """Write ``<name>.md``, ``<name>.tex``, ``<name>.png`` and ``<name>.csv`` (the cells) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md, tex, png, csv = (out / f"{exp.name}{ext}" for ext in (".md", ".tex", ".png", ".csv"))
    md.write_text(to_markdown(exp, cells, quick))
    tex.write_text(to_latex(exp, cells, quick))
    cells.to_csv(csv, index=False)
    plot_reproduction(exp, cells, png, quick)
    return [md, tex, png, csv]
