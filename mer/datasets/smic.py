"""SMIC adapter (`smic` = SMIC-HS; `smic-vis`, `smic-nir` read the VIS and NIR parts the same way).

Expected layout (SMIC ships as folders; labels come from the folder names)::

    ROOT/                                (or ROOT/SMIC_all_raw/, or ROOT is the HS folder itself)
      HS/
        s1/micro/positive/s1_po_01/reg_image302.bmp …
                 negative/…  surprise/…  (non_micro/ folders are ignored)

Without a sheet every clip runs over all its frames. A user sheet (`annotations=`) with columns `subject`,
`material` (clip folder), `emotion`, `onset`, `offset` (apex optional) limits clips to onset..offset; its
emotion must agree with the folder's. SMIC has no apex annotation: apex is <NA> (one summary warning).
"""

from __future__ import annotations

from pathlib import Path

from .corrections import load_corrections
from .labels import normalise_emotion
from .layout import (
    find_frames_root,
    read_sheet_adapter,
    resolve_subject,
    safe_join,
    standard_columns,
    subdirs,
)
from .manifest import AdapterOutput, Record
from .problems import Problem
from .sheets import cell_text

NAME = "smic"
VARIANTS = {"smic": "HS", "smic-vis": "VIS", "smic-nir": "NIR"}
SHEET_PATTERNS = ("*smic*.xls*", "*smic*.csv")


def _variant_root(root: Path, variant: str) -> Path:
    for parent in (root, *[root / d for d in subdirs(root)]):
        lower = {n.lower(): n for n in subdirs(parent)}
        if variant.lower() in lower:
            return parent / lower[variant.lower()]
    return find_frames_root(root, r"s\d+", (variant,))


def _micro_dir(variant_root: Path, subject: str) -> Path:
    base = variant_root / subject
    lower = {n.lower(): n for n in subdirs(base)}
    return base / lower.get("micro", "micro")


def read(
    root: Path,
    annotations: Path | None,
    column_map: dict[str, str] | None,
    problems: list[Problem],
    name: str = NAME,
) -> AdapterOutput:
    """Read SMIC (HS by default) under `root` into records."""
    vroot = _variant_root(root, VARIANTS[name])
    subjects = subdirs(vroot)
    if annotations is not None:
        return _read_with_sheet(name, root, vroot, subjects, annotations, column_map, problems)
    out = AdapterOutput(dataset=name, records=[], has_apex=False, corrections=load_corrections(name))
    if not any(d.lower() == "micro" for s in subjects for d in subdirs(vroot / s)):
        problems.append(
            Problem(
                "error",
                str(root),
                None,
                None,
                "",
                f"no SMIC {VARIANTS[name]} clips found: expected {VARIANTS[name]}/s1/micro/"
                "<emotion>/<clip>/ under the root",
            )
        )
        return out
    for subject in subjects:
        micro = _micro_dir(vroot, subject)
        for emotion in subdirs(micro):
            for clip in subdirs(micro / emotion):
                folder = micro / emotion / clip
                out.records.append(
                    Record(
                        dataset=name,
                        subject=subject,
                        clip=clip,
                        folder=folder,
                        values={"emotion": emotion, "onset": None, "apex": None, "offset": None},
                        source_file=str(folder),
                        source_row=None,
                        headers={"clip": "folder", "emotion": "folder", "subject": "folder"},
                        frames_from_folder=True,
                    )
                )
    return out


def _read_with_sheet(
    name: str,
    root: Path,
    vroot: Path,
    subjects: list[str],
    annotations: Path,
    column_map: dict[str, str] | None,
    problems: list[Problem],
) -> AdapterOutput:
    def folder_of(subject: str, clip: str, values: dict[str, object]) -> Path | None:
        micro = _micro_dir(vroot, subject) if safe_join(vroot, subject) is not None else None
        if micro is None:
            return None
        emotions = subdirs(micro)
        wanted = normalise_emotion(values.get("emotion"))
        first = [e for e in emotions if normalise_emotion(e) == wanted]
        for e in first + [e for e in emotions if e not in first]:
            candidate = safe_join(micro, e, clip)
            if candidate is not None and candidate.is_dir():
                return candidate
        return safe_join(micro, cell_text(values.get("emotion")) or "?", clip)

    columns = standard_columns(
        subject=("subject", "Subject"),
        clip=("material", "Filename", "clip"),
        emotion=("emotion", "Estimated Emotion"),
    )
    out = read_sheet_adapter(
        name,
        root,
        annotations,
        column_map,
        problems,
        SHEET_PATTERNS,
        columns,
        subject_of=lambda v: resolve_subject(v, subjects, lambda n: f"s{n}"),
        folder_of=folder_of,
    )
    kept = []
    for rec in out.records:
        folder_emotion = normalise_emotion(rec.folder.parent.name) if rec.folder is not None else ""
        sheet_emotion = normalise_emotion(rec.values.get("emotion"))
        if rec.folder is not None and rec.folder.is_dir() and folder_emotion != sheet_emotion:
            problems.append(
                Problem(
                    "error",
                    rec.source_file,
                    rec.source_row,
                    rec.column("emotion"),
                    cell_text(rec.values.get("emotion")),
                    f"emotion disagrees with the clip's folder {rec.folder.parent.name!r}",
                    rec.subject,
                    rec.clip,
                )
            )
        else:
            kept.append(rec)
    out.records = kept
    return out
