"""Fault suite (issue 11): bad input and faults, each as a user meets them through ``mer-cli``.

Every case asserts the exit code (2 bad input or option, 1 clips left out or failed), that the message names the
offending file, row, column or value, that the other clips went on, that nothing valid was altered (the store
compared byte for byte with an undamaged run; the file system around it listed before and after), and that the
error is one line with no traceback. Datasets are tiny (8x8 frames) and only the ingest stage runs.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fake_datasets import make_casme2, make_folder
from scale_helpers import store_files
from typer.testing import CliRunner

from mer.cli import app
from mer.store import open_store
from mer.train.checks import (
    TrainCheckError,
    check_folds,
    check_out_dir,
    check_train_options,
    parse_model_options,
)
from mer.train.protocols import Fold

MER_CLI = [sys.executable, "-c", "from mer.cli import app; app()"]
GOOD_ROWS = [
    ["s1", "c1", 1, 2, 4, "1+2", "happiness"],
    ["s1", "c2", 1, 3, 5, "4", "disgust"],
    ["s2", "c1", 2, 3, 4, "12", "surprise"],
]
GOOD_IDS = ["s1/c1", "s1/c2", "s2/c1"]
BAD_ROW = 5  # the sheet row (Excel numbering: header 1, good rows 2-4) of an appended bad row


pytestmark = pytest.mark.usefixtures("wide_consoles")  # (tests/conftest.py)


def run_cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def assert_one_line_error(result, code: int, *names: str) -> str:
    """Exit ``code``; stderr is exactly one ``error: …`` line naming every one of ``names``; no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders): to prove nothing around a store changed."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def without_keys(files: dict[str, bytes]) -> dict[str, bytes]:
    """Store files by dataset/stage/rest, the entry key left out."""
    return {"/".join(k.split("/")[:2] + k.split("/")[3:]): v for k, v in files.items()}


def ingest_args(root: Path, store: Path, *extra: str) -> list[str]:
    return [
        "preprocess",
        "--root",
        root,
        "--store",
        store,
        "--name",
        "fault",
        "--stages",
        "ingest",
        "--workers",
        "1",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """Chunks and markers of an undamaged run over the three good clips."""
    base = tmp_path_factory.mktemp("reference")
    make_folder(base / "data", GOOD_ROWS)
    result = run_cli(*ingest_args(base / "data", base / "store"))
    assert result.exit_code == 0, result.output
    return store_files(base / "store")


# ------------------------------------------------------------- bad sheet rows
@dataclass(frozen=True)
class RowCase:
    """One bad row appended to a good sheet: the column and the value text the message must name."""

    id: str
    row: list
    column: str
    shown: str
    write_frames: bool = True


ROW_CASES = [
    RowCase("subject-markup", ["[/x]", "c9", 1, 2, 3, "1", "happiness"], "subject", "'[/x]'"),
    RowCase("clip-markup", ["s1", "[/x]", 1, 2, 3, "1", "happiness"], "clip", "'[/x]'"),
    RowCase("clip-bracketed-id", ["s1", "[s1/c9]", 1, 2, 3, "1", "happiness"], "clip", "'[s1/c9]'"),
    RowCase("clip-300-chars", ["s1", "a" * 300, 1, 2, 3, "1", "happiness"], "clip", "300 bytes", False),
    RowCase("clip-dotdot", ["s1", "..", 1, 2, 3, "1", "happiness"], "clip", "'..'"),
    RowCase("clip-traversal", ["s1", "../../etc", 1, 2, 3, "1", "happiness"], "clip", "'../../etc'"),
    RowCase("subject-traversal", ["..", "c1", 1, 2, 3, "1", "happiness"], "subject", "'..'"),
    RowCase("clip-nul", ["s1", "c\x00x", 1, 2, 3, "1", "happiness"], "clip", "'c\\x00x'", False),
    RowCase("clip-control", ["s1", "c\x07x", 1, 2, 3, "1", "happiness"], "clip", "'c\\x07x'", False),
    RowCase("clip-leading-dot", ["s1", ".hidden", 1, 2, 3, "1", "happiness"], "clip", "'.hidden'"),
    RowCase("subject-reserved", ["_done", "c1", 1, 2, 3, "1", "happiness"], "subject", "'_done'"),
    RowCase("clip-reserved", ["s1", "manifest", 1, 2, 3, "1", "happiness"], "clip", "'manifest'"),
    RowCase("clip-backslash", ["s1", "a\\b", 1, 2, 3, "1", "happiness"], "clip", "'a\\\\b'", False),
]


def make_dataset(root: Path, extra: list[list], write_frames: bool = True) -> Path:
    frames = {} if write_frames else {(str(r[0]), str(r[1])): None for r in extra}
    return make_folder(root, GOOD_ROWS + extra, frames=frames)


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: c.id)
def test_bad_name_in_sheet_check_dataset(case: RowCase, tmp_path):
    root = make_dataset(tmp_path / "data", [case.row], case.write_frames)
    before = listing(tmp_path)
    result = run_cli("check-dataset", "--dataset", "folder", "--root", root)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if f"row {BAD_ROW}, column {case.column!r}" in line)
    assert "annotations.csv" in line and case.shown in line and "unusable" in line
    assert "folder: 3 usable clips, 1 error(s)" in result.output  # the other clips go on
    assert listing(tmp_path) == before  # check-dataset writes nothing


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: c.id)
def test_bad_name_in_sheet_preprocess(case: RowCase, tmp_path, reference):
    root = make_dataset(tmp_path / "data", [case.row], case.write_frames)
    store = tmp_path / "store"
    before = listing(tmp_path)
    result = run_cli(*ingest_args(root, store))
    assert result.exit_code == 1, result.output  # input errors: the row is left out
    assert "Traceback" not in result.output
    assert any(case.shown in line and f"row {BAD_ROW}" in line for line in result.output.splitlines())
    assert open_store(str(store)).clips("fault") == GOOD_IDS
    assert store_files(store) == reference  # the good clips' bytes are those of an undamaged run
    after = listing(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("store")} == before  # nothing else written


