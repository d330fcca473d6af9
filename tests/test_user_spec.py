"""A lab's own sheet dataset given as a specification file where a dataset name goes (`--dataset mylab.toml`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_datasets import write_csv, write_frames
from typer.testing import CliRunner

from mer.cli import app
from mer.datasets import default_dataset_name, load

SPEC = """name = "mylab"
sheets = ["labels*.csv"]
path = "clips/{subject}/{clip}"
[columns]
subject = ["Participant"]
clip = ["Take"]
onset = ["Start"]
apex = ["Peak"]
offset = ["End"]
emotion = ["Feeling"]
"""


def make_lab(tmp_path: Path, spec: str = SPEC) -> tuple[Path, Path]:
    """A two-subject tree in the lab's own layout and its specification file beside it."""
    root = tmp_path / "data"
    for subject in ("p1", "p2"):
        write_frames(root / "clips" / subject / "t1", range(1, 9), pattern="f{:04d}.png")
    write_csv(
        root / "labels_2026.csv",
        [
            ["Participant", "Take", "Start", "Peak", "End", "Feeling"],
            ["p1", "t1", "1", "4", "8", "happiness"],
            ["p2", "t1", "2", "5", "7", "disgust"],
        ],
    )
    spec_file = tmp_path / "specs" / "mylab.toml"
    spec_file.parent.mkdir()
    spec_file.write_text(spec)
    return spec_file, root


def test_a_specification_file_reads_the_lab_layout_under_its_own_name(tmp_path: Path) -> None:
    spec_file, root = make_lab(tmp_path)
    result = load(str(spec_file), root)
    assert not result.problems
    assert result.adapter == "mylab" and default_dataset_name(str(spec_file), root) == "mylab"
    rows = result.manifest[["dataset", "clip_id", "onset", "apex", "offset", "n_frames", "emotion"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        ("mylab", "p1/t1", 1, 4, 8, 8, "happiness"),
        ("mylab", "p2/t1", 2, 5, 7, 6, "disgust"),
    ]
    assert result.manifest["frame_paths"][1][0] == str(root / "clips" / "p2" / "t1" / "f0002.png")


def test_a_corrections_path_in_the_specification_is_relative_to_its_file(tmp_path: Path) -> None:
    spec_file, root = make_lab(tmp_path, SPEC.replace("[columns]", 'corrections = "fixes.toml"\n[columns]'))
    (spec_file.parent / "fixes.toml").write_text(
        '[[fix]]\nsubject = "p2"\nclip = "t1"\napex = 6\nreason = "re-coded by the lab"\n'
    )
    result = load(str(spec_file), root)
    assert result.manifest.set_index("clip_id").loc["p2/t1", "apex"] == 6
    assert result.corrections.startswith("fixes ") and "(1 fixes," in result.corrections


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("casme2", "name 'casme2' is a built-in dataset's name; give the dataset its own name"),
        ("SMIC-HS", "name 'SMIC-HS' is a built-in dataset's name"),
        ("../up", "name '../up' cannot name a dataset (contains a path separator"),
    ],
)
def test_a_specification_may_not_pass_for_a_builtin_or_escape_the_store(tmp_path: Path, name, message) -> None:
    spec_file, root = make_lab(tmp_path, SPEC.replace('name = "mylab"', f'name = "{name}"'))
    with pytest.raises(ValueError) as info:
        load(str(spec_file), root)
    assert str(info.value) == f"{spec_file}: {message}" or str(info.value).startswith(f"{spec_file}: {message}")


def test_check_dataset_takes_a_specification_file_and_reports_in_one_line(tmp_path: Path) -> None:
    spec_file, root = make_lab(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["check-dataset", "--dataset", str(spec_file), "--root", str(root)])
    assert ok.exit_code == 0, ok.output
    assert "mylab.toml: 2 usable clips, 0 error(s)" in " ".join(ok.output.split())
    missing = runner.invoke(app, ["check-dataset", "--dataset", str(tmp_path / "nope.toml"), "--root", str(root)])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert f"{tmp_path / 'nope.toml'}: dataset specification file not found" in " ".join(missing.output.split())
