"""The manifest: one validated row per clip, built from adapters' annotation records.

Adapters turn a dataset's sheet and folders into `Record`s (raw cells, not yet trusted); `build_manifest`
applies the corrections table, validates every record (names, frame numbers, frames on disk, emotion), maps
emotions through the label set and returns the table the stages read. Rows with errors are left out and each
error is one `Problem`; the other clips go on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mer.frame_refs import VIDEO_EXTENSIONS
from mer.names import component_problem

from .aus import AU_LIST, au_vector, parse_aus
from .corrections import CorrectionTable
from .frames import FrameListing, compress_ranges, natural_key, scan_frames
from .labels import LabelSet, LabelSetFile, normalise_emotion, resolve_label_set
from .problems import Problem
from .sheets import cell_text

MANIFEST_COLUMNS = (
    "dataset",
    "subject",
    "clip",
    "clip_id",
    "onset",
    "apex",
    "offset",
    "n_frames",
    "frame_paths",
    "frame_numbers",
    "action_units",
    "au_vector",
    "emotion",
    "label",
    "label_name",
    "source_file",
    "source_row",
    "au_details",
    "au_numbers",
)
_STRING_COLUMNS = (
    "dataset",
    "subject",
    "clip",
    "clip_id",
    "action_units",
    "emotion",
    "label_name",
    "source_file",
    "au_details",
)
# The hash covers the content, not where the files are (paths, sheet location) nor what is derived from
# `action_units` (AU details and numbers), so the same dataset mounted elsewhere keeps its keys.
_LOCATION_COLUMNS = ("frame_paths", "source_file")
_DERIVED_COLUMNS = ("au_details", "au_numbers")
HASH_COLUMNS = tuple(c for c in MANIFEST_COLUMNS if c not in _LOCATION_COLUMNS + _DERIVED_COLUMNS)


@dataclass
class Record:
    """One annotated clip as an adapter read it. `values` holds raw cells under canonical names (`onset`,
    `apex`, `offset`, `action_units`, `emotion`, optional `n_frames`); `headers` the headers as written."""

    dataset: str
    subject: str
    clip: str
    folder: Path | None
    values: dict[str, object]
    source_file: str
    source_row: int | None
    headers: dict[str, str] = field(default_factory=dict)
    frames_from_folder: bool = False

    def column(self, name: str) -> str:
        """Header text of a canonical column in this record's sheet."""
        return self.headers.get(name, name)


@dataclass
class AdapterOutput:
    """What an adapter hands to `build_manifest`."""

    dataset: str
    records: list[Record]
    has_apex: bool = True
    corrections: CorrectionTable | None = None
    annotation_files: list[str] = field(default_factory=list)
    root: str = ""


