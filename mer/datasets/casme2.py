"""CASME II adapter.

Expected layout (the owners' release; the root may be the folder holding both, or the frames folder itself)::

    ROOT/
      CASME2-coding-20140508.xlsx        (also CASME2-coding-updated.xlsx, CASME2_label_Ver_2.xls)
      CASME2_RAW_selected/               (or CASME2_RAW/, Cropped/, or any folder holding sub01…)
        sub01/EP02_01f/img46.jpg …       frames numbered as in the sheet (reg_img46.jpg in cropped sets)

Sheet columns: `Subject` (1…26, matched to folders sub01…), `Filename`, `OnsetFrame`, `ApexFrame` (`/` when
missing: apex <NA> with a warning), `OffsetFrame`, `Action Units`, `Estimated Emotion`. The header row is
found by these names, not by position.
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

NAME = "casme2"
SHEET_PATTERNS = (
    "CASME2-coding*.xls*",
    "CASME2*coding*.xls*",
    "CASME2_label*.xls*",
    "*CASME2*.xls*",
    "*casme*.csv",
)
FRAME_FOLDERS = ("CASME2_RAW_selected", "CASME2_RAW", "Cropped", "CASME2_Cropped")


def read(
    root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
) -> AdapterOutput:
    """Read CASME II under `root` into records (validated later by `build_manifest`)."""
    frames_root = find_frames_root(root, r"sub\d+", FRAME_FOLDERS)
    folders = subdirs(frames_root)
    return read_sheet_adapter(
        NAME,
        root,
        annotations,
        column_map,
        problems,
        SHEET_PATTERNS,
        standard_columns(),
        subject_of=lambda v: resolve_subject(v, folders, lambda n: f"sub{n:02d}"),
        folder_of=lambda subject, clip, values: safe_join(frames_root, subject, clip),
    )
