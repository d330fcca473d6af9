"""The generic sheet adapter: one `read` for every dataset shipped as one annotation sheet plus one folder of frames
per clip, driven by a small specification (`SheetSpec`) instead of a module of code per dataset.

The built-in specifications are data, one TOML file each in `mer/datasets/specs/` (`casme2`, `samm`, `mmew`,
`casme3`, `4dme`); they register themselves as adapters (`mer.datasets.ADAPTERS`) and dataset names. A file holds::

    name = "casme2"                      # adapter and dataset name; `aliases = [...]` other spellings
    sheets = ["CASME2-coding*.xls*"]     # glob patterns of the sheet under the root, tried in order
    frame_folders = ["CASME2_RAW"]       # names tried first when searching for the frames root
    subject_folders = 'sub\\d+'           # regex: the frames root is the folder holding such folders
    subject_name = "sub{n:02d}"          # folder of a numeric sheet subject that matches no folder by number
    path = "{subject}/{clip}"            # clip folder under the frames root ({subject}, {clip}, {emotion}, names)
    composite_folders = ["casme2"]       # sub-folder names (letters and digits) holding it in a composite root
    [columns]                            # accepted header spellings; names beyond the standard seven are
    onset = ["OnsetFrame", "Onset"]      # optional extra columns (`n_frames` is checked against onset..offset)

and optionally `frame_folder_depth` (a folder named in `frame_folders` at most this many levels below the root is
the frames root, without a search by subject folders), `search_depth`, `clip_subfolder` (frames sit in this
sub-folder of the clip folder when it has one), `repeated_clips = "suffix"` (a clip name repeated for one subject
becomes `a`, `a_2`, …; otherwise a duplicate is an error), `[keep_rows]` (`column`, `equals`, `what`: keep only the
rows whose cell equals `equals`, compared on lower-case letters and digits) and `corrections` (the table in
`corrections/`; default: the name).

Conventions common to every sheet dataset (so not in the specification): the header row is found by its column
names, not by position; onset/apex/offset are frame numbers as written in the frame file names (`/` or an empty
cell is a missing apex); frames are any image files ordered by the last number in their name.

**Adding a dataset** is a new `specs/<name>.toml` plus a test that builds a tiny tree in the owners' layout and
checks its manifest (see `tests/fake_datasets.py`); code is needed only when a layout is truly different (SMIC's
folders-only release, DFME's several sheets and flat-or-nested folders).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .labels import normalise_emotion
from .layout import (
    find_frames_root,
    find_named_folder,
    read_sheet_adapter,
    resolve_subject,
    safe_join,
    standard_columns,
    subdirs,
)
from .manifest import AdapterOutput
from .problems import Problem
from .sheets import Column, SheetTable, cell_text

SPECS_DIR = Path(__file__).parent / "specs"
STANDARD_COLUMNS: tuple[Column, ...] = tuple(standard_columns())


@dataclass(frozen=True)
class KeepRows:
    """Keep only the rows whose `column` cell equals `equals` (lower case, letters and digits only); `what` names
    the kept kind in the warnings (`micro-expression`)."""

    column: str
    equals: str
    what: str


@dataclass(frozen=True)
class SheetSpec:
    """Everything that differs between two sheet datasets (see the module docstring for each field)."""

    name: str
    sheets: tuple[str, ...]
    path: str = "{subject}/{clip}"
    frame_folders: tuple[str, ...] = ()
    frame_folder_depth: int | None = None
    subject_folders: str | None = None
    search_depth: int = 3
    subject_name: str | None = None
    clip_subfolder: str | None = None
    repeated_clips: Literal["error", "suffix"] = "error"
    columns: tuple[Column, ...] = STANDARD_COLUMNS
    keep_rows: KeepRows | None = None
    corrections: str | None = None
    aliases: tuple[str, ...] = ()
    composite_folders: tuple[str, ...] = ()
    source: str = field(default="", compare=False)

    def frames_root(self, root: Path) -> Path:
        """The folder under `root` that `path` starts from: a `frame_folders` folder within `frame_folder_depth`
        levels, else the folder holding `subject_folders`, else `root`."""
        if self.frame_folder_depth is not None:
            named = find_named_folder(root, self.frame_folders, self.frame_folder_depth)
            if named is not None:
                return named
        if self.subject_folders is None:
            return root
        return find_frames_root(root, self.subject_folders, self.frame_folders, depth=self.search_depth)

    def subject_of(self, frames_root: Path) -> Callable[[object], str]:
        """Sheet subject value -> subject name: matched to the subject folders when `path` starts with them."""
        if not self.path.startswith("{subject}"):
            return cell_text
        folders = subdirs(frames_root)
        fallback = (lambda n: self.subject_name.format(n=n)) if self.subject_name else None
        return lambda value: resolve_subject(value, folders, fallback)

    def clip_folder(self, frames_root: Path, subject: str, clip: str, values: dict[str, object]) -> Path | None:
        """The clip's frame folder from `path` (None when a name is not a safe path component)."""
        folder = _follow(frames_root, self.path.split("/"), {"subject": subject, "clip": clip}, values.get("emotion"))
        if folder is None or self.clip_subfolder is None:
            return folder
        inner = folder / self.clip_subfolder
        return inner if inner.is_dir() or not folder.is_dir() else folder

    def read(
        self, root: Path, annotations: Path | None, column_map: dict[str, str] | None, problems: list[Problem]
    ) -> AdapterOutput:
        """Read the dataset under `root` into records (validated later by `build_manifest`)."""
        frames_root = self.frames_root(root)
        return read_sheet_adapter(
            self.name,
            root,
            annotations,
            column_map,
            problems,
            self.sheets,
            list(self.columns),
            subject_of=self.subject_of(frames_root),
            folder_of=lambda subject, clip, values: self.clip_folder(frames_root, subject, clip, values),
            clip_of=_suffix_repeats() if self.repeated_clips == "suffix" else None,
            row_filter=self._row_filter(problems),
            corrections=self.corrections,
        )

    def _row_filter(self, problems: list[Problem]) -> Callable[[SheetTable], SheetTable] | None:
        keep = self.keep_rows
        if keep is None:
            return None
        header = next(c.aliases[0] if c.aliases else c.name for c in self.columns if c.name == keep.column)
        return lambda table: _keep_rows(table, keep, header, problems)


