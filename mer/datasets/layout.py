"""Shared adapter plumbing: finding the frames root and the sheet under a dataset root, matching the sheet's
subject values to subject folders (`1` -> `sub01`, `6` -> `006`), and turning sheet rows into `Record`s."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from mer.names import is_safe_component

from .corrections import load_corrections
from .manifest import AdapterOutput, Record
from .problems import Problem
from .sheets import Column, SheetTable, cell_text, find_sheet, read_sheet

_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def subdirs(folder: Path) -> list[str]:
    """Names of the sub-folders of `folder` (empty if it is not a folder)."""
    try:
        return sorted(e.name for e in folder.iterdir() if e.is_dir())
    except OSError:
        return []


def find_frames_root(root: Path, subject_pattern: str, preferred: Iterable[str] = (), depth: int = 3) -> Path:
    """The folder at or under `root` holding subject folders matching `subject_pattern` (regex, full match);
    `preferred` child names are tried first. Falls back to `root`."""
    pattern = re.compile(subject_pattern, re.IGNORECASE)
    level = [root]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for d in level:
            names = subdirs(d)
            if any(pattern.fullmatch(n) for n in names):
                return d
            lower = {n.lower(): n for n in names}
            first = [lower[p.lower()] for p in preferred if p.lower() in lower]
            nxt += [d / n for n in first] + [d / n for n in names if n not in first]
        level = nxt
    return root


def find_named_folder(root: Path, names: Iterable[str], depth: int = 1) -> Path | None:
    """The first folder named one of `names` (ignoring case) `depth` or fewer levels below `root` (1: a sub-folder of
    `root`; 2: also a sub-folder of one of those), shallower first, then in `names` order; None when there is none."""
    wanted = [n.lower() for n in names]
    level = [root]
    for _ in range(depth):
        for parent in level:
            lower = {n.lower(): n for n in subdirs(parent)}
            for name in wanted:
                if name in lower:
                    return parent / lower[name]
        level = [d / n for d in level for n in subdirs(d)]
    return None


def locate_sheet(
    root: Path, annotations: Path | None, patterns: tuple[str, ...], dataset: str, problems: list[Problem]
) -> Path | None:
    """The annotation sheet: `annotations` if given, else the first file under `root` matching `patterns`;
    adds an error naming what was looked for when none is found."""
    if annotations is not None:
        return Path(annotations)
    found = find_sheet(root, patterns)
    if found is None:
        problems.append(
            Problem.about_file(
                root,
                f"no {dataset} annotation sheet found under the root (looked for {', '.join(patterns)}); "
                "pass annotations=PATH",
            )
        )
    return found


def resolve_subject(value: object, folders: list[str], fallback: Callable[[int], str] | None = None) -> str:
    """The subject folder name for a sheet value: the same name if such a folder exists, else the one folder
    whose last number equals a numeric value (`1` -> `sub01`, `6` -> `006`), else `fallback(n)` or the
    text."""
    text = cell_text(value)
    if text in folders or not text:
        return text
    if text.isdigit():
        number = int(text)
        matches = [f for f in folders if (m := _LAST_DIGITS.search(f)) and int(m.group(1)) == number]
        if len(matches) == 1:
            return matches[0]
        if fallback is not None:
            return fallback(number)
    return text


def records_from_table(
    table: SheetTable,
    dataset: str,
    subject_of: Callable[[object], str],
    folder_of: Callable[[str, str, dict[str, object]], Path | None],
    clip_of: Callable[[str, dict[str, object]], str] | None = None,
) -> list[Record]:
    """One `Record` per sheet row with a subject or clip; `clip_of(subject, values)` may rename clips."""
    records: list[Record] = []
    for row, values in table.rows:
        raw_subject, raw_clip = values.get("subject"), values.get("clip")
        if raw_subject is None and raw_clip is None:
            continue
        subject = subject_of(raw_subject)
        clip = clip_of(subject, values) if clip_of is not None else cell_text(raw_clip)
        records.append(
            Record(
                dataset=dataset,
                subject=subject,
                clip=clip,
                folder=folder_of(subject, cell_text(raw_clip), values),
                values=dict(values),
                source_file=table.path,
                source_row=row,
                headers=dict(table.headers),
            )
        )
    return records


def safe_join(base: Path, *parts: str) -> Path | None:
    """`base/parts…` or None when a part is not a safe path component (`mer.names`: empty, separators, `..`,
    control characters, too long…), so that no file system call ever sees it."""
    if not all(is_safe_component(p) for p in parts):
        return None
    return base.joinpath(*parts)


def standard_columns(
    subject: tuple[str, ...] = ("Subject",),
    clip: tuple[str, ...] = ("Filename",),
    onset: tuple[str, ...] = ("OnsetFrame", "Onset Frame", "Onset"),
    apex: tuple[str, ...] = ("ApexFrame", "Apex Frame", "Apex"),
    offset: tuple[str, ...] = ("OffsetFrame", "Offset Frame", "Offset"),
    action_units: tuple[str, ...] = ("Action Units", "AU", "AUs"),
    emotion: tuple[str, ...] = ("Estimated Emotion", "Emotion"),
    extra: tuple[Column, ...] = (),
) -> list[Column]:
    """The usual annotation columns with the given accepted headers (apex and AUs optional)."""
    return [
        Column("subject", subject),
        Column("clip", clip),
        Column("onset", onset),
        Column("apex", apex, required=False),
        Column("offset", offset),
        Column("action_units", action_units, required=False),
        Column("emotion", emotion),
        *extra,
    ]


def read_sheet_adapter(
    name: str,
    root: Path,
    annotations: Path | None,
    column_map: dict[str, str] | None,
    problems: list[Problem],
    sheet_patterns: tuple[str, ...],
    columns: list[Column],
    subject_of: Callable[[object], str],
    folder_of: Callable[[str, str, dict[str, object]], Path | None],
    clip_of: Callable[[str, dict[str, object]], str] | None = None,
    row_filter: Callable[[SheetTable], SheetTable] | None = None,
    corrections: str | None = None,
) -> AdapterOutput:
    """Common path of the sheet-based adapters: locate and read the sheet, filter rows, make records, attach
    the built-in corrections table named `corrections` (none when None)."""
    out = AdapterOutput(dataset=name, records=[], corrections=load_corrections(corrections))
    sheet = locate_sheet(root, annotations, sheet_patterns, name, problems)
    if sheet is None:
        return out
    out.annotation_files.append(str(sheet))
    table = read_sheet(sheet, columns, problems, column_map)
    if table is None:
        return out
    if "apex" not in table.headers:
        out.has_apex = False  # one summary warning from build_manifest instead of one per row
    if row_filter is not None:
        table = row_filter(table)
    out.records = records_from_table(table, name, subject_of, folder_of, clip_of)
    return out
