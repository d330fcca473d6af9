"""Every kind of bad input gives one Problem naming file, sheet row, column and value; other clips go on."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_datasets import FOLDER_HEADER, make_casme2, make_folder, make_samm, write_csv, write_frames

from mer.datasets import load
from mer.datasets.problems import Problem

GOOD = ["s0", "ok", 1, 2, 3, "12", "happiness"]


def _load_folder(tmp_path: Path, rows: list[list], frames: dict | None = None, **kw):
    root = make_folder(tmp_path / "ds", [GOOD, *rows], frames)
    return root, load("folder", root, **kw)


def _only_error(result) -> Problem:
    errors = [p for p in result.problems if p.severity == "error"]
    assert len(errors) == 1, [str(p) for p in result.problems]
    return errors[0]


def _where(p: Problem) -> tuple:
    return p.file, p.row, p.column, p.value


def _clips(result) -> list[str]:
    return result.manifest["clip_id"].tolist()


@pytest.mark.parametrize(
    ("row", "frames", "column", "value", "words"),
    [
        (["s1", "c1", 1, 2, 5, "", "happiness"], [1, 2, 4, 5], "clip", "c1", "gap in the frames"),
        (["s1", "c1", 1, 2, 7, "", "happiness"], range(1, 6), "offset", "7", "offset past the last frame"),
        (["s1", "c1", 1, 3, 5, "", "happiness"], range(3, 6), "onset", "1", "onset before the first frame"),
        (
            ["s1", "c1", 5, 4, 3, "", "happiness"],
            range(1, 6),
            "onset",
            "onset=5 offset=3",
            "onset comes after",
        ),
        (["s1", "c1", 2, 9, 4, "", "happiness"], range(1, 6), "apex", "9", "apex outside"),
        (["s1", "c1", "abc", 2, 4, "", "happiness"], range(1, 6), "onset", "abc", "not a frame number"),
        (["s1", "c1", "", 2, 4, "", "happiness"], range(1, 6), "onset", "", "onset frame is missing"),
        (["s1", "c1", 1, 2, 4, "", ""], range(1, 6), "emotion", "", "emotion is missing"),
    ],
)
def test_row_errors(tmp_path: Path, row, frames, column, value, words) -> None:
    root, res = _load_folder(tmp_path, [row], {("s1", "c1"): frames})
    err = _only_error(res)
    assert _where(err) == (str(root / "annotations.csv"), 3, column, value)
    assert words in err.message
    assert (err.subject, err.clip) == ("s1", "c1")
    assert _clips(res) == ["s0/ok"]  # the good clip goes on


def test_missing_apex_is_a_warning_and_kept(tmp_path: Path) -> None:
    root, res = _load_folder(tmp_path, [["s1", "c1", 1, "", 3, "", "happiness"]])
    assert not [p for p in res.problems if p.severity == "error"]
    (warn,) = res.problems
    assert (warn.severity, *_where(warn)) == ("warning", str(root / "annotations.csv"), 3, "apex", "")
    assert _clips(res) == ["s0/ok", "s1/c1"]
    assert res.manifest["apex"].isna().tolist() == [False, True]


def test_unknown_emotion(tmp_path: Path) -> None:
    root, res = _load_folder(tmp_path, [["s1", "c1", 1, 2, 3, "", "Boredom"]], labels="3class")
    err = _only_error(res)
    assert _where(err) == (str(root / "annotations.csv"), 3, "emotion", "Boredom")
    assert "boredom" in err.message and "3class" in err.message
    # CASME II's own vocabulary is closed: an emotion outside it is an error, not a new class.
    croot = make_casme2(tmp_path / "c", rows=[(1, "EP01", 1, 2, 3, "", "happiness"), (1, "EP02", 1, 2, 3, "", "Joy")])
    cerr = _only_error(load("casme2", croot))
    assert _where(cerr) == (str(croot / "CASME2-coding-20140508.xlsx"), 3, "Estimated Emotion", "Joy")


def test_duplicated_clip(tmp_path: Path) -> None:
    root, res = _load_folder(tmp_path, [["s1", "c1", 1, 2, 3, "", "happiness"], ["s1", "c1", 1, 2, 3, "", "fear"]])
    err = _only_error(res)
    assert _where(err) == (str(root / "annotations.csv"), 4, "clip", "s1/c1")
    assert "row 3" in err.message
    assert _clips(res) == ["s0/ok"]


@pytest.mark.parametrize(
    ("subject", "clip", "column", "value"),
    [
        ("s1", "../c1", "clip", "../c1"),
        ("s/1", "c1", "subject", "s/1"),
        ("s1", "a\\b", "clip", "a\\b"),
        ("..", "c1", "subject", ".."),
    ],
)
def test_unsafe_names(tmp_path: Path, subject, clip, column, value) -> None:
    root, res = _load_folder(tmp_path, [[subject, clip, 1, 2, 3, "", "happiness"]])
    err = _only_error(res)
    assert _where(err) == (str(root / "annotations.csv"), 3, column, value)
    assert _clips(res) == ["s0/ok"]


def test_missing_and_empty_clip_folders(tmp_path: Path) -> None:
    rows = [["s1", "gone", 1, 2, 3, "", "happiness"], ["s1", "empty", 1, 2, 3, "", "happiness"]]
    root = make_folder(tmp_path / "ds", [GOOD, *rows], {("s1", "gone"): None, ("s1", "empty"): []})
    (root / "s1" / "empty").mkdir(parents=True, exist_ok=True)
    (root / "s1" / "empty" / "truth.npz").write_bytes(b"x")
    res = load("folder", root)
    errors = sorted((p for p in res.problems if p.severity == "error"), key=lambda p: p.row)
    sheet = str(root / "annotations.csv")
    assert [_where(p) for p in errors] == [
        (sheet, 3, "clip", str(root / "s1" / "gone")),
        (sheet, 4, "clip", str(root / "s1" / "empty")),
    ]
    assert "not found" in errors[0].message and "no frames" in errors[1].message
    assert _clips(res) == ["s0/ok"]


def test_duplicate_frame_numbers_in_span(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", [GOOD, ["s1", "c1", 1, 2, 3, "", "happiness"]])
    write_frames(root / "s1" / "c1", [2], pattern="img{:02d}.png")  # img2.jpg and img02.png are both frame 2
    err = _only_error(load("folder", root))
    assert (err.row, err.column, err.value) == (3, "clip", "img02.png, img2.jpg")


def test_frame_count_disagrees_is_a_warning(tmp_path: Path) -> None:
    rows = [(6, "006_1_2", 10, 12, 14, 9, "4", "Anger"), (7, "007_1_1", 1, 2, 3, 3, "12", "Happiness")]
    root = make_samm(tmp_path / "samm", rows=rows)
    res = load("samm", root)
    assert not [p for p in res.problems if p.severity == "error"]
    (warn,) = [p for p in res.problems if p.column == "Duration"]
    assert (warn.severity, *_where(warn)) == (
        "warning",
        str(root / "SAMM_Micro_FACS_Codes_v2.xlsx"),
        15,
        "Duration",
        "9",
    )
    assert "5 frames" in warn.message
    assert len(res.manifest) == 2


def test_sheet_missing_required_column(tmp_path: Path) -> None:
    header = [h for h in FOLDER_HEADER if h != "emotion"]
    root = tmp_path / "ds"
    write_csv(root / "annotations.csv", [header, ["s1", "c1", 1, 2, 3, ""]])
    res = load("folder", root)
    err = _only_error(res)
    assert _where(err) == (
        str(root / "annotations.csv"),
        1,
        "emotion",
        "subject, clip, onset, apex, offset, action_units",
    )
    assert "columns found" in err.message
    assert res.manifest.empty and list(res.manifest.columns)[:3] == ["dataset", "subject", "clip"]


def test_no_sheet_and_no_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    err = _only_error(load("casme2", tmp_path / "empty"))
    assert err.file == str(tmp_path / "empty") and "annotations=" in err.message
    err = _only_error(load("samm", tmp_path / "nowhere"))
    assert err.file == str(tmp_path / "nowhere") and "not found" in err.message


def test_corrections_table_keyed_by_subject_and_clip(tmp_path: Path) -> None:
    rows = [(6, "006_1_2", 10, 12, 20, 11, "4", "Anger"), (7, "007_1_1", 1, 2, 3, 3, "12", "Happiness")]
    root = make_samm(tmp_path / "samm", rows=rows)  # frames on disk run 9..21 for 006_1_2
    for p in (root / "SAMM" / "006" / "006_1_2").glob("*.jpg"):
        if int(p.stem.split("_")[1]) > 14:
            p.unlink()  # the folder now ends at frame 14: offset 20 is past the end
    bad = load("samm", root)
    assert [(p.row, p.column, p.value) for p in bad.problems if p.severity == "error"] == [(15, "Offset Frame", "20")]
    table = tmp_path / "samm_fixes.toml"
    table.write_text(
        'name = "samm-local"\nversion = 3\n'
        '[[fix]]\nsubject = "006"\nclip = "006_1_2"\noffset = 14\nreason = "folder ends at 14"\n'
        '[[fix]]\nsubject = "099"\nclip = "099_1_1"\napex = 5\n'
    )
    fixed = load("samm", root, corrections=table)
    assert [p for p in fixed.problems if p.severity == "error"] == []
    assert fixed.manifest["offset"].tolist() == [14, 3]
    assert fixed.corrections.startswith("samm-local v3 (2 fixes")
    (unused,) = [p for p in fixed.problems if "matches no annotation row" in p.message]
    assert (unused.severity, unused.file, unused.value) == ("warning", str(table), "099/099_1_1")
    # Duration still says 11 frames: the corrected offset disagrees with it (a warning, not an error).
    assert [p.value for p in fixed.problems if p.column == "Duration"] == ["11"]
