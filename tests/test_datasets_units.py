"""Unit tests of the dataset building blocks: frame ordering, AU parsing, label sets, sheets, cross specs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_datasets import write_csv, write_frames, write_xlsx

from mer.datasets import (
    AU_LIST,
    CrossDataset,
    au_vector,
    load_label_set,
    natural_key,
    normalise_emotion,
    parse_aus,
    parse_composite,
    parse_cross,
    scan_frames,
)
from mer.datasets.frames import compress_ranges, frame_number
from mer.datasets.problems import Problem
from mer.datasets.sheets import Column, read_sheet

# --- frames -------------------------------------------------------------------------------------------------


def test_frames_are_ordered_by_number_not_string(tmp_path: Path) -> None:
    write_frames(tmp_path, [1, 2, 9, 10, 11, 100])
    (tmp_path / "truth.npz").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "IMG12.JPG").write_bytes((tmp_path / "img1.jpg").read_bytes())
    listing = scan_frames(tmp_path)
    assert listing.numbers == [1, 2, 9, 10, 11, 12, 100]
    numbers, paths, missing = listing.span(9, 12)
    assert numbers == [9, 10, 11, 12]
    assert [Path(p).name for p in paths] == ["img9.jpg", "img10.jpg", "img11.jpg", "IMG12.JPG"]
    assert missing == []
    assert all(Path(p).is_absolute() for p in paths)
    assert listing.span(98, 101)[2] == [98, 99, 101]


def test_frame_number_uses_last_digit_run() -> None:
    assert frame_number("006_05562.jpg") == 5562
    assert frame_number("reg_img046.jpg") == 46
    assert frame_number("s1_po_01_reg_image302.bmp") == 302
    assert frame_number("cover.png") is None


def test_duplicate_frame_numbers_are_flagged(tmp_path: Path) -> None:
    write_frames(tmp_path, [1, 2])
    write_frames(tmp_path, [1], pattern="img{:03d}.png")
    listing = scan_frames(tmp_path)
    assert listing.duplicates == {1: ["img001.png", "img1.jpg"]}


def test_natural_key_and_ranges() -> None:
    assert sorted(["sub10", "sub2", "sub1"], key=natural_key) == ["sub1", "sub2", "sub10"]
    assert sorted(["EP10_1", "EP2_10", "EP2_9"], key=natural_key) == ["EP2_9", "EP2_10", "EP10_1"]
    assert compress_ranges([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"


# --- AUs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers", "details"),
    [
        ("1+2", (1, 2), "1+2"),
        ("AU4 + R12C", (4, 12), "4+R12C"),
        ("L14", (14,), "L14"),
        ("R20+", (20,), "R20"),
        ("4+7(k)", (4, 7), "4+7(k)"),
        ("R12 or R15", (12, 15), "R12|R15"),
        ("AU4+AU7(K)", (4, 7), "4+7(k)"),
        ("r14a", (14,), "R14A"),
        (12, (12,), "12"),
        ("", (), ""),
        (None, (), ""),
        ("/", (), ""),
    ],
)
def test_parse_aus(text: object, numbers: tuple, details: str) -> None:
    parsed = parse_aus(text)
    assert parsed.numbers == numbers
    assert parsed.details == details


def test_au_vector_over_documented_list() -> None:
    assert len(AU_LIST) == 21 and 3 not in AU_LIST and AU_LIST[-1] == 45
    vec = au_vector([1, 12, 45, 43])  # 43 is outside the list: ignored
    assert len(vec) == 21
    assert [AU_LIST[i] for i, v in enumerate(vec) if v] == [1, 12, 45]


# --- label sets ---------------------------------------------------------------------------------------------


def test_emotion_spellings() -> None:
    assert normalise_emotion("Others") == "others"
    assert normalise_emotion(" other ") == "others"
    assert normalise_emotion("Happiness") == "happiness"
    assert normalise_emotion("happy") == "happiness"
    assert normalise_emotion(None) == ""


def test_3class_megc_mapping() -> None:
    ls = load_label_set("3class", ["casme2", "samm", "smic", "synth"])
    assert ls.classes == ["negative", "positive", "surprise"]
    for emotion in ("anger", "contempt", "disgust", "fear", "sadness", "repression"):
        assert ls.classify("samm", emotion) == ("class", "negative")
    assert ls.classify("samm", "happiness") == ("class", "positive")
    assert ls.classify("samm", "others") == ("drop", None)
    # CASME II: MEGC 2019 keeps disgust + repression as negative, drops fear and sadness.
    assert ls.classify("casme2", "repression") == ("class", "negative")
    assert ls.classify("casme2", "fear") == ("drop", None)
    # SMIC and the synthetic data already use the three classes.
    for ds in ("smic", "synth"):
        assert [ls.classify(ds, e)[1] for e in ("negative", "positive", "surprise")] == ls.classes
    assert ls.classify("samm", "boredom") == ("unknown", None)
    assert ls.sha256 and ls.source.endswith(ls.sha256)


def test_5class_per_dataset() -> None:
    casme2 = load_label_set("5class", ["casme2"])
    assert casme2.classes == ["disgust", "happiness", "others", "repression", "surprise"]
    assert casme2.classify("casme2", "sadness") == ("drop", None)
    samm = load_label_set("5class", ["samm"])
    assert samm.classes == ["anger", "contempt", "happiness", "others", "surprise"]
    assert samm.classify("samm", "others") == ("class", "others")
    assert samm.classify("samm", "disgust") == ("drop", None)
    synth = load_label_set("5class", ["synth"])
    assert sorted(synth.classes) == sorted(["happiness", "disgust", "repression", "surprise", "others"])


def test_original_open_and_closed() -> None:
    ls = load_label_set("original", {"casme2": set(), "mydata": {"calm", "angst"}})
    assert ls.mapping["mydata"] == {"angst": "angst", "calm": "calm"}
    assert ls.classify("casme2", "calm") == ("unknown", None)
    assert ls.classify("casme2", "repression") == ("class", "repression")
    assert ls.classes[:7] == ["disgust", "fear", "happiness", "others", "repression", "sadness", "surprise"]
    assert ls.classes[7:] == ["angst", "calm"]


def test_user_toml_label_set(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_text(
        'name = "binary"\nversion = 2\nclasses = ["neg", "pos"]\ndrop = ["Surprise"]\n'
        '[map]\nDisgust = "neg"\nhappiness = "pos"\nOther = "neg"\n'
    )
    ls = load_label_set(path, ["casme2"])
    assert ls.name == "binary" and ls.version == 2 and ls.classes == ["neg", "pos"]
    assert ls.classify("casme2", "disgust") == ("class", "neg")
    assert ls.classify("casme2", "others") == ("class", "neg")  # 'Other' key normalised
    assert ls.classify("casme2", "surprise") == ("drop", None)
    assert '"classes":["neg","pos"]' in ls.to_json()


def test_bad_label_set_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('classes = ["a"]\n[map]\nx = "b"\n')
    with pytest.raises(ValueError, match=r"map targets \['b'\]"):
        load_label_set(bad, ["casme2"])
    with pytest.raises(ValueError, match="unknown label set"):
        load_label_set("7class", ["casme2"])


# --- sheets -------------------------------------------------------------------------------------------------

COLUMNS = [
    Column("subject", ("Subject",)),
    Column("onset", ("Onset Frame", "OnsetFrame")),
    Column("apex", ("ApexFrame",), required=False),
]


def test_header_found_below_title_block_with_sheet_row_numbers(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "s.xlsx",
        [["Title"], [], ["notes", "more"], ["Subject", "Onset Frame"], [6, 10.0], [], [7, "11"]],
    )
    problems: list[Problem] = []
    table = read_sheet(path, COLUMNS, problems)
    assert problems == []
    assert table.header_row == 4
    assert table.headers == {"subject": "Subject", "onset": "Onset Frame"}
    assert table.rows == [(5, {"subject": 6, "onset": 10}), (7, {"subject": 7, "onset": "11"})]


def test_csv_rows_and_column_map(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["Who", "Start"], ["s1", "3"], ["", ""], ["s2", "4"]])
    problems: list[Problem] = []
    table = read_sheet(path, COLUMNS, problems, column_map={"Who": "subject", "Start": "onset"})
    assert problems == []
    assert [r for r, _ in table.rows] == [2, 4]
    assert table.header("subject") == "Who"


def test_missing_required_column_names_columns_found(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["Subject", "Begin", "Apex"], ["1", "2", "3"]])
    problems: list[Problem] = []
    assert read_sheet(path, COLUMNS, problems) is None
    (p,) = problems
    assert (p.severity, p.file, p.row, p.column) == ("error", str(path), 1, "onset")
    assert p.value == "Subject, Begin, Apex"
    assert "Begin" in p.message and "onset" in p.message


# --- composite / cross --------------------------------------------------------------------------------------


def test_parse_cross_and_composite() -> None:
    cross = parse_cross("casme2+samm->smic")
    assert cross == CrossDataset(train=["casme2", "samm"], test="smic")
    assert cross.name == "casme2+samm->smic"
    assert parse_cross("CASME2 -> SMIC-HS").datasets == ["casme2", "smic"]
    assert parse_composite("megc2019") == ["smic", "casme2", "samm"]
    assert parse_composite("casme2+samm") == ["casme2", "samm"]
    for bad in ("casme2->casme2", "casme2+samm", "casme2->nope", "->smic"):
        with pytest.raises(ValueError):
            parse_cross(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_composite("samm+samm")
