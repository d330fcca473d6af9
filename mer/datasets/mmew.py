"""MMEW adapter.

Expected layout (clip folders are grouped by emotion)::

    ROOT/
      MMEW_Micro_Exp.xlsx
      Micro_Expression/                  (or ROOT itself holds the emotion folders)
        happiness/<Filename>/1.jpg …

Sheet columns: `Subject`, `Filename`, `OnsetFrame`, `ApexFrame`, `OffsetFrame`, `Action Units`,
`Estimated Emotion`, `remarks`. A clip is looked for under the emotion folder of its row first
(case-insensitive), then under every emotion folder.
"""

from __future__ import annotations

from pathlib import Path

from .labels import normalise_emotion
from .layout import read_sheet_adapter, safe_join, standard_columns, subdirs
from .manifest import AdapterOutput
from .problems import Problem
from .sheets import cell_text

NAME = "mmew"
SHEET_PATTERNS = ("MMEW_Micro_Exp*.xls*", "*MMEW*Micro*.xls*", "*MMEW*.xls*", "*mmew*.csv")
FRAME_FOLDERS = ("Micro_Expression", "Micro-Expression", "micro_expression")


def _frames_base(root: Path) -> Path:
    for parent in (root, *[root / d for d in subdirs(root)]):
        lower = {n.lower(): n for n in subdirs(parent)}
        for name in FRAME_FOLDERS:
            if name.lower() in lower:
                return parent / lower[name.lower()]
    return root


def read(
    root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
) -> AdapterOutput:
    """Read MMEW under `root` into records."""
    base = _frames_base(root)
    emotion_dirs = subdirs(base)

    def folder_of(subject: str, clip: str, values: dict[str, object]) -> Path | None:
        wanted = normalise_emotion(values.get("emotion"))
        first = [d for d in emotion_dirs if normalise_emotion(d) == wanted]
        for d in first + [d for d in emotion_dirs if d not in first]:
            candidate = safe_join(base, d, clip)
            if candidate is not None and candidate.is_dir():
                return candidate
        return safe_join(base, first[0] if first else cell_text(values.get("emotion")) or "?", clip)

    return read_sheet_adapter(
        NAME,
        root,
        annotations,
        column_map,
        problems,
        SHEET_PATTERNS,
        standard_columns(),
        subject_of=cell_text,
        folder_of=folder_of,
    )
