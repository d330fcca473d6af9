"""4DME adapter (adapter name `4dme`; greyscale 2D frames).

Expected layout::

    ROOT/
      4DME_Labelling_Micro_release v1.xlsx
      gray_micro/                        (or any folder holding the subject folders)
        <sub_ID>/<fold_name>/<frames>

Sheet columns: `sub_ID`, `fold_name`, `Onset`, `Apex`, `Offset`, `AUs` (AUs marked `(k)` are uncertain: kept
in `au_details`, counted in `au_vector`), `Emotion`, plus one column per AU (not read).
"""

from __future__ import annotations

from pathlib import Path

from .layout import (
    find_frames_root,
    read_sheet_adapter,
    resolve_subject,
    safe_join,
    standard_columns,
    subdirs,
)
from .manifest import AdapterOutput
from .problems import Problem

NAME = "4dme"
SHEET_PATTERNS = ("4DME_Labelling*.xls*", "*4DME*Label*.xls*", "*4DME*.xls*", "*4dme*.csv")
FRAME_FOLDERS = ("gray_micro", "grey_micro", "micro")


def read(
    root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
) -> AdapterOutput:
    """Read 4DME under `root` into records."""
    base = root
    lower = {n.lower(): n for n in subdirs(root)}
    for name in FRAME_FOLDERS:
        if name in lower:
            base = root / lower[name]
            break
    else:
        base = find_frames_root(root, r"(sub|s)?_?\d+", FRAME_FOLDERS)
    folders = subdirs(base)
    columns = standard_columns(
        subject=("sub_ID", "Subject", "sub"),
        clip=("fold_name", "Filename", "folder"),
        action_units=("AUs", "AU", "Action Units"),
        emotion=("Emotion", "Estimated Emotion"),
    )
    return read_sheet_adapter(
        NAME,
        root,
        annotations,
        column_map,
        problems,
        SHEET_PATTERNS,
        columns,
        subject_of=lambda v: resolve_subject(v, folders),
        folder_of=lambda subject, clip, values: safe_join(base, subject, clip),
    )