@pytest.mark.parametrize(
    ("clip", "shown"), [("[/x]", "'[/x]'"), ("E" * 300, "300 bytes"), ("..", "'..'"), ("_claims", "reserved")]
)
def test_bad_clip_in_an_official_sheet(clip, shown, tmp_path):
    """The same per-row rule in a dataset's own adapter (CASME II, xlsx): row 7 is the appended bad row."""
    root = make_casme2(tmp_path / "casme2", extra_rows=[[1, clip, None, 1, 2, 3, None, "1", "happiness"]])
    result = run_cli("check-dataset", "--dataset", "casme2", "--root", root)
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if "row 7, column 'Filename'" in line)
    assert "CASME2-coding-20140508.xlsx" in line and shown in line
    assert "casme2: 5 usable clips, 1 error(s)" in result.output


def test_markup_in_an_au_cell_is_shown_and_the_clip_kept(tmp_path, reference):
    root = make_dataset(tmp_path / "data", [["s3", "c1", 1, 2, 3, "[/x]", "happiness"]])
    checked = run_cli("check-dataset", "--dataset", "folder", "--root", root)
    assert checked.exit_code == 0, checked.output
    warning = next(line for line in checked.output.splitlines() if "AU text without a number" in line)
    assert "'[/x]'" in warning and f"row {BAD_ROW}" in warning and "[s3/c1]" in warning
    assert "4 usable clips, 0 error(s), 1 warning(s)" in checked.output
    result = run_cli(*ingest_args(root, tmp_path / "store"))
    assert result.exit_code == 0, result.output
    assert open_store(str(tmp_path / "store")).clips("fault") == [*GOOD_IDS, "s3/c1"]
    files = without_keys(store_files(tmp_path / "store"))  # another clips table: another entry key
    # markers cover the dataset arrays' metadata and the clip-id coordinate lists every clip: both depend on N
    chunks = {k: v for k, v in without_keys(reference).items() if "/_done/" not in k and "/clip_id/" not in k}
    assert {k: v for k, v in files.items() if k in chunks} == chunks


