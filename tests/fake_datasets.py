"""Tiny fake dataset trees in each owner's layout (8x8 images, sheets with the real headers and quirks).

Each `make_*` builds a tree under a folder and returns it; the specs are small tuples so tests can add a bad
row and check the exact Problem (file, sheet row, column, value) it produces.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import openpyxl


def write_frames(folder: Path, numbers, pattern: str = "img{}.jpg", grey: bool = False) -> list[Path]:
    """Write 8x8 images named by `pattern` for each frame number; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in numbers:
        value = (n * 37) % 256
        img = np.full((8, 8) if grey else (8, 8, 3), value, dtype=np.uint8)
        path = folder / pattern.format(n)
        assert cv2.imwrite(str(path), img), path
        paths.append(path)
    return paths


def write_xlsx(path: Path, rows: list[list], title: str = "Sheet1") -> Path:
    """An .xlsx whose sheet rows are exactly `rows` (row 1 first)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_csv(path: Path, rows: list[list]) -> Path:
    """A CSV with the given rows (header first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


# --- CASME II: Subject 1..26 vs folders sub01..; '/' for a missing apex; blank-header columns.
CASME2_HEADER = [
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
]
CASME2_ROWS = [
    # subject, filename, onset, apex, offset, AUs, emotion, (frames on disk)
    (1, "EP02_01f", 46, 49, 52, "1+2", "happiness"),
    (1, "EP03_02", 8, "/", 12, "AU4 + R12C", "Disgust"),
    (2, "EP09_10", 98, 101, 104, "L14", "Others"),
    (2, "EP11_01", 3, 5, 7, "R20+", "repression"),
    (10, "EP01_01", 1, 3, 4, "4+7(k)", "Surprise"),
]


def make_casme2(root: Path, rows=CASME2_ROWS, frames: dict | None = None, extra_rows: list | None = None) -> Path:
    """CASME2-coding xlsx + CASME2_RAW_selected/subNN/<Filename>/imgN.jpg (frames onset-2..offset+2)."""
    sheet_rows = [CASME2_HEADER]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        sheet_rows.append([subject, clip, None, onset, apex, offset, None, aus, emotion])
        numbers = (frames or {}).get((subject, clip), range(max(onset - 2, 0), offset + 3))
        write_frames(root / "CASME2_RAW_selected" / f"sub{subject:02d}" / clip, numbers)
    for r in extra_rows or []:
        sheet_rows.append(r)
    write_xlsx(root / "CASME2-coding-20140508.xlsx", sheet_rows)
    return root


# --- SAMM: title block, header on row 14, Subject 6 vs folder 006, greyscale frames 006_05562.jpg.
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
    "Objective Classes",
]
SAMM_ROWS = [
    # subject, filename, onset, apex, offset, duration, AUs, emotion
    (6, "006_1_2", 5562, 5565, 5568, 7, "R12 or R15", "Anger"),
    (6, "006_1_5", 100, 102, 104, 5, "4", "Other"),
    (7, "007_3_1", 20, 22, 24, 5, "R14A", "Happiness"),
    (11, "011_2_1", 2, 3, 4, 3, "1+2+5", "Surprise"),
]


def make_samm(root: Path, rows=SAMM_ROWS) -> Path:
    """SAMM_Micro_FACS_Codes_v2.xlsx (header on row 14, under a title block) + SAMM/NNN/<clip>/NNN_x.jpg."""
    sheet_rows: list[list] = [
        ["SAMM Micro-Movement Dataset: FACS codes"],
        [],
        ["Notes:"],
        ["Estimated emotions are based on AUs and the video"],
    ]
    sheet_rows += [[] for _ in range(13 - len(sheet_rows))]
    sheet_rows.append(SAMM_HEADER)
    for subject, clip, onset, apex, offset, duration, aus, emotion in rows:
        sheet_rows.append([subject, clip, 1, onset, apex, offset, duration, "Micro - 1/2", aus, "", emotion, "I"])
        write_frames(
            root / "SAMM" / f"{subject:03d}" / clip,
            range(onset - 1, offset + 2),
            pattern=f"{subject:03d}_{{:05d}}.jpg",
            grey=True,
        )
    write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", sheet_rows, title="FACS_Movement_Only")
    return root


# --- SMIC-HS: folders only; labels from folder names.
SMIC_CLIPS = [
    ("s1", "positive", "s1_po_01", range(302, 309)),
    ("s1", "negative", "s1_ne_01", range(8, 13)),
    ("s2", "surprise", "s2_sur_01", range(9, 12)),
]


def make_smic(root: Path, clips=SMIC_CLIPS) -> Path:
    """SMIC_all_raw/HS/sN/micro/<emotion>/<clip>/reg_imageN.bmp, plus a non_micro folder to be ignored."""
    hs = root / "SMIC_all_raw" / "HS"
    for subject, emotion, clip, numbers in clips:
        write_frames(hs / subject / "micro" / emotion / clip, numbers, pattern="reg_image{}.bmp")
    write_frames(hs / "s1" / "non_micro" / "positive" / "s1_po_09", range(1, 3), pattern="reg_image{}.bmp")
    return root


