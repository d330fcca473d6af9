"""SAMM adapter.

Expected layout::

    ROOT/
      SAMM_Micro_FACS_Codes_v2.xlsx      title/notes block on top; the header row (14th) is found by name
      SAMM/                              (or any folder holding the 3-digit subject folders)
        006/006_1_2/006_05562.jpg …      greyscale frames numbered as in the sheet

Sheet columns: `Subject` (6 -> folder 006), `Filename`, `Onset Frame`, `Apex Frame`, `Offset Frame`,
`Duration` (checked against onset/offset: a warning when it disagrees), `Type`, `Action Units` (may hold
"or"), `Estimated Emotion` (`Other` -> `others`), `Objective Classes`, `Notes`.
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
from .sheets import Column

NAME = "samm"
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xls*", "*SAMM*FACS*.xls*", "*SAMM*.xls*", "*samm*.csv")
FRAME_FOLDERS = ("SAMM", "SAMM_CROP", "SAMM_cropped")


def read(
    root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
) -> AdapterOutput:
    """Read SAMM under `root` into records."""
    frames_root = find_frames_root(root, r"\d{3}", FRAME_FOLDERS)
    folders = subdirs(frames_root)
    columns = standard_columns(extra=(Column("n_frames", ("Duration",), required=False),))
    return read_sheet_adapter(
        NAME,
        root,
        annotations,
        column_map,
        problems,
        SHEET_PATTERNS,
        columns,
        subject_of=lambda v: resolve_subject(v, folders, lambda n: f"{n:03d}"),
        folder_of=lambda subject, clip, values: safe_join(frames_root, subject, clip),
    )
