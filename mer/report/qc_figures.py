"""Pictures of the QC gallery: per-clip thumbnails (faces with landmarks, the stored image input) and the
one-figure dataset overview (distribution of each QC measure, clips per class and per subject)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer.pipeline.face.draw import draw_face_figure  # noqa: E402
from mer.pipeline.image_ops import minmax_uint8  # noqa: E402
from mer.report.qc_scores import MEASURES, QC_THRESHOLD  # noqa: E402

THUMB_HEIGHT = 96
"""Height in pixels of every thumbnail (faces strip, image input)."""

_GAP = 12


def _scale_affine(m: np.ndarray, pre: float, post: float) -> np.ndarray:
    """The 2×3 map ``x -> post·M(x/pre)`` in pixel-centre coordinates (used when both images are resized)."""
    m = np.asarray(m, dtype=np.float64).reshape(2, 3)

    def scaler(s: float) -> np.ndarray:
        return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])

    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return (scaler(post) @ full @ np.linalg.inv(scaler(pre)))[:2]


def _scale_points(pts: np.ndarray, s: float) -> np.ndarray:
    return np.asarray(pts, dtype=np.float64) * s + (0.5 * s - 0.5)


def _resize(img: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    s = height / img.shape[0]
    width = max(1, int(round(img.shape[1] * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=interp), s


def face_panel(
    frame: np.ndarray | None,
    landmarks: np.ndarray,
    box: Sequence[float],
    aligned: np.ndarray,
    transform: np.ndarray,
    aligned_landmarks: np.ndarray,
    height: int = THUMB_HEIGHT,
) -> np.ndarray:
    """One frame as ``draw_face_figure`` draws it (landmarks, box and crop outline beside the aligned face with
    its landmarks), drawn directly at ``height`` pixels so that the dots stay visible; RGB uint8.

    Without the source ``frame`` (not readable here) only the aligned face is drawn."""
    small_aligned, s_al = _resize(aligned, height)
    if frame is None:  # the right panel of draw_face_figure: the aligned face with its landmarks
        pts = _scale_points(aligned_landmarks, s_al)
        figure = draw_face_figure(small_aligned, pts, (0, 0, 1, 1), small_aligned, aligned_landmarks=pts)
        return figure[:, -small_aligned.shape[1] :]
    small, s = _resize(frame, height)
    bx = [v * s for v in box]
    return draw_face_figure(
        small,
        _scale_points(landmarks, s),
        bx,
        small_aligned,
        transform=_scale_affine(transform, s, s_al),
        aligned_landmarks=_scale_points(aligned_landmarks, s_al),
    )


def strip(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Panels of one height side by side with white gaps."""
    h = panels[0].shape[0]
    gap = np.full((h, _GAP, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            parts.append(gap)
        parts.append(p)
    return np.concatenate(parts, axis=1)


def image_thumbnail(image: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    """A stored image input (C×H×W, uint8 or float) as an RGB uint8 thumbnail, contrast-stretched for display."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 2, 3) and img.shape[2] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 2:  # e.g. a two-channel flow image: show magnitude-free (u, v, 0)
        img = np.concatenate([img, np.zeros_like(img[:, :, :1])], axis=2)
    # Contrast stretched between the 1st and 99th percentile for display: a MESTI or difference image is mostly
    # flat grey with the motion in a few pixels.
    lo, hi = np.percentile(img, [1, 99])
    img = minmax_uint8(np.clip(img.astype(np.float64), lo, hi)) if hi > lo else minmax_uint8(img)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return _resize(img[:, :, :3], height)[0]


def frame_thumbnail(frame: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    """A video frame (H×W×3 uint8 RGB) scaled to ``height``, colours unchanged."""
    return _resize(frame, height)[0]


def save_jpeg(image: np.ndarray, path: str | os.PathLike, quality: int = 85) -> None:
    """Write an RGB uint8 image as JPEG (raises OSError naming the path when it cannot be written)."""
    ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not write {path}")


def _hist(ax: plt.Axes, values: np.ndarray, limit: float, title: str) -> None:
    finite = values[np.isfinite(values)]
    if len(finite):
        ax.hist(finite, bins=min(30, max(5, len(finite) // 3)), color="#4a7fb5")
    ax.axvline(limit, color="#c0392b", linestyle="--", linewidth=1)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def _bars(ax: plt.Axes, counts: pd.Series, title: str) -> None:
    ax.bar(range(len(counts)), counts.to_numpy(), color="#6a9f58")
    ax.set_xticks(range(len(counts)), [str(c) for c in counts.index], rotation=60, ha="right", fontsize=6)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)


def overview_figure(table: pd.DataFrame, out_path: str | os.PathLike, title: str = "") -> Path:
    """One PNG: histograms of the score and of each measure (dashed: threshold / limit), clips per class and per
    subject (at most 40 subjects shown, most clips first) -> the path."""
    fig, axes = plt.subplots(2, 4, figsize=(13, 5.2), dpi=90)
    flat = axes.ravel()
    _hist(flat[0], table["score"].to_numpy(dtype=float), QC_THRESHOLD, "score (min sub-score)")
    for ax, (name, m) in zip(flat[1:5], MEASURES.items(), strict=True):
        _hist(ax, table[name].to_numpy(dtype=float), m.limit, f"{name} (limit {m.limit:g})")
    status = table["status"].value_counts().reindex(["failed", "missing", "flagged", "ok"], fill_value=0)
    _bars(flat[5], status, "clips per status")
    _bars(flat[6], table["label"].value_counts().sort_index(), "clips per class")
    subjects = table["subject"].value_counts()
    _bars(
        flat[7], subjects.iloc[:40].sort_index(), "clips per subject" + (" (40 largest)" if len(subjects) > 40 else "")
    )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out = Path(out_path)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out