def test_bracketed_names_survive_every_message(tmp_path):
    """A subject ``[b]s9`` is a valid name; rich must print it as text in the manifest line and failure table."""
    root = make_dataset(tmp_path / "data", [["[b]s9", "c1", 1, 2, 3, "1", "happiness"]])
    frame = root / "[b]s9" / "c1" / "img2.jpg"
    frame.write_bytes(frame.read_bytes()[:40])  # a cut-short frame: this clip fails at ingest
    result = run_cli(*ingest_args(root, tmp_path / "store"))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    row = next(line for line in result.output.splitlines() if "[b]s9/c1" in line)
    assert "ingest" in row and "img2.jpg" in row
    st = open_store(str(tmp_path / "store"))
    assert sorted(st.clips("fault")) == sorted([*GOOD_IDS, "[b]s9/c1"])
    assert sorted(r["clip"] for r in st.failed_records(st.ls("fault")[0].ref)) == ["[b]s9/c1"]


def test_two_folder_datasets_with_the_same_folder_name_get_different_names(tmp_path):
    store = tmp_path / "store"
    first = make_dataset(tmp_path / "a" / "data", [])
    second = make_folder(tmp_path / "b" / "data", [["t1", "d1", 1, 2, 3, "1", "happiness"]])
    for root in (first, second):
        args = ingest_args(root, store)
        del args[args.index("--name") : args.index("--name") + 2]
        assert run_cli(*args).exit_code == 0
    st = open_store(str(store))
    names = st.datasets()
    assert len(names) == 2 and all(n.startswith("data-") for n in names)
    clips = sorted(tuple(st.clips(n)) for n in names)
    assert clips == [("s1/c1", "s1/c2", "s2/c1"), ("t1/d1",)]  # neither replaced the other


# ------------------------------------------------------------ names on the command line
NAME_ARGS = {
    "relative-traversal": "../../other/folder",
    "absolute-path": "/abs/path",
    "dotdot": "..",
    "leading-dot": ".hidden",
    "nul": "a\x00b",
    "control": "a\x1bb",
    "reserved-prefix": "_runs",
    "reserved-word": "clips",
    "too-long": "n" * 129,
    "empty": "",
}


@pytest.mark.parametrize("value", NAME_ARGS.values(), ids=NAME_ARGS.keys())
def test_unsafe_name_option_writes_nothing_anywhere(value, tmp_path):
    root = make_dataset(tmp_path / "data", [])
    before = listing(tmp_path)
    args = ingest_args(root, tmp_path / "stores" / "store")
    args[args.index("--name") + 1] = value
    result = run_cli(*args)
    line = assert_one_line_error(result, 2, "dataset name", "unusable")
    assert repr(value)[:40] in line
    assert listing(tmp_path) == before  # no store, no folder, nothing outside either


@pytest.mark.parametrize(
    "args",
    [
        ["build-mesti", "--store", "{store}", "--dataset", "../../x", "--quiet"],
        ["build-input", "--store", "{store}", "--dataset", "/abs", "--kind", "apex-frame", "--quiet"],
        ["show-face", "{store}", "../fault", "s1/c1"],
        ["show-face", "{store}", "fault", "../../etc/passwd"],
        ["show-mesti", "{store}", "fault", "s1/.."],
        ["store", "ls", "{store}", "--dataset", "../fault"],
    ],
    ids=["build-mesti", "build-input", "show-face-dataset", "show-face-clip", "show-mesti-clip", "store-ls"],
)
def test_unsafe_dataset_or_clip_argument(args, tmp_path):
    base = tmp_path / "base"
    make_dataset(base / "data", [])
    store = base / "store"
    assert run_cli(*ingest_args(base / "data", store)).exit_code == 0
    before = listing(tmp_path)
    result = run_cli(*(a.format(store=store) for a in args))
    assert_one_line_error(result, 2, "unusable")
    assert listing(tmp_path) == before


# ------------------------------------------------------------- stores
def _plain_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "thesis.txt").write_text("my work")
    return folder


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("x")
    return path