@dataclass
class LoadResult:
    """Result of `mer.datasets.load`: the manifest, every problem found, the resolved label set, the adapter
    name, the corrections table(s) used (text for provenance) and the annotation files read."""

    manifest: pd.DataFrame
    problems: list[Problem]
    label_set: LabelSet
    adapter: str
    corrections: str | None = None
    annotation_files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Error-level problems."""
        return [p for p in self.problems if p.severity == "error"]


def bad_name(name: str) -> str | None:
    """Why a subject/clip name cannot be used as one path component, or None when it is fine (`mer.names`)."""
    return component_problem(name)


def parse_frame_number(value: object) -> tuple[int | None, bool]:
    """(number, ok) from a cell: (None, True) for an empty cell or `/`, (None, False) for junk."""
    if value is None:
        return None, True
    if isinstance(value, bool):
        return None, False
    if isinstance(value, int):
        return value, True
    if isinstance(value, float):
        return (int(value), True) if value.is_integer() else (None, False)
    text = str(value).strip()
    if text in {"", "/", "-", "nan", "NaN", "None", "n/a", "N/A"}:
        return None, True
    if text.isdigit():
        return int(text), True
    try:
        number = float(text)
    except ValueError:
        return None, False
    return (int(number), True) if number.is_integer() else (None, False)


def _apply_corrections(
    records: list[Record], tables: dict[str, CorrectionTable | None], problems: list[Problem]
) -> None:
    for rec in records:
        table = tables.get(rec.dataset)
        fix = table.lookup(rec.subject, rec.clip) if table is not None else None
        if fix is not None:
            rec.values.update(fix.values)
    for dataset, table in tables.items():
        if table is None:
            continue
        for fix in table.unused():
            problems.append(
                Problem(
                    "warning",
                    table.path,
                    None,
                    None,
                    f"{fix.subject}/{fix.clip}",
                    f"correction for {dataset} matches no annotation row (fix not applied)",
                    fix.subject,
                    fix.clip,
                )
            )


@dataclass
class _Checked:
    rec: Record
    onset: int
    apex: int | None
    offset: int
    numbers: list[int]
    paths: list[str]
    emotion: str


def _problem(rec: Record, severity: str, column: str | None, value: object, message: str) -> Problem:
    col = rec.column(column) if column is not None else None
    return Problem(
        severity,
        rec.source_file,
        rec.source_row,
        col,
        cell_text(value) if not isinstance(value, str) else value,
        message,
        rec.subject,
        rec.clip,
    )


def _check_record(
    rec: Record, listing_for: Callable[[Path], FrameListing], has_apex: bool, problems: list[Problem]
) -> _Checked | None:
    errors: list[Problem] = []
    for column, name in (("subject", rec.subject), ("clip", rec.clip)):
        why = bad_name(name)
        if why is not None:
            errors.append(_problem(rec, "error", column, name, f"{column} name unusable as a folder name: {why}"))
    if errors:
        problems.extend(errors)
        return None
    numbers: dict[str, int | None] = {}
    for key in ("onset", "apex", "offset"):
        number, ok = parse_frame_number(rec.values.get(key))
        if not ok:
            errors.append(_problem(rec, "error", key, rec.values.get(key), f"{key} is not a frame number"))
        numbers[key] = number
    onset, apex, offset = numbers["onset"], numbers["apex"], numbers["offset"]
    if not rec.frames_from_folder:
        for key in ("onset", "offset"):
            if numbers[key] is None and parse_frame_number(rec.values.get(key))[1]:
                errors.append(_problem(rec, "error", key, rec.values.get(key), f"{key} frame is missing"))
    if onset is not None and offset is not None:
        if onset > offset:
            errors.append(_problem(rec, "error", "onset", f"onset={onset} offset={offset}", "onset comes after offset"))
        elif apex is not None and not onset <= apex <= offset:
            errors.append(_problem(rec, "error", "apex", apex, f"apex outside onset..offset ({onset}..{offset})"))
    if apex is None and has_apex and parse_frame_number(rec.values.get("apex"))[1]:
        problems.append(
            _problem(
                rec,
                "warning",
                "apex",
                rec.values.get("apex"),
                "no apex frame annotated (apex is <NA>; the trainer's apex option decides)",
            )
        )
    listing: FrameListing | None = None
    if rec.folder is None:
        errors.append(_problem(rec, "error", "clip", rec.clip, "clip folder not found"))
    else:
        listing = listing_for(rec.folder)
        video = Path(rec.folder).suffix.lower() in VIDEO_EXTENSIONS
        if not listing.exists:
            errors.append(_problem(rec, "error", "clip", str(rec.folder), f"clip {'video' if video else 'folder'} "
                                   "not found"))
        elif not listing.frames and video:
            errors.append(_problem(rec, "error", "clip", str(rec.folder), "video file cannot be decoded (no frames)"))
        elif not listing.frames:
            extra = f" ({len(listing.unnumbered)} images without a frame number)" if listing.unnumbered else ""
            errors.append(_problem(rec, "error", "clip", str(rec.folder), f"clip folder holds no frames{extra}"))
    if listing is not None and listing.frames:
        if rec.frames_from_folder:
            onset = listing.numbers[0] if onset is None else onset
            offset = listing.numbers[-1] if offset is None else offset
        for number, names in listing.duplicates.items():
            if onset is not None and offset is not None and onset <= number <= offset:
                errors.append(
                    _problem(
                        rec,
                        "error",
                        "clip",
                        ", ".join(names),
                        f"several image files carry frame number {number} in {rec.folder}",
                    )
                )
    frame_numbers: list[int] = []
    frame_paths: list[str] = []
    if not errors and listing is not None and onset is not None and offset is not None:
        frame_numbers, frame_paths, missing = listing.span(onset, offset)
        if missing:
            have = listing.numbers
            detail = (
                f"missing frame(s) {compress_ranges(missing)} in {rec.folder} (folder has frames "
                f"{have[0]}..{have[-1]}, {len(have)} in all)"
            )
            if missing[0] > have[-1]:
                errors.append(_problem(rec, "error", "offset", offset, f"offset past the last frame: {detail}"))
            elif missing[-1] < have[0]:
                errors.append(_problem(rec, "error", "onset", onset, f"onset before the first frame: {detail}"))
            else:
                errors.append(_problem(rec, "error", "clip", rec.clip, f"gap in the frames: {detail}"))
        count, ok = parse_frame_number(rec.values.get("n_frames"))
        if count is not None and ok and count != offset - onset + 1:
            problems.append(
                _problem(
                    rec,
                    "warning",
                    "n_frames",
                    count,
                    f"frame count disagrees with onset/offset ({onset}..{offset} is {offset - onset + 1} frames)",
                )
            )
    emotion = normalise_emotion(rec.values.get("emotion"))
    if not emotion:
        errors.append(_problem(rec, "error", "emotion", rec.values.get("emotion"), "emotion is missing"))
    if errors:
        problems.extend(errors)
        return None
    assert onset is not None and offset is not None
    return _Checked(rec, onset, apex, offset, frame_numbers, frame_paths, emotion)


def empty_manifest() -> pd.DataFrame:
    """A manifest with no rows and the documented columns and dtypes."""
    return _frame([])


def _frame(rows: list[dict]) -> pd.DataFrame:
    data: dict[str, object] = {}
    for col in MANIFEST_COLUMNS:
        values = [r[col] for r in rows]
        if col in _STRING_COLUMNS:
            data[col] = pd.Series(values, dtype="str")
        elif col in ("onset", "offset", "n_frames", "label"):
            data[col] = pd.Series(values, dtype="int64")
        elif col in ("apex", "source_row"):
            data[col] = pd.Series(pd.array(values, dtype="Int64"))
        else:
            data[col] = pd.Series(values, dtype=object)
    df = pd.DataFrame(data, columns=list(MANIFEST_COLUMNS))
    df.attrs["au_list"] = list(AU_LIST)
    return df


def build_manifest(
    outputs: list[AdapterOutput], label_file: LabelSetFile, problems: list[Problem]
) -> tuple[pd.DataFrame, LabelSet]:
    """Validate all adapters' records, resolve the label set over their datasets and return (manifest, label
    set). Problems are appended to `problems`; rows with errors or dropped by the label set are left out."""
    records = [r for out in outputs for r in out.records]
    _apply_corrections(records, {o.dataset: o.corrections for o in outputs}, problems)
    order = {o.dataset: i for i, o in enumerate(outputs)}
    has_apex = {o.dataset: o.has_apex for o in outputs}
    for out in outputs:
        if not out.has_apex and out.records:
            problems.append(
                Problem(
                    "warning",
                    out.annotation_files[0] if out.annotation_files else out.root,
                    None,
                    "apex",
                    "",
                    f"{out.dataset} has no apex annotation: apex is <NA> for all "
                    f"{len(out.records)} clips (the trainer's apex option decides)",
                )
            )

    seen: dict[tuple[str, str, str], Record] = {}
    duplicated: set[tuple[str, str, str]] = set()
    for rec in records:
        key = (rec.dataset, rec.subject, rec.clip)
        if key in seen:
            first = seen[key]
            duplicated.add(key)
            problems.append(
                _problem(
                    rec,
                    "error",
                    "clip",
                    f"{rec.subject}/{rec.clip}",
                    f"duplicated clip: also at row {first.source_row} of {first.source_file}; "
                    "all its rows are left out",
                )
            )
        else:
            seen[key] = rec

    listings: dict[Path, FrameListing] = {}

    def listing_for(folder: Path) -> FrameListing:
        if folder not in listings:
            listings[folder] = scan_frames(folder)
        return listings[folder]

    checked: list[_Checked] = []
    for rec in records:
        if (rec.dataset, rec.subject, rec.clip) in duplicated:
            continue
        item = _check_record(rec, listing_for, has_apex.get(rec.dataset, True), problems)
        if item is not None:
            checked.append(item)

    observed: dict[str, set[str]] = {o.dataset: set() for o in outputs}
    for item in checked:
        observed[item.rec.dataset].add(item.emotion)
    label_set = resolve_label_set(label_file, observed)

    rows: list[dict] = []
    dropped: dict[str, Counter] = {}
    for item in checked:
        rec = item.rec
        status, class_name = label_set.classify(rec.dataset, item.emotion)
        if status == "unknown":
            problems.append(
                _problem(
                    rec,
                    "error",
                    "emotion",
                    rec.values.get("emotion"),
                    f"unknown emotion {item.emotion!r} for label set {label_set.name!r} "
                    f"(known: {sorted(label_set.mapping.get(rec.dataset, {}))})",
                )
            )
            continue
        if status == "drop":
            dropped.setdefault(rec.dataset, Counter())[item.emotion] += 1
            continue
        aus = parse_aus(rec.values.get("action_units"))
        if aus.unparsed:
            problems.append(
                _problem(
                    rec,
                    "warning",
                    "action_units",
                    rec.values.get("action_units"),
                    f"AU text without a number ignored: {list(aus.unparsed)}",
                )
            )
        rows.append(
            {
                "dataset": rec.dataset,
                "subject": rec.subject,
                "clip": rec.clip,
                "clip_id": f"{rec.subject}/{rec.clip}",
                "onset": item.onset,
                "apex": item.apex,
                "offset": item.offset,
                "n_frames": len(item.numbers),
                "frame_paths": item.paths,
                "frame_numbers": item.numbers,
                "action_units": cell_text(rec.values.get("action_units")),
                "au_vector": au_vector(aus.numbers),
                "emotion": item.emotion,
                "label": label_set.index(class_name),
                "label_name": class_name,
                "source_file": rec.source_file,
                "source_row": rec.source_row,
                "au_details": aus.details,
                "au_numbers": list(aus.numbers),
            }
        )
    for dataset, counts in dropped.items():
        summary = ", ".join(f"{e} {n}" for e, n in sorted(counts.items()))
        problems.append(
            Problem(
                "warning",
                label_set.source.split(" sha256:")[0],
                None,
                "emotion",
                summary,
                f"label set {label_set.name!r} leaves out {sum(counts.values())} {dataset} "
                f"clip(s) by emotion: {summary}",
            )
        )
    rows.sort(key=lambda r: (order.get(r["dataset"], 0), natural_key(r["subject"]), natural_key(r["clip"])))
    return _frame(rows), label_set


def manifest_hash(df: pd.DataFrame) -> str:
    """sha256 over canonical JSON of the content columns (frame file names and sheet file name, not the
    absolute paths, and the frames' content digests when the table has them), so the same dataset at another
    location hashes the same and changed frames give a new version."""

    def plain(v: object) -> object:
        if v is None or v is pd.NA:
            return None
        if hasattr(v, "tolist"):
            return v.tolist()
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    records = []
    for row in df.itertuples(index=False):
        d = row._asdict()
        item = {c: plain(d[c]) for c in HASH_COLUMNS}
        item["frame_names"] = [Path(p).name for p in d["frame_paths"]]
        item["source_name"] = Path(d["source_file"]).name if d["source_file"] else ""
        if "content_sha256" in d:
            item["content_sha256"] = d["content_sha256"]
        records.append(item)
    text = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=int)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
