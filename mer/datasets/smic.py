"""SMIC adapter (`smic` = SMIC-HS; `smic-vis`, `smic-nir` read the VIS and NIR parts the same way).

Expected layout (SMIC ships as folders; labels come from the folder names)::

    ROOT/                                (or ROOT/SMIC_all_raw/, or ROOT is the HS folder itself)
      HS/
        s1/micro/positive/s1_po_01/reg_image302.bmp …
                 negative/…  surprise/…  (non_micro/ folders are ignored)

Without a sheet every clip runs over all its frames. A user sheet (`annotations=`) with columns `subject`,
`material` (clip folder), `emotion`, `onset`, `offset` (apex optional) limits clips to onset..offset; its
emotion must agree with the folder's. SMIC has no apex annotation: apex is <NA> (one summary warning).

Why code and not only a specification (`mer.datasets.sheet_adapter`): the release has no sheet, so the clips come
from walking the folders; with a user sheet the generic adapter reads it (`sheet_spec`) and this module only adds
the check that the sheet's emotion is the folder's.
"""

from __future__ import annotations

from pathlib import Path

from .corrections import load_corrections
from .labels import normalise_emotion
from .layout import standard_columns, subdirs
from .manifest import AdapterOutput, Record
from .problems import Problem
from .sheet_adapter import SheetSpec
from .sheets import cell_text

NAME = "smic"
VARIANTS = {"smic": "HS", "smic-vis": "VIS", "smic-nir": "NIR"}
SHEET_PATTERNS = ("*smic*.xls*", "*smic*.csv")


def sheet_spec(name: str) -> SheetSpec:
    """The specification of a SMIC part read with a user sheet (`annotations=`): the part's folder (`HS`) at or one
    level under the root, subjects `s1`… and clips under `<subject>/micro/<emotion>/`."""
    return SheetSpec(
        name=name,
        sheets=SHEET_PATTERNS,
        path="{subject}/micro/{emotion}/{clip}",
        frame_folders=(VARIANTS[name],),
        frame_folder_depth=2,
        subject_folders=r"s\d+",
        subject_name="s{n}",
        columns=tuple(
            standard_columns(
                subject=("subject", "Subject"),
                clip=("material", "Filename", "clip"),
                emotion=("emotion", "Estimated Emotion"),
            )
        ),
        corrections=name,
    )


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
    spec = sheet_spec(name)
    if annotations is not None:
        return _emotion_agrees(spec.read(root, annotations, column_map, problems), problems)
    vroot = spec.frames_root(root)
    subjects = subdirs(vroot)
    out = AdapterOutput(dataset=name, records=[], has_apex=False, corrections=load_corrections(name))
    if not any(d.lower() == "micro" for s in subjects for d in subdirs(vroot / s)):
        problems.append(
            Problem.about_file(
                root,
                f"no SMIC {VARIANTS[name]} clips found: expected {VARIANTS[name]}/s1/micro/<emotion>/<clip>/ "
                "under the root",
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


def _emotion_agrees(out: AdapterOutput, problems: list[Problem]) -> AdapterOutput:
    """Leave out (with an error) each sheet row whose emotion is not that of the folder its clip was found in."""
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