# --- MMEW: clip folders grouped by emotion.
MMEW_ROWS = [
    ("S01", "S01_happiness_1", 1, 3, 5, "6+12", "happiness"),
    ("S01", "S01_others_1", 2, 4, 6, "14", "others"),
    ("S02", "S02_surprise_1", 1, 2, 4, "1+2", "Surprise"),
]


def make_mmew(root: Path, rows=MMEW_ROWS) -> Path:
    """MMEW_Micro_Exp.xlsx + Micro_Expression/<emotion>/<Filename>/N.jpg."""
    header = [
        "Subject",
        "Filename",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Action Units",
        "Estimated Emotion",
        "remarks",
    ]
    sheet_rows = [header]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        sheet_rows.append([subject, clip, onset, apex, offset, aus, emotion, None])
        write_frames(root / "Micro_Expression" / emotion.lower() / clip, range(onset, offset + 1), pattern="{}.jpg")
    write_xlsx(root / "MMEW_Micro_Exp.xlsx", sheet_rows)
    return root


# --- CAS(ME)^3 part A: one video folder may hold several micro-expressions; macro rows are skipped.
CASME3_ROWS = [
    ("spNO.1", "a", 10, 12, 14, "4+7", "disgust", "Micro-expression"),
    ("spNO.1", "a", 20, 22, 24, "12", "happy", "Micro-expression"),
    ("spNO.1", "b", 3, 5, 9, "1+2", "surprise", "Macro-expression"),
    ("spNO.2", "a", 1, 2, 3, "L14", "others", "Micro-expression"),
]


def make_casme3(root: Path, rows=CASME3_ROWS) -> Path:
    """cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx + part_A/spNO.N/<Filename>/color/N.jpg (+ depth/)."""
    header = [
        "Subject",
        "Filename",
        "Onset",
        "Apex",
        "Offset",
        "AU",
        "objective class",
        "emotion",
        "Expression type",
    ]
    sheet_rows = [header]
    for subject, clip, onset, apex, offset, aus, emotion, kind in rows:
        sheet_rows.append([subject, clip, onset, apex, offset, aus, 1, emotion, kind])
        colour = root / "part_A" / subject / clip / "color"
        have = set()
        if colour.is_dir():
            have = {int(p.stem) for p in colour.glob("*.jpg")}
        write_frames(colour, [n for n in range(onset, offset + 1) if n not in have], pattern="{}.jpg")
        (root / "part_A" / subject / clip / "depth").mkdir(exist_ok=True)
    write_xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", sheet_rows)
    return root


# --- 4DME: gray_micro/<sub_ID>/<fold_name>/; AUs with (k).
FOURDME_ROWS = [
    ("sub01", "sub01_01", 5, 7, 9, "AU4+AU7(k)", "Negative"),
    ("sub02", "sub02_03", 1, 2, 3, "AU12", "Positive"),
]


def make_4dme(root: Path, rows=FOURDME_ROWS) -> Path:
    """4DME_Labelling_Micro_release v1.xlsx + gray_micro/<sub_ID>/<fold_name>/N.jpg."""
    header = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion", "AU1", "AU4"]
    sheet_rows = [header]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        sheet_rows.append([subject, clip, onset, apex, offset, aus, emotion, 0, 1])
        write_frames(root / "gray_micro" / subject / clip, range(onset, offset + 1), pattern="{}.jpg", grey=True)
    write_xlsx(root / "4DME_Labelling_Micro_release v1.xlsx", sheet_rows)
    return root


# --- DFME: CSV per release part; flat clip folders.
def make_dfme(root: Path) -> Path:
    """train.csv + <clip>/N.png directly under the root."""
    write_csv(
        root / "train.csv",
        [
            ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Emotion"],
            ["1", "clip_0001", "1", "2", "3", "12", "happiness"],
            ["2", "clip_0002", "4", "5", "6", "4+9", "Disgust"],
        ],
    )
    write_frames(root / "clip_0001", range(1, 4), pattern="{:04d}.png")
    write_frames(root / "clip_0002", range(4, 7), pattern="{:04d}.png")
    return root


# --- generic folder adapter
FOLDER_HEADER = ["subject", "clip", "onset", "apex", "offset", "action_units", "emotion"]


def make_folder(root: Path, rows: list[list], frames: dict | None = None, header=FOLDER_HEADER) -> Path:
    """DIR/annotations.csv + DIR/<subject>/<clip>/imgN.jpg for frames onset..offset (or `frames[(s, c)]`)."""
    write_csv(root / "annotations.csv", [header, *rows])
    frames = frames or {}
    for row in rows:
        subject, clip = str(row[0]), str(row[1])
        if "/" in subject + clip or ".." in subject + clip or not subject or not clip:
            continue
        if (subject, clip) in frames:
            numbers = frames[(subject, clip)]
        else:
            try:
                numbers = range(int(row[2]), int(row[4]) + 1)
            except ValueError:
                numbers = range(1, 4)
        if numbers is not None:
            write_frames(root / subject / clip, numbers)
    return root
