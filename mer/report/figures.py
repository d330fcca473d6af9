"""Figures of one run saved as PNG (matplotlib Agg): confusion matrix and training curves."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer.train.results import HISTORY_FILE, METRICS_FILE, read_json  # noqa: E402


def plot_confusion(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Pooled confusion matrix of a run (counts, rows normalised for colour) -> PNG path."""
    run_dir = Path(run_dir)
    m = read_json(run_dir / METRICS_FILE)
    cm = np.asarray(m["confusion_matrix"], dtype=float)
    names = m.get("class_names") or [str(i) for i in range(len(cm))]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(names), 1.0 + 0.8 * len(names)), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    uf1, uar = m.get("uf1"), m.get("uar")
    if uf1 is not None and uar is not None:
        ax.set_title(f"UF1 {uf1:.3f}  UAR {uar:.3f}")
    fig.tight_layout()
    out = Path(out_path) if out_path is not None else run_dir / "confusion.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_history(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Training curves (mean over folds per epoch of train loss/acc, and val metrics if present) -> PNG."""
    run_dir = Path(run_dir)
    h = pd.read_csv(run_dir / HISTORY_FILE)
    cols = [c for c in ("train_loss", "val_loss", "train_acc", "val_acc", "val_uf1") if c in h.columns]
    mean = h.groupby("epoch")[cols].mean() if len(h) else pd.DataFrame(columns=cols)
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    for c in cols:
        (ax_l if c.endswith("loss") else ax_a).plot(mean.index, mean[c], label=c)
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("loss (mean over folds)")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("score (mean over folds)")
    for ax in (ax_l, ax_a):
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    out = Path(out_path) if out_path is not None else run_dir / "history.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def save_run_figures(run_dir: str | os.PathLike) -> list[Path]:
    """Write ``confusion.png`` and ``history.png`` into ``run_dir``; return their paths."""
    return [plot_confusion(run_dir), plot_history(run_dir)]