def _foreign_zarr(tmp_path: Path) -> Path:
    folder = tmp_path / "other.zarr"
    folder.mkdir()
    (folder / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    return folder


def _corrupt_root(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "data0", [])
    store = tmp_path / "store"
    assert run_cli(*ingest_args(tmp_path / "data0", store)).exit_code == 0
    meta = store / "zarr.json"
    meta.write_bytes(meta.read_bytes()[:10])
    return store


STORE_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("plain-folder", _plain_folder, "no mer store"),
    ("a-file", _a_file, "is a file"),
    ("non-mer-zarr", _foreign_zarr, "not a mer store"),
    ("corrupt-zarr-json", _corrupt_root, "zarr.json"),
]


@pytest.mark.parametrize("make", [c[1] for c in STORE_CASES], ids=[c[0] for c in STORE_CASES])
@pytest.mark.parametrize("command", ["ls", "verify", "preprocess"])
def test_unusable_store(make, command, tmp_path):
    expected = next(text for _, m, text in STORE_CASES if m is make)
    store = make(tmp_path)
    root = make_dataset(tmp_path / "data", [])
    before = listing(tmp_path)
    if command == "preprocess":
        result = run_cli(*ingest_args(root, store))
        if make is _plain_folder:
            expected = "holds other files and no mer store"
    else:
        result = run_cli("store", command, store)
    if command == "verify" and make is _corrupt_root:  # damage in a store is what verify reports, not a usage error
        assert result.exit_code == 1 and "damaged store metadata" in result.output and "--repair" in result.output
        assert "Traceback" not in result.output
    else:
        assert_one_line_error(result, 2, str(store), expected)
    assert listing(tmp_path) == before  # the folder, file or store is left exactly as it was


def test_corrupt_entry_metadata_is_one_line(tmp_path):
    make_dataset(tmp_path / "data", [])
    store = tmp_path / "store"
    assert run_cli(*ingest_args(tmp_path / "data", store)).exit_code == 0
    meta = next((store / "fault" / "ingest").glob("*/zarr.json"))
    meta.write_bytes(meta.read_bytes()[:25])
    result = run_cli("store", "ls", store)
    assert_one_line_error(result, 2, str(meta), "damaged", "store verify --repair")


def _failing_writes(monkeypatch, code: int) -> None:
    """The file system refuses every write with ``code`` (what a read-only mount or a full disk does)."""
    from mer.store import backend

    def refuse(self, key, data):
        raise OSError(code, os.strerror(code), str(self._path(key)))

    monkeypatch.setattr(backend.LocalBackend, "write_bytes", refuse)


@pytest.mark.parametrize(
    ("code", "hint"),
    [(errno.EROFS, "read-only"), (errno.ENOSPC, "free disk space"), (errno.EACCES, "permissions")],
    ids=["read-only", "disk-full", "no-permission"],
)
def test_store_that_cannot_be_written(code, hint, tmp_path, monkeypatch, reference):
    """As root, chmod does not stop writes, so the kernel's refusal is injected at the one place the store writes."""
    make_dataset(tmp_path / "data", [])
    store = tmp_path / "store"
    assert run_cli(*ingest_args(tmp_path / "data", store)).exit_code == 0
    before = listing(store)
    _failing_writes(monkeypatch, code)
    result = run_cli(*ingest_args(tmp_path / "data", store))
    line = assert_one_line_error(result, 2, os.strerror(code), str(store), hint)
    assert str(store / "_runs") in line  # the file it could not write (an unchanged table is not rewritten)
    assert listing(store) == before and store_files(store) == reference


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the refusal is injected above instead")
def test_read_only_store_by_chmod(tmp_path):  # pragma: no cover - runs only as a normal user
    make_dataset(tmp_path / "data", [])
    store = tmp_path / "store"
    assert run_cli(*ingest_args(tmp_path / "data", store)).exit_code == 0
    before = listing(store)
    store.chmod(0o555)
    try:
        result = run_cli(*ingest_args(tmp_path / "data", store))
    finally:
        store.chmod(0o755)
    assert_one_line_error(result, 2, str(store))
    assert listing(store) == before


# ------------------------------------------------------------- debugging and unexpected errors
def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    store = _plain_folder(tmp_path)
    plain = run_cli("store", "ls", store)
    assert_one_line_error(plain, 2, "no mer store")
    for result in (run_cli("--debug", "store", "ls", store), run_cli("store", "ls", store, env={"MER_DEBUG": "1"})):
        assert result.exit_code == 2
        assert "Traceback" in result.stderr and error_lines(result.stderr)[-1] == error_lines(plain.stderr)[0]


