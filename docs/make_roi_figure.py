"""Draw the shipped ROI sets (stag6, stag14, stag18) on an aligned synthetic face → ``docs/roi_sets.png``.

    .venv/bin/python docs/make_roi_figure.py [--out docs/roi_sets.png]

The face is subject 0 of the synthetic generator (seed 0, 640×480 frame) with its exact 68 landmarks, aligned
like the ``align`` stage's defaults (inner eye corners, 256×256); boxes come from ``mer.pipeline.roi.roi_boxes``
and are drawn as the half-open pixel ranges they are (edges on pixel borders). Same inputs, same picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from mer.pipeline.face.align import align_clip  # noqa: E402
from mer.pipeline.flow.roi import load_roi_set, roi_boxes  # noqa: E402
from mer.synthetic.clips import make_subject  # noqa: E402

SETS = ("stag6", "stag14", "stag18")
REGION_COLOURS = {"brow": "#e6194b", "eye": "#3cb4f0", "nose": "#f5c000", "mouth": "#3cd24b"}


def aligned_face(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """An aligned synthetic face (RGB uint8 ``size×size``) and its 68 landmarks in aligned pixels."""
    subject = make_subject(0, "s01", (640, 480), seed=0)
    frame = np.clip(np.rint(subject.base), 0, 255).astype(np.uint8)
    aligned = align_clip(frame[None], subject.landmarks[None].astype(np.float64), size=size)
    return aligned.frames[0], aligned.landmarks[0]


def _colour(name: str) -> str:
    return next(c for region, c in REGION_COLOURS.items() if region in name)


def draw(out: Path) -> None:
    """Write the three-panel figure to ``out``."""
    face, landmarks = aligned_face()
    grey = face.mean(axis=2)
    every = np.array([b for name in SETS for b in roi_boxes(landmarks, name, face.shape).values()])
    view = (every[:, 0].min() - 10, every[:, 1].min() - 10, every[:, 2].max() + 10, every[:, 3].max() + 10)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), dpi=110)
    for ax, name in zip(axes, SETS, strict=True):
        rs = load_roi_set(name)
        boxes = roi_boxes(landmarks, rs, face.shape)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=255)
        ax.scatter(landmarks[:, 0], landmarks[:, 1], s=4, c="white", linewidths=0)
        for i, roi in enumerate(rs.rois):
            x0, y0, x1, y1 = boxes[roi.name]
            colour = _colour(roi.name)
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.3, ec=colour))
            cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
            label = ax.text(cx, cy, str(i), color=colour, fontsize=9, va="center", ha="center", fontweight="bold")
            label.set_path_effects([patheffects.withStroke(linewidth=2.2, foreground="black")])
        legend = "\n".join(f"{i:>2} {r.name}" for i, r in enumerate(rs.rois))
        ax.text(1.02, 1.0, legend, transform=ax.transAxes, va="top", ha="left", fontsize=8, family="monospace")
        ax.set_title(f"{name}: {len(rs)} ROIs", fontsize=11)
        ax.set_xlim(view[0], view[2])
        ax.set_ylim(view[3], view[1])
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "ROI boxes on an aligned 256×256 synthetic face (white: 68 landmarks; box = landmark extent + pad × iod)",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.005, right=0.9, wspace=0.42, top=0.88, bottom=0.01)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> None:
    """Command line: ``--out`` (default docs/roi_sets.png next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("roi_sets.png"))
    draw(parser.parse_args().out)


if __name__ == "__main__":
    main()
