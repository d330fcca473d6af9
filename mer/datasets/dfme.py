"""DFME adapter (provisional: the release's CSV headers are matched by several common spellings).

Expected layout::

    ROOT/
      *.csv / *.xlsx                     one sheet per release part (train, Test A, Test B); all are read,
                                         or pass annotations=PATH for one of them
      <subject>/<clip>/<frames>          or <clip>/<frames> directly under ROOT (or under a single
                                         sub-folder such as ROOT/frames/)

Sheet columns (any of the spellings): subject (`Subject`, `sub`, `subject_id`), clip (`Filename`, `clip`,
`video`, `sample`), `Onset`/`OnsetFrame`, `Apex`/`ApexFrame` (optional), `Offset`/`OffsetFrame`, AUs
(`AU`, `AUs`, `Action Units`, optional), emotion (`Emotion`, `Estimated Emotion`, `label`). Seven classes:
anger, contempt, disgust, fear, happiness, sadness, surprise.

Why code and not only a specification (`mer.datasets.sheet_adapter`): the release splits the labels over several
sheets that are all read, and clip folders may sit under subject folders or directly under the root.
"""

from __future__ import annotations

from pathlib import Path

from .corrections import load_corrections
from .layout import read_sheet_adapter, resolve_subject, safe_join, standard_columns, subdirs
from .manifest import AdapterOutput
from .problems import Problem
from .sheets import SHEET_EXTENSIONS

NAME = "dfme"
COLUMNS = standard_columns(
    subject=("Subject", "sub", "subject_id", "sub_ID"),
    clip=("Filename", "clip", "video", "sample", "fold_name", "video_name"),
    onset=("Onset", "OnsetFrame", "Onset Frame", "onset_frame"),
    apex=("Apex", "ApexFrame", "Apex Frame", "apex_frame"),
    offset=("Offset", "OffsetFrame", "Offset Frame", "offset_frame"),
    emotion=("Emotion", "Estimated Emotion", "label"),
)


def _frames_base(root: Path) -> Path:
    dirs = subdirs(root)
    return root / dirs[0] if len(dirs) == 1 else root


def read(
    root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
) -> AdapterOutput:
    """Read DFME under `root` into records (all sheets found, or `annotations`)."""
    base = _frames_base(root)
    folders = [d for d in subdirs(base) if subdirs(base / d)]  # subject folders hold clip folders

    def folder_of(subject: str, clip: str, values: dict[str, object]) -> Path | None:
        nested = safe_join(base, subject, clip)
        if nested is not None and nested.is_dir():
            return nested
        flat = safe_join(base, clip)
        return flat if flat is not None and flat.is_dir() else nested

    sheets = (
        [annotations]
        if annotations is not None
        else sorted(
            p
            for p in root.iterdir()
            if p.is_file() and p.suffix.lower() in SHEET_EXTENSIONS and not p.name.startswith("~$")
        )
    )
    out = AdapterOutput(dataset=NAME, records=[], corrections=load_corrections(NAME))
    if not sheets:
        problems.append(
            Problem.about_file(root, "no DFME annotation sheet (.csv/.xlsx) found in the root; pass annotations=PATH")
        )
        return out
    for sheet in sheets:
        part = read_sheet_adapter(
            NAME,
            root,
            Path(sheet),
            column_map,
            problems,
            (),
            COLUMNS,
            subject_of=lambda v: resolve_subject(v, folders),
            folder_of=folder_of,
        )
        out.records += part.records
        out.annotation_files += part.annotation_files
        out.has_apex = out.has_apex and part.has_apex
    return out
