"""Fake trees in each owner's layout load into the expected manifests and labels."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
from fake_datasets import (
    make_4dme,
    make_casme2,
    make_casme3,
    make_dfme,
    make_folder,
    make_mmew,
    make_samm,
    make_smic,
    write_frames,
)

from mer.datasets import AU_LIST, MANIFEST_COLUMNS, check, load, manifest_hash


def _rows(df: pd.DataFrame, *cols: str) -> list[tuple]:
    return [tuple(r) for r in df[list(cols)].itertuples(index=False)]


def _errors(result) -> list:
    return [p for p in result.problems if p.severity == "error"]


def test_casme2_manifest(tmp_path: Path) -> None:
    root = make_casme2(tmp_path / "CASME2")
    res = load("casme2", root)
    df = res.manifest
    assert _errors(res) == []
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    sheet = str(root / "CASME2-coding-20140508.xlsx")
    # Subjects 1, 2, 10 -> folders sub01, sub02, sub10, sorted numerically; the header is sheet row 1.
    assert _rows(df, "subject", "clip", "onset", "offset", "emotion", "source_row") == [
        ("sub01", "EP02_01f", 46, 52, "happiness", 2),
        ("sub01", "EP03_02", 8, 12, "disgust", 3),
        ("sub02", "EP09_10", 98, 104, "others", 4),
        ("sub02", "EP11_01", 3, 7, "repression", 5),
        ("sub10", "EP01_01", 1, 4, "surprise", 6),
    ]
    assert set(df["source_file"]) == {sheet}
    assert df["clip_id"].tolist()[0] == "sub01/EP02_01f"
    # '/' apex -> <NA> with a warning naming the cell.
    assert df["apex"].dtype == "Int64" and pd.isna(df["apex"][1]) and df["apex"][0] == 49
    (warn,) = [p for p in res.problems if p.column == "ApexFrame"]
    assert (warn.severity, warn.file, warn.row, warn.value) == ("warning", sheet, 3, "/")
    # Frames onset..offset only (the folders hold two extra frames each side), in numeric order.
    first = df.iloc[0]
    assert first["frame_numbers"] == list(range(46, 53)) and first["n_frames"] == 7
    assert [Path(p).name for p in first["frame_paths"]] == [f"img{n}.jpg" for n in range(46, 53)]
    assert all(os.path.isfile(p) for p in first["frame_paths"])
    # Original labels: CASME II's seven emotions in the table's order.
    assert res.label_set.classes == [
        "disgust",
        "fear",
        "happiness",
        "others",
        "repression",
        "sadness",
        "surprise",
    ]
    assert df["label"].tolist() == [2, 0, 3, 4, 6]
    assert df["label_name"].tolist() == df["emotion"].tolist()
    # AUs: the sheet text kept; vector over AU_LIST; side/intensity in au_details.
    assert df["action_units"][1] == "AU4 + R12C" and df["au_details"][1] == "4+R12C"
    assert [AU_LIST[i] for i, v in enumerate(df["au_vector"][1]) if v] == [4, 12]
    assert res.corrections is not None and res.corrections.startswith("casme2 v1")
    assert res.annotation_files == [sheet]


def test_casme2_3class_and_5class(tmp_path: Path) -> None:
    root = make_casme2(tmp_path / "c")
    three = load("casme2", root, labels="3class")
    assert _rows(three.manifest, "clip", "label_name", "label") == [
        ("EP02_01f", "positive", 1),
        ("EP03_02", "negative", 0),
        ("EP11_01", "negative", 0),
        ("EP01_01", "surprise", 2),
    ]
    (note,) = [p for p in three.problems if "leaves out" in p.message]
    assert note.severity == "warning" and "others 1" in note.message
    five = load("casme2", root, labels="5class")
    assert five.label_set.classes == ["disgust", "happiness", "others", "repression", "surprise"]
    assert five.manifest["label_name"].tolist() == [
        "happiness",
        "disgust",
        "others",
        "repression",
        "surprise",
    ]


def test_samm_manifest_header_under_title_block(tmp_path: Path) -> None:
    root = make_samm(tmp_path / "SAMM_root")
    res = load("samm", root, labels="5class")
    assert _errors(res) == []
    df = res.manifest
    # Header on row 14 -> first data row is 15; subject 6 -> folder 006.
    assert _rows(df, "subject", "clip", "onset", "apex", "offset", "emotion", "label_name", "source_row") == [
        ("006", "006_1_2", 5562, 5565, 5568, "anger", "anger", 15),
        ("006", "006_1_5", 100, 102, 104, "others", "others", 16),
        ("007", "007_3_1", 20, 22, 24, "happiness", "happiness", 17),
        ("011", "011_2_1", 2, 3, 4, "surprise", "surprise", 18),
    ]
    assert df["frame_numbers"][0] == list(range(5562, 5569))
    assert Path(df["frame_paths"][0][0]).name == "006_05562.jpg"
    assert df["au_details"][0] == "R12|R15" and df["au_numbers"][0] == [12, 15]


def test_smic_from_folders(tmp_path: Path) -> None:
    root = make_smic(tmp_path / "SMIC")
    res = load("smic", root)
    df = res.manifest
    assert _errors(res) == []
    assert _rows(df, "subject", "clip", "emotion", "onset", "offset", "n_frames") == [
        ("s1", "s1_ne_01", "negative", 8, 12, 5),
        ("s1", "s1_po_01", "positive", 302, 308, 7),
        ("s2", "s2_sur_01", "surprise", 9, 11, 3),
    ]
    assert df["apex"].isna().all()
    apex_notes = [p for p in res.problems if p.column == "apex"]
    assert len(apex_notes) == 1 and apex_notes[0].severity == "warning" and "all 3 clips" in apex_notes[0].message
    assert res.label_set.classes == ["negative", "positive", "surprise"]
    assert load("smic", root, labels="3class").manifest["label_name"].tolist() == [
        "negative",
        "positive",
        "surprise",
    ]


def test_smic_with_user_sheet(tmp_path: Path) -> None:
    root = make_smic(tmp_path / "SMIC")
    sheet = tmp_path / "smic.csv"
    sheet.write_text("subject,material,emotion,onset,offset\n1,s1_po_01,positive,303,305\n2,s2_sur_01,negative,9,11\n")
    res = load("smic", root, annotations=sheet)
    assert _rows(res.manifest, "subject", "clip", "onset", "offset", "source_row") == [("s1", "s1_po_01", 303, 305, 2)]
    (err,) = _errors(res)
    assert (err.file, err.row, err.column, err.value) == (str(sheet), 3, "emotion", "negative")
    assert "surprise" in err.message


def test_mmew_emotion_grouped_folders(tmp_path: Path) -> None:
    res = load("mmew", make_mmew(tmp_path / "MMEW"))
    assert _errors(res) == []
    assert _rows(res.manifest, "subject", "clip", "emotion", "n_frames") == [
        ("S01", "S01_happiness_1", "happiness", 5),
        ("S01", "S01_others_1", "others", 5),
        ("S02", "S02_surprise_1", "surprise", 4),
    ]
    assert "Micro_Expression/happiness/S01_happiness_1" in res.manifest["frame_paths"][0][0]


def test_casme3_micro_only_and_suffixes(tmp_path: Path) -> None:
    root = make_casme3(tmp_path / "CASME3")
    res = load("casme3", root)
    assert _errors(res) == []
    df = res.manifest
    assert _rows(df, "subject", "clip", "onset", "offset", "emotion", "source_row") == [
        ("spNO.1", "a", 10, 14, "disgust", 2),
        ("spNO.1", "a_2", 20, 24, "happiness", 3),  # 'happy' normalised; repeated Filename suffixed
        ("spNO.2", "a", 1, 3, "others", 5),
    ]
    assert all("/spNO.1/a/color/" in p for p in df["frame_paths"][1])
    (skipped,) = [p for p in res.problems if "not micro-expressions" in p.message]
    assert skipped.severity == "warning" and skipped.value == "Macro-expression 1"


def test_4dme_and_dfme(tmp_path: Path) -> None:
    res = load("4dme", make_4dme(tmp_path / "4DME"))
    assert _errors(res) == []
    assert _rows(res.manifest, "subject", "clip", "emotion", "au_details") == [
        ("sub01", "sub01_01", "negative", "4+7(k)"),
        ("sub02", "sub02_03", "positive", "12"),
    ]
    dres = load("dfme", make_dfme(tmp_path / "DFME"))
    assert _errors(dres) == []
    assert _rows(dres.manifest, "subject", "clip", "emotion", "n_frames") == [
        ("1", "clip_0001", "happiness", 3),
        ("2", "clip_0002", "disgust", 3),
    ]
    assert len(dres.label_set.classes) == 7


def test_folder_adapter_synthetic_style(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "synth",
        [
            ["sub2", "clip10", 1, 5, 9, "", "Surprise"],
            ["sub2", "clip9", 1, 5, 9, "12", "positive"],
            ["sub10", "clip1", 1, 2, 3, "", "negative"],
            ["sub1", "clip1", 1, 2, 3, "4", "Negative"],
        ],
    )
    (root / "sub2" / "clip10" / "truth.npz").write_bytes(b"x")
    res = load("folder", root, labels="3class")
    assert _errors(res) == []
    df = res.manifest
    expected = "synth-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]  # name + hash of the root
    assert df["dataset"].unique().tolist() == [expected]
    assert _rows(df, "subject", "clip", "label_name") == [
        ("sub1", "clip1", "negative"),
        ("sub2", "clip9", "positive"),
        ("sub2", "clip10", "surprise"),
        ("sub10", "clip1", "negative"),
    ]
    assert load("folder", root, dataset_name="demo").manifest["dataset"].iloc[0] == "demo"
    original = load("folder", root)
    assert original.label_set.classes == ["negative", "positive", "surprise"]


def test_folder_adapter_xlsx_elsewhere_with_column_map(tmp_path: Path) -> None:
    from fake_datasets import write_xlsx

    root = tmp_path / "data"
    write_frames(root / "p1" / "c1", range(1, 6), pattern="frame_{:03d}.png")
    sheet = write_xlsx(
        tmp_path / "labels.xlsx",
        [["Participant", "Video", "Start", "Peak", "End", "Feeling"], ["p1", "c1", 2, 3, 4, "Happiness"]],
    )
    cmap = {
        "Participant": "subject",
        "Video": "clip",
        "Start": "onset",
        "Peak": "apex",
        "End": "offset",
        "Feeling": "emotion",
    }
    res = load("folder", root, annotations=sheet, column_map=cmap)
    assert _errors(res) == []
    assert _rows(res.manifest, "subject", "clip", "onset", "apex", "offset", "n_frames") == [("p1", "c1", 2, 3, 4, 3)]


def test_composite_keys_subjects_by_dataset(tmp_path: Path) -> None:
    make_casme2(tmp_path / "CASME II")
    make_4dme(tmp_path / "4DME")  # 4DME subject folders are also named sub01
    res = load("casme2+4dme", tmp_path, labels="3class")
    df = res.manifest
    assert _errors(res) == []
    assert df["dataset"].tolist()[:4] == ["casme2"] * 4 and df["dataset"].tolist()[4:] == ["4dme"] * 2
    sub01 = df[df["subject"] == "sub01"]
    assert sorted(set(sub01["dataset"])) == ["4dme", "casme2"]
    groups = df.groupby(["dataset", "subject"]).size()
    assert groups[("casme2", "sub01")] == 2 and groups[("4dme", "sub01")] == 1
    assert res.adapter == "casme2+4dme"
    assert res.corrections.count(" v1 ") == 2


def test_megc2019_mapping_root_and_3class(tmp_path: Path) -> None:
    roots = {
        "smic": make_smic(tmp_path / "a"),
        "casme2": make_casme2(tmp_path / "b"),
        "samm": make_samm(tmp_path / "c"),
    }
    res = load("megc2019", roots)
    assert res.label_set.name == "3class"
    df = res.manifest
    assert df.groupby("dataset", sort=False).size().to_dict() == {"smic": 3, "casme2": 4, "samm": 3}
    assert set(df["label_name"]) == {"negative", "positive", "surprise"}
    missing = load("megc2019", {"smic": roots["smic"]})
    assert {p.value for p in _errors(missing)} == {"casme2", "samm"}


def test_manifest_hash_ignores_location_not_content(tmp_path: Path) -> None:
    a = load("casme2", make_casme2(tmp_path / "one")).manifest
    b = load("casme2", make_casme2(tmp_path / "two")).manifest
    assert manifest_hash(a) == manifest_hash(b)
    c = load("casme2", tmp_path / "two", labels="5class").manifest
    assert manifest_hash(c) != manifest_hash(b)


def test_check_writes_nothing(tmp_path: Path) -> None:
    root = make_casme2(tmp_path / "c", extra_rows=[[3, "EP01_01", None, 5, 4, 3, None, "", "fear"]])
    before = sorted(p for p in tmp_path.rglob("*"))
    problems = check("casme2", root)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert problems[0].severity == "error" and problems[0].row == 7
    assert str(problems[0]).startswith(f"error: {root / 'CASME2-coding-20140508.xlsx'}, row 7")


def test_unknown_adapter_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset adapter"):
        load("casme9", tmp_path)
