"""The learned SOA angles of a FaceSleuth run per epoch (``theta_*`` columns of history.csv) as a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mer.train.results import HISTORY_FILE  # noqa: E402


def angle_columns(history: pd.DataFrame) -> list[str]:
    """History columns holding learned angles in degrees (``theta_1`` … ), in block order."""
    cols = [c for c in history.columns if c.startswith("theta_") and c[6:].isdigit()]
    return sorted(cols, key=lambda c: int(c[6:]))


def plot_angles(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path | None:
    """θ of each SOA block per epoch (mean over folds, band = min..max) -> ``angles.png``; None without angles."""
    run_dir = Path(run_dir)
    path = run_dir / HISTORY_FILE
    if not path.exists():
        return None
    history = pd.read_csv(path)
    cols = angle_columns(history)
    if not cols or history.empty:
        return None
    grouped = history.groupby("epoch")[cols]
    mean, lo, hi = grouped.mean(), grouped.min(), grouped.max()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for c in cols:
        line = ax.plot(mean.index, mean[c], label=f"block {c[6:]}")[0]
        ax.fill_between(mean.index, lo[c], hi[c], color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axhline(90, color="grey", linestyle=":", linewidth=1, label="90° (CVA)")
    ax.axhline(88, color="black", linestyle="--", linewidth=1, label="88° (paper)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("θ (degrees; mean over folds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_path) if out_path is not None else run_dir / "angles.png"
    fig.savefig(out)
    plt.close(fig)
    return out
