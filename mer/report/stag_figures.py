"""STAG explanations as figures (the paper's XAI figures): the learned ROI adjacency and the ROI importance.

One row per explained item (a clip, then one per class): the aligned face with every ROI box filled in
proportion to its importance (the attention it receives, :meth:`mer.models.stag.STAG.explain`) and the
frame-weighted adjacency of the last E-GAT layer as a heat map (row ``i``: how ROI ``i`` attends to the
others; rows sum to 1). Class rows average the clips whose true class it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Explanation:
    """What one figure row shows: a title, ROI importance R (sums to 1) and adjacency R×R (rows sum to 1)."""

    title: str
    importance: np.ndarray
    adjacency: np.ndarray


def frame_weighted_adjacency(adjacency: np.ndarray, frame_weights: np.ndarray) -> np.ndarray:
    """``Σ_t β_t A_t`` of the last layer: ``adjacency`` L×T×R×R (one clip), ``frame_weights`` T → R×R."""
    adj = np.asarray(adjacency, dtype=np.float64)
    return np.einsum("t,tij->ij", np.asarray(frame_weights, dtype=np.float64), adj[-1])


def mean_by_class(values: np.ndarray, labels: Sequence[int], class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Mean of ``values`` (N×…) over the rows of each class that has rows (``{class name: mean}``)."""
    labels = np.asarray(labels)
    return {name: values[labels == k].mean(axis=0) for k, name in enumerate(class_names) if np.any(labels == k)}


def importance_table(
    importance: np.ndarray, labels: Sequence[int], class_names: Sequence[str], roi_names
) -> pd.DataFrame:
    """Mean ROI importance per class: one row per class (and ``n`` clips), one column per ROI."""
    means = mean_by_class(np.asarray(importance, dtype=np.float64), labels, class_names)
    labels = np.asarray(labels)
    rows = [
        {"class": name, "n": int(np.sum(labels == class_names.index(name))), **dict(zip(roi_names, m, strict=True))}
        for name, m in means.items()
    ]
    return pd.DataFrame(rows, columns=["class", "n", *roi_names])


def _face_panel(ax, face: np.ndarray, boxes: dict[str, Box], roi_names, importance: np.ndarray, top: float) -> None:
    ax.imshow(face, cmap=None if face.ndim == 3 else "gray")
    cmap = plt.get_cmap("inferno")
    for name, value in zip(roi_names, importance, strict=True):
        x0, y0, x1, y1 = boxes[name]
        level = float(value) / top
        colour = cmap(0.15 + 0.85 * level)
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, facecolor=colour, alpha=0.15 + 0.5 * level, edgecolor=colour
            )
        )
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{100 * value:.0f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_axis_off()


def explanation_figure(
    face: np.ndarray,
    boxes: dict[str, Box],
    roi_names: Sequence[str],
    rows: Sequence[Explanation],
    title: str = "",
) -> plt.Figure:
    """One row per :class:`Explanation`: the face with importance-filled ROI boxes, and the adjacency map."""
    r = len(roi_names)
    fig, axes = plt.subplots(len(rows), 2, figsize=(6.5 + 0.2 * r, 3.6 * len(rows)), dpi=100, squeeze=False)
    top = max(float(np.max(row.importance)) for row in rows) or 1.0  # one colour scale for every row
    for (ax_face, ax_adj), row in zip(axes, rows, strict=True):
        _face_panel(ax_face, face, boxes, roi_names, np.asarray(row.importance, dtype=np.float64), top)
        ax_face.set_title(f"{row.title}\nROI importance (%)", fontsize=9)
        im = ax_adj.imshow(np.asarray(row.adjacency), cmap="viridis")  # own range: small contrasts show
        ax_adj.set_xticks(range(r), roi_names, rotation=90, fontsize=6)
        ax_adj.set_yticks(range(r), roi_names, fontsize=6)
        ax_adj.set_title("adjacency (row attends to column)", fontsize=9)
        fig.colorbar(im, ax=ax_adj, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, out_path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG (folders created) and close it."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