def _follow(base: Path, parts: list[str], names: dict[str, str], emotion: object) -> Path | None:
    """Walk `parts` of a path template from `base`: `{subject}`/`{clip}` are the names, another part a folder
    matched ignoring case; `{emotion}` is the folder of the row's emotion, or the first other emotion folder
    under which the rest of the path exists."""
    for i, part in enumerate(parts):
        if part == "{emotion}":
            rest = parts[i + 1 :]
            folders = subdirs(base)
            wanted = normalise_emotion(emotion)
            first = [d for d in folders if normalise_emotion(d) == wanted]
            for d in first + [d for d in folders if d not in first]:
                below = safe_join(base, d)
                candidate = _follow(below, rest, names, emotion) if below is not None else None
                if candidate is not None and candidate.is_dir():
                    return candidate
            chosen = safe_join(base, first[0] if first else cell_text(emotion) or "?")
            return _follow(chosen, rest, names, emotion) if chosen is not None else None
        if part.startswith("{"):
            joined = safe_join(base, names[part[1:-1]])
            if joined is None:
                return None
            base = joined
        else:
            lower = {n.lower(): n for n in subdirs(base)}
            base = base / lower.get(part.lower(), part)
    return base


def _suffix_repeats() -> Callable[[str, dict[str, object]], str]:
    """Clip names that stay unique when one subject's sheet repeats a Filename: `a`, `a_2`, `a_3` (sheet order)."""
    counts: Counter = Counter()

    def clip_of(subject: str, values: dict[str, object]) -> str:
        name = cell_text(values.get("clip"))
        counts[(subject, name)] += 1
        n = counts[(subject, name)]
        return name if n == 1 else f"{name}_{n}"

    return clip_of


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _keep_rows(table: SheetTable, keep: KeepRows, header: str, problems: list[Problem]) -> SheetTable:
    """The rows of the wanted kind; one warning counts the others by value (or says the column, spelt `header`,
    is absent)."""
    if keep.column not in table.headers:
        problems.append(
            Problem(
                "warning",
                table.path,
                table.header_row,
                header,
                "",
                f"no {header!r} column: every row is taken as a {keep.what}",
            )
        )
        return table
    others: Counter = Counter()
    kept = []
    for row, values in table.rows:
        kind = cell_text(values.get(keep.column))
        if _letters(kind) == _letters(keep.equals):
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
                table.header(keep.column),
                summary,
                f"{sum(others.values())} rows are not {keep.what}s and are skipped",
            )
        )
    table.rows = kept
    return table
