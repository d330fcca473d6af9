"""The generic sheet adapter and its specifications: every built-in specification gives, from the fixture trees of
`fake_datasets`, the manifest the per-dataset adapters gave (the expected tables are built here from the fixtures'
own rows, folder names and frame-file patterns); a dataset is added as a specification alone; a bad specification
file is one ValueError naming the file and the key."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from fake_datasets import (
    CASME2_ROWS,
    CASME3_ROWS,
    FOURDME_ROWS,
    MMEW_ROWS,
    SAMM_ROWS,
    make_4dme,
    make_casme2,
    make_casme3,
    make_mmew,
    make_samm,
    make_smic,
    write_csv,
    write_frames,
    write_xlsx,
)

from mer.datasets import ADAPTERS, load, normalise_emotion
from mer.datasets.composite import ADAPTER_NAMES, FOLDER_KEYS, canonical_adapter, composite_roots
from mer.datasets.labels import read_label_set
from mer.datasets.layout import find_named_folder
from mer.datasets.manifest import build_manifest
from mer.datasets.sheet_specs import builtin_specs, read_spec

# The columns an adapter decides (the others come from the label set and the AU parser).
ADAPTER_COLUMNS = [
    "dataset",
    "subject",
    "clip",
    "clip_id",
    "onset",
    "apex",
    "offset",
    "n_frames",
    "frame_numbers",
    "frame_paths",
    "action_units",
    "emotion",
    "source_file",
    "source_row",
]


def _table(dataset: str, sheet: Path, rows: list[tuple]) -> pd.DataFrame:
    """Expected adapter columns from (subject, clip, onset, apex, offset, aus, emotion, sheet row, frames folder,
    frame-file pattern) tuples."""
    records = []
    for subject, clip, onset, apex, offset, aus, emotion, row, folder, pattern in rows:
        numbers = list(range(onset, offset + 1))
        records.append(
            {
                "dataset": dataset,
                "subject": subject,
                "clip": clip,
                "clip_id": f"{subject}/{clip}",
                "onset": onset,
                "apex": None if apex == "/" else apex,
                "offset": offset,
                "n_frames": len(numbers),
                "frame_numbers": numbers,
                "frame_paths": [str(folder / pattern.format(n)) for n in numbers],
                "action_units": aus,
                "emotion": normalise_emotion(emotion),
                "source_file": str(sheet),
                "source_row": row,
            }
        )
    return pd.DataFrame(records).astype({"apex": "Int64", "source_row": "Int64"})


def _casme2(root: Path) -> pd.DataFrame:
    make_casme2(root)
    folders = root / "CASME2_RAW_selected"
    rows = [
        (f"sub{s:02d}", c, on, ap, off, aus, emo, i + 2, folders / f"sub{s:02d}" / c, "img{}.jpg")
        for i, (s, c, on, ap, off, aus, emo) in enumerate(CASME2_ROWS)
    ]
    return _table("casme2", root / "CASME2-coding-20140508.xlsx", rows)


def _samm(root: Path) -> pd.DataFrame:
    make_samm(root)
    rows = [
        (f"{s:03d}", c, on, ap, off, aus, emo, i + 15, root / "SAMM" / f"{s:03d}" / c, f"{s:03d}_{{:05d}}.jpg")
        for i, (s, c, on, ap, off, _duration, aus, emo) in enumerate(SAMM_ROWS)
    ]
    return _table("samm", root / "SAMM_Micro_FACS_Codes_v2.xlsx", rows)


def _mmew(root: Path) -> pd.DataFrame:
    make_mmew(root)
    rows = [
        (s, c, on, ap, off, aus, emo, i + 2, root / "Micro_Expression" / emo.lower() / c, "{}.jpg")
        for i, (s, c, on, ap, off, aus, emo) in enumerate(MMEW_ROWS)
    ]
    return _table("mmew", root / "MMEW_Micro_Exp.xlsx", rows)


def _casme3(root: Path) -> pd.DataFrame:
    make_casme3(root)
    seen: Counter = Counter()
    rows = []
    for i, (s, c, on, ap, off, aus, emo, kind) in enumerate(CASME3_ROWS):
        if kind != "Micro-expression":
            continue
        seen[(s, c)] += 1
        name = c if seen[(s, c)] == 1 else f"{c}_{seen[(s, c)]}"
        rows.append((s, name, on, ap, off, aus, emo, i + 2, root / "part_A" / s / c / "color", "{}.jpg"))
    return _table("casme3", root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", rows)


def _fourdme(root: Path) -> pd.DataFrame:
    make_4dme(root)
    rows = [
        (s, c, on, ap, off, aus, emo, i + 2, root / "gray_micro" / s / c, "{}.jpg")
        for i, (s, c, on, ap, off, aus, emo) in enumerate(FOURDME_ROWS)
    ]
    return _table("4dme", root / "4DME_Labelling_Micro_release v1.xlsx", rows)


def _smic_sheet(root: Path) -> pd.DataFrame:
    make_smic(root)
    sheet = write_csv(
        root / "smic_onsets.csv",
        [["subject", "material", "emotion", "onset", "offset"], [1, "s1_po_01", "Positive", 303, 305]],
    )
    folder = root / "SMIC_all_raw" / "HS" / "s1" / "micro" / "positive" / "s1_po_01"
    return _table("smic", sheet, [("s1", "s1_po_01", 303, "/", 305, "", "positive", 2, folder, "reg_image{}.bmp")])


EXPECTED = {"casme2": _casme2, "samm": _samm, "mmew": _mmew, "casme3": _casme3, "4dme": _fourdme}


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_each_specification_gives_the_manifest_of_its_fixture(dataset: str, tmp_path: Path) -> None:
    expected = EXPECTED[dataset](tmp_path / dataset)
    res = load(dataset, tmp_path / dataset, labels="original")
    assert [p for p in res.problems if p.severity == "error"] == []
    got = res.manifest[ADAPTER_COLUMNS].reset_index(drop=True)
    expected["action_units"] = expected["action_units"].astype(got["action_units"].dtype)
    pd.testing.assert_frame_equal(got, expected[ADAPTER_COLUMNS].astype(got.dtypes.to_dict()), check_dtype=True)
    assert res.annotation_files == [expected["source_file"].iloc[0]]
    assert res.corrections is not None and res.corrections.startswith(f"{dataset} v1")


def test_smic_user_sheet_goes_through_the_generic_adapter(tmp_path: Path) -> None:
    expected = _smic_sheet(tmp_path / "SMIC")
    res = load("smic", tmp_path / "SMIC", annotations=tmp_path / "SMIC" / "smic_onsets.csv")
    got = res.manifest[ADAPTER_COLUMNS].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected[ADAPTER_COLUMNS].astype(got.dtypes.to_dict()), check_dtype=True)


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_a_sheet_without_onset_names_the_file_row_and_the_spellings_accepted(dataset: str, tmp_path: Path) -> None:
    spec = builtin_specs()[dataset]
    root = tmp_path / dataset
    root.mkdir()
    spellings = {c.name: c.aliases[0] for c in spec.columns}
    header = [spellings[c] for c in ("subject", "clip", "apex", "offset", "emotion")]
    sheet = write_csv(root / f"x_{dataset}.csv", [header, ["1", "c1", "2", "3", "happiness"]])
    (err,) = [p for p in load(dataset, root, annotations=sheet).problems if p.severity == "error"]
    assert (err.file, err.row, err.column) == (str(sheet), 1, "onset")
    onset = next(c for c in spec.columns if c.name == "onset")
    assert f"onset: {', '.join(dict.fromkeys(('onset', *onset.aliases)))}" in err.message


def test_a_new_dataset_is_one_specification(tmp_path: Path) -> None:
    spec_file = tmp_path / "toyme.toml"
    spec_file.write_text(
        "\n".join(
            [
                'name = "toyme"',
                'sheets = ["toy_labels*.csv"]',
                'frame_folders = ["clips"]',
                "subject_folders = 'P\\d{3}'",
                'subject_name = "P{n:03d}"',
                'path = "{subject}/takes/{clip}"',
                'clip_subfolder = "rgb"',
                'repeated_clips = "suffix"',
                "[columns]",
                'subject = ["Participant"]',
                'clip = ["Take"]',
                'onset = ["Start"]',
                'apex = ["Peak"]',
                'offset = ["End"]',
                'emotion = ["Feeling"]',
                'kind = ["Kind"]',
                "[keep_rows]",
                'column = "kind"',
                'equals = "micro"',
                'what = "micro movement"',
            ]
        )
    )
    spec = read_spec(spec_file)
    root = tmp_path / "toy"
    take = root / "data" / "clips" / "P001" / "Takes" / "t1" / "rgb"  # literal parts match ignoring case
    write_frames(take, range(1, 7), pattern="f{:04d}.png")
    sheet = write_csv(
        root / "toy_labels_v1.csv",
        [
            ["Participant", "Take", "Start", "Peak", "End", "Feeling", "Kind"],
            ["1", "t1", "1", "2", "3", "joy", "Micro"],
            ["1", "t1", "4", "5", "6", "joy", "MICRO"],
            ["1", "t2", "1", "2", "3", "joy", "macro"],
            ["2", "t1", "1", "2", "3", "joy", "micro"],
        ],
    )
    problems: list = []
    out = spec.read(root, None, None, problems)
    assert out.corrections is None and out.annotation_files == [str(sheet)]
    manifest, _ = build_manifest([out], read_label_set("original"), problems)
    assert [tuple(r) for r in manifest[["subject", "clip", "onset", "source_row"]].itertuples(index=False)] == [
        ("P001", "t1", 1, 2),
        ("P001", "t1_2", 4, 3),
    ]
    assert manifest["frame_paths"][1] == [str(take / f"f{n:04d}.png") for n in (4, 5, 6)]
    skipped, missing = [p for p in problems if "macro" in p.value], [p for p in problems if p.severity == "error"]
    assert (skipped[0].column, skipped[0].message) == ("Kind", "1 rows are not micro movements and are skipped")
    # Subject 2 has no folder: named by subject_name, its clip reported missing (with the sub-folder) at its row.
    (err,) = missing
    expected_folder = root / "data" / "clips" / "P002" / "takes" / "t1" / "rgb"
    assert (err.row, err.subject, err.value) == (5, "P002", str(expected_folder))


@pytest.mark.parametrize(
    "text, named",
    [
        ('name = "x"\nsheets = ["*.csv"]\nsheet = ["a"]', "unknown keys ['sheet']"),
        ('sheets = ["*.csv"]', "'name' is required"),
        ('name = "x"\nsheets = ["*.csv"]\npath = "{subject}/{take}"', "path '{subject}/{take}' must hold {clip}"),
        ('name = "x"\nsheets = ["*.csv"]\nsubject_folders = "sub(\\\\d+"', "subject_folders 'sub(\\\\d+' is not"),
        ('name = "x"\nsheets = ["*.csv"]\nsubject_name = "sub{m}"', "subject_name 'sub{m}' must format"),
        ('name = "x"\nsheets = []', "sheets: must be a list of non-empty strings"),
        ('name = "x"\nsheets = ["*.csv"]\nsearch_depth = -1', "search_depth must be a whole number"),
        ('name = "x"\nsheets = ["*.csv"]\nrepeated_clips = "merge"', "repeated_clips must be 'error' or 'suffix'"),
        ('name = "x"\nsheets = ["*.csv"]\n[keep_rows]\ncolumn = "kind"\nequals = "a"\nwhat = "b"', "'kind' is not"),
        ('name = "x"\nsheets = ["*.csv"]\n[columns]\nonset = "Start"', "columns.onset: must be a list"),
        ('name = "x"\nsheets = [', "not a valid TOML dataset specification"),
    ],
)
def test_bad_specification_file_names_the_file_and_key(text: str, named: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_spec(path)
    assert str(info.value).startswith(str(path)) and named in str(info.value)


def test_specifications_register_adapters_aliases_and_composite_folders(tmp_path: Path) -> None:
    specs = builtin_specs()
    assert sorted(specs) == ["4dme", "casme2", "casme3", "mmew", "samm"]
    assert set(ADAPTERS) == set(ADAPTER_NAMES)
    assert all(ADAPTERS[name] == spec.read for name, spec in specs.items())
    assert [canonical_adapter(a) for a in ("CASMEII", "casme_ii", "fourdme", "CAS(ME)3")] == [
        "casme2",
        "casme2",
        "4dme",
        "casme3",
    ]
    assert FOLDER_KEYS["casme3"] == ("casme3", "casmeiii")
    for name in ("CAS(ME)^3", "CASME II", "4DME"):
        (tmp_path / name).mkdir()
    assert composite_roots(["casme3", "casme2", "4dme"], tmp_path) == {
        "casme3": tmp_path / "CAS(ME)^3",
        "casme2": tmp_path / "CASME II",
        "4dme": tmp_path / "4DME",
    }


def test_find_named_folder_looks_shallow_first_and_ignores_case(tmp_path: Path) -> None:
    (tmp_path / "a" / "Gray_Micro").mkdir(parents=True)
    (tmp_path / "b" / "micro").mkdir(parents=True)
    assert find_named_folder(tmp_path, ("gray_micro", "micro"), depth=1) is None
    assert find_named_folder(tmp_path, ("gray_micro", "micro"), depth=2) == tmp_path / "a" / "Gray_Micro"
    (tmp_path / "MICRO").mkdir()
    assert find_named_folder(tmp_path, ("gray_micro", "micro"), depth=2) == tmp_path / "MICRO"


def test_spec_xlsx_found_by_pattern_at_depth(tmp_path: Path) -> None:
    # The 4DME spec finds frames under gray_micro and a sheet one level down by its glob pattern.
    make_4dme(tmp_path / "4DME")
    inner = tmp_path / "4DME" / "labels"
    (tmp_path / "4DME" / "4DME_Labelling_Micro_release v1.xlsx").rename(inner.mkdir() or inner / "4DME_Labels.xlsx")
    res = load("4dme", tmp_path / "4DME")
    assert res.annotation_files == [str(inner / "4DME_Labels.xlsx")] and len(res.manifest) == 2
    write_xlsx(tmp_path / "4DME" / "4dme_other.xlsx", [["nothing"]])  # shallower, but of a later pattern
    assert load("4dme", tmp_path / "4DME").annotation_files == [str(inner / "4DME_Labels.xlsx")]
