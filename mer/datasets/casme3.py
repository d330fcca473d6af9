"""CAS(ME)^3 part A adapter (micro-expressions only).

Expected layout::

    ROOT/
      cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx
      part_A/ (or ME_A/, data/part_A/, or ROOT itself: any folder holding the spNO.* subject folders)
        spNO.1/a/color/123.jpg …         frames numbered as in the sheet (depth/ folders are ignored)

Sheet columns: `Subject` (spNO.1, or a number matched to the folders), `Filename` (the video folder, a, b, …),
`Onset`, `Apex`, `Offset`, `AU`, `emotion`, `Expression type`. Only rows with `Expression type` ==
"Micro-expression" are kept (the others are counted in one warning). A Filename repeated for one subject
(several micro-expressions in one video) gets a suffix in sheet order, `a`, `a_2`, `a_3`, all reading
`a/color/`.
"""

from __future__ import annotations

from collections import Counter
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
from .sheets import Column, SheetTable, cell_text

NAME = "casme3"
SHEET_PATTERNS = (
    "cas(me)3_part_A_ME_label*.xls*",
    "*part_A*label*.xls*",
    "*cas(me)*3*.xls*",
    "*casme3*.xls*",
    "*casme3*.csv",
)
FRAME_FOLDERS = ("part_A", "ME_A", "data", "Part_A")
MICRO = "microexpression"


def read(
    root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
) -> AdapterOutput:
    """Read CAS(ME)^3 part A under `root` into records."""
    frames_root = find_frames_root(root, r"spNO\.\d+", FRAME_FOLDERS, depth=4)
    folders = subdirs(frames_root)
    columns = standard_columns(
        emotion=("emotion", "Estimated Emotion", "Emotion"),
        extra=(Column("expression_type", ("Expression type", "Expression_type", "type"), required=False),),
    )

    def keep_micro(table: SheetTable) -> SheetTable:
        if "expression_type" not in table.headers:
            problems.append(
                Problem(
                    "warning",
                    table.path,
                    table.header_row,
                    "Expression type",
                    "",
                    "no 'Expression type' column: every row is taken as a micro-expression",
                )
            )
            return table
        others = Counter()
        kept = []
        for row, values in table.rows:
            kind = cell_text(values.get("expression_type"))
            if "".join(ch for ch in kind.lower() if ch.isalnum()) == MICRO:
                kept.append((row, values))
            else:
                others[kind or "<empty>"] += 1
        if others:
            summary = ", ".join(f"{k} {n}" for k, n in sorted(others.items()))
            problems.append(
                Problem(
                    "warning",
                    table.path,
                    None,
                    table.header("expression_type"),
                    summary,
                    f"{sum(others.values())} rows are not micro-expressions and are skipped",
                )
            )
        table.rows = kept
        return table

    counts: Counter = Counter()

    def clip_of(subject: str, values: dict[str, object]) -> str:
        name = cell_text(values.get("clip"))
        counts[(subject, name)] += 1
        n = counts[(subject, name)]
        return name if n == 1 else f"{name}_{n}"

    return read_sheet_adapter(
        NAME,
        root,
        annotations,
        column_map,
        problems,
        SHEET_PATTERNS,
        columns,
        subject_of=lambda v: resolve_subject(v, folders, lambda n: f"spNO.{n}"),
        folder_of=lambda subject, clip, values: _color(safe_join(frames_root, subject, clip)),
        clip_of=clip_of,
        row_filter=keep_micro,
    )


def _color(folder: Path | None) -> Path | None:
    if folder is None:
        return None
    return folder / "color" if (folder / "color").is_dir() or not folder.is_dir() else folder
