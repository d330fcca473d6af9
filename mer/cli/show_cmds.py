"""``mer-cli show-face`` and ``show-mesti``: pictures a person can check a clip with at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import typer
from rich.markup import escape

from mer.cli.console import console
from mer.cli.store_open import open_cli_store
from mer.names import validate_clip_id, validate_component


def _save_png(image: np.ndarray, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise typer.BadParameter(f"could not write {out}")
    console.print(f"wrote {escape(str(out))}")


def _open_clip(store: str, dataset: str, clip: str) -> tuple[Any, pd.Series]:
    """The store (read-only) and the manifest row of ``clip``; unsafe names and unknown clips are one-line errors."""
    validate_component("dataset", dataset)
    validate_clip_id(clip)
    st = open_cli_store(store, "r")
    table = st.manifest(dataset).set_index("clip_id")
    if clip not in table.index:
        known = ", ".join(list(table.index[:5])) + (", …" if len(table) > 5 else "")
        raise ValueError(f"clip {clip!r} is not in dataset {dataset!r} of {store} (clips: {known or 'none'})")
    return st, table.loc[clip]


def show_face(
    store: str = typer.Argument(..., help="store path or URL"),
    dataset: str = typer.Argument(...),
    clip: str = typer.Argument(..., help="clip id, subject/clip"),
    out: Path = typer.Option(Path("face.png"), "--out"),
    frame: int = typer.Option(0, help="frame position inside the clip (0 = onset)"),
    roi: str = typer.Option("stag6", help="ROI set to draw: stag6, stag14, stag18, a TOML file, or none"),
) -> None:
    """A frame with landmarks, ROI boxes and the crop outline, beside its aligned, equalised face."""
    from mer.pipeline.face.draw import draw_face_figure
    from mer.pipeline.frames_io import read_frame

    st, row = _open_clip(store, dataset, clip)
    if not 0 <= frame < len(row["frame_paths"]):
        raise typer.BadParameter(f"--frame {frame}: clip {clip} has {len(row['frame_paths'])} frames")
    image = read_frame(row["frame_paths"][frame])
    aligned_landmarks = st.read(dataset, "align", clip=clip, name="landmarks")[frame]
    rois = None
    if roi != "none":
        from mer.pipeline.flow.roi import roi_boxes

        rois = roi_boxes(aligned_landmarks, roi)
    figure = draw_face_figure(
        image,
        st.read(dataset, "landmarks", clip=clip)[frame],
        st.read(dataset, "detect", clip=clip, name="box"),
        st.read(dataset, "equalize", clip=clip)[frame],
        rois,
        transform=st.read(dataset, "align", clip=clip, name="transforms")[frame],
        aligned_landmarks=aligned_landmarks,
        rois_space="aligned",
    )
    _save_png(figure, out)


def show_mesti(
    store: str = typer.Argument(..., help="store path or URL"),
    dataset: str = typer.Argument(...),
    clip: str = typer.Argument(..., help="clip id, subject/clip"),
    out: Path = typer.Option(Path("mesti.png"), "--out"),
    apex_key: str | None = typer.Option(
        None, "--apex-key", help="apex entry to use (default: the dataset's one apex entry; build-input --kind apex)"
    ),
    scheme: str = typer.Option("mesti", help="mesti | mesti-distance"),
) -> None:
    """MESTI, dynamic image and apex frame side by side with the weight curves, at the stored apex of the clip."""
    from mer.pipeline.temporal.figure import show_mesti_figure
    from mer.pipeline.temporal.stages import MestiParams

    st, _ = _open_clip(store, dataset, clip)
    MestiParams(scheme=scheme)  # validates the option
    frames = st.read(dataset, "equalize", clip=clip)
    position = int(st.read(dataset, "apex", clip=clip, key=apex_key, name="apex")[0])
    _save_png(show_mesti_figure(frames, position, scheme=scheme, title=f"{dataset} {clip}"), out)