def test_unexpected_error_is_one_line_with_a_hint(tmp_path, monkeypatch):
    import mer.cli.preprocess_cmds as cmds

    def broken(*args, **kwargs):
        raise RuntimeError("internal [/bug] state")

    monkeypatch.setattr(cmds, "write_dataset_manifest", broken)
    root = make_dataset(tmp_path / "data", [])
    result = run_cli(*ingest_args(root, tmp_path / "store"))
    line = assert_one_line_error(result, 1, "unexpected RuntimeError", "internal [/bug] state", "MER_DEBUG=1")
    assert "--debug" in line


def test_real_process_prints_one_line_without_traceback(tmp_path):
    """The installed entry point, not the test runner: a markup subject and an unusable store."""
    root = make_dataset(tmp_path / "data", [["[/x]", "c9", 1, 2, 3, "1", "happiness"]])
    env = {**os.environ, "COLUMNS": "400"}
    checked = subprocess.run(
        [*MER_CLI, "check-dataset", "--dataset", "folder", "--root", str(root)], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert "'[/x]'" in checked.stderr and "3 usable clips" in checked.stdout
    listed = subprocess.run([*MER_CLI, "store", "ls", str(root)], capture_output=True, text=True, env=env)
    assert listed.returncode == 2 and listed.stderr.strip().splitlines() == [
        f"error: no mer store at {root} (no zarr.json); create it with `mer-cli preprocess`"
    ]


# ------------------------------------------------------------- training options and folds
TRAIN_OK = {"epochs": 2, "batch_size": 4, "lr": 1e-4, "val_fraction": 0.0, "protocol": "loso"}
OPTION_CASES = {
    "epochs-0": ({"epochs": 0}, "--epochs 0"),
    "batch-size-0": ({"batch_size": 0}, "--batch-size 0"),
    "lr-negative": ({"lr": -1.0}, "--lr -1.0"),
    "lr-nan": ({"lr": float("nan")}, "--lr nan"),
    "val-fraction-1.5": ({"val_fraction": 1.5}, "--val-fraction 1.5"),
    "early-stopping-without-split": ({"early_stopping": True}, "--early-stopping"),
    "holdout-1.5": ({"protocol": "holdout:1.5"}, "holdout:1.5"),
    "holdout-abc": ({"protocol": "holdout:abc"}, "'abc' is not a number"),
    "kfold-1": ({"protocol": "kfold:1"}, "K = 1"),
    "kfold-seed-x": ({"protocol": "kfold:5:x"}, "the seed 'x'"),
    "cross-missing-test": ({"protocol": "cross:casme2"}, "cross:TRAIN"),
}


@pytest.mark.parametrize(("change", "named"), OPTION_CASES.values(), ids=OPTION_CASES.keys())
def test_bad_training_option(change, named):
    with pytest.raises(TrainCheckError) as info:
        check_train_options(**{**TRAIN_OK, **change})
    assert named in str(info.value) and "\n" not in str(info.value)


def test_good_training_options_pass(tmp_path):
    for protocol in ("loso", "megc2019", "holdout:0.1:3", "kfold:5:0:grouped", "cross:casme2+samm:smic"):
        check_train_options(**{**TRAIN_OK, "protocol": protocol, "val_fraction": 0.2}, out=tmp_path / "run")


@pytest.mark.parametrize(
    ("items", "named"),
    [
        (["blocks=abc"], "--option blocks=abc: meganet's blocks takes a whole number"),
        (["blocks=2.5"], "--option blocks=2.5"),
        (["widths=wide"], "--option widths=wide"),
        (["dropout=high"], "--option dropout=high"),
        (["attention=3"], "--option attention=3"),
        (["colour=1"], "meganet has no option 'colour'"),
        (["num_classes=4"], "set by the trainer"),
        (["blocks"], "expected name=value"),
    ],
)
def test_bad_model_option(items, named):
    with pytest.raises(TrainCheckError) as info:
        parse_model_options(items, "meganet")
    assert named in str(info.value)


def test_good_model_options_are_parsed_with_their_types():
    options = parse_model_options(["blocks=2", "widths=[16,32]", "input_attention=null", "dropout=1"], "meganet")
    assert options == {"blocks": 2, "widths": [16, 32], "input_attention": None, "dropout": 1}
    assert parse_model_options(["hidden=64"], "off_apexnet") == {"hidden": 64}


def test_out_that_is_a_file_or_under_a_file(tmp_path):
    target = _a_file(tmp_path)
    with pytest.raises(TrainCheckError, match="is a file"):
        check_out_dir(target)
    with pytest.raises(TrainCheckError, match="cannot be made under it"):
        check_out_dir(target / "run")
    check_out_dir(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # checking makes nothing


def _folds(*pairs) -> list[Fold]:
    return [Fold(f"fold{i}", np.array(tr, dtype=int), np.array(te, dtype=int)) for i, (tr, te) in enumerate(pairs)]


LABELS = np.array([0, 1, 0, 1])
SUBJECTS = np.array(["d/s1", "d/s1", "d/s2", "d/s2"])
FOLD_CASES = {
    "single-class": (_folds(([0, 1], [2, 3])), np.zeros(4, int), SUBJECTS, "holdout:0.5", "1 class"),
    "loso-one-subject": (_folds(([], [0, 1, 2, 3])), LABELS, np.array(["d/s1"] * 4), "loso", "at least two subjects"),
    "kfold-1-no-training": (_folds(([], [0, 1, 2, 3])), LABELS, SUBJECTS, "kfold:1", "fold0 has no training rows"),
    "no-test-rows": (_folds(([0, 1, 2, 3], [])), LABELS, SUBJECTS, "holdout:0.01", "fold0 has no test rows"),
    "overlap": (_folds(([0, 1, 2], [2, 3])), LABELS, SUBJECTS, "kfold:2", "shares 1 rows"),
    "one-class-training": (_folds(([0, 2], [1, 3])), LABELS, SUBJECTS, "kfold:2", "hold one class"),
    "no-folds": ([], LABELS, SUBJECTS, "cross:a:b", "gives no folds"),
}


@pytest.mark.parametrize(("folds", "labels", "subjects", "protocol", "named"), FOLD_CASES.values(), ids=FOLD_CASES)
def test_folds_that_cannot_give_metrics(folds, labels, subjects, protocol, named):
    with pytest.raises(TrainCheckError) as info:
        check_folds(folds, labels, subjects, protocol)
    assert named in str(info.value)


def test_loso_folds_of_two_subjects_pass():
    check_folds(_folds(([2, 3], [0, 1]), ([0, 1], [2, 3])), LABELS, SUBJECTS, "loso", class_names=["neg", "pos"])


def test_store_path_with_a_300_character_name(tmp_path):
    root = make_dataset(tmp_path / "data", [])
    before = listing(tmp_path)
    result = run_cli(*ingest_args(root, tmp_path / ("s" * 300)))
    assert_one_line_error(result, 2, "File name too long", "sss", "shorten the name")
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["synth", "--out", "{tmp}/synth", "--classes", "4"], "--classes must be 3 or 5, got 4"),
        (["synth", "--out", "{tmp}/synth", "--size", "big"], "size 'big'"),
        (["build-input", "--store", "{tmp}/store", "--dataset", "fault", "--kind", "sideways"], "--kind 'sideways'"),
        (["build-flow", "--store", "{tmp}/store", "--dataset", "fault", "--roi", "7"], "--roi 7"),
        (["store", "info", "{tmp}/store", "fault/nosuchstage"], "entry 'fault/nosuchstage' matches 0 entries"),
    ],
    ids=["synth-classes", "synth-size", "build-input-kind", "build-flow-roi", "store-info-entry"],
)
def test_bad_option_found_inside_a_command(args, named, tmp_path):
    make_dataset(tmp_path / "data", [])
    assert run_cli(*ingest_args(tmp_path / "data", tmp_path / "store")).exit_code == 0
    before = listing(tmp_path)
    result = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(result, 2, named)
    assert listing(tmp_path) == before
