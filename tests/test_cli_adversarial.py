"""Bad input met through ``mer-cli`` as a new user or an adversary would (cases the fault suite did not cover): one
line naming the option or value, exit 2, nothing written; text from data or options printed as given."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mer.cli import app

pytestmark = pytest.mark.usefixtures("wide_consoles")  # (tests/conftest.py)


def run_cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result, code: int = 2) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_an_option_value_holding_an_emoji_code_is_printed_as_given(tmp_path: Path):
    """rich turns ``:x:`` into an emoji, which escape() does not prevent: the message showed ``kfold❌ K``."""
    line = one_error_line(run_cli("train", "--store", tmp_path / "none", "--dataset", "d", "--protocol", "kfold:x:3",
                                  "--out", tmp_path / "run"))
    assert "--protocol kfold:x:3" in line and "'x' is not a whole number" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["preprocess", "--root", "{tmp}/data", "--store", "{tmp}/store", "--stages", "ingest"],
        ["build-mesti", "--store", "{tmp}/store", "--dataset", "d"],
        ["build-input", "--store", "{tmp}/store", "--dataset", "d", "--kind", "apex-frame"],
        ["reproduce", "apex", "--store", "{tmp}/store", "--out", "{tmp}/out"],
    ],
    ids=["preprocess", "build-mesti", "build-input", "reproduce"],
)
@pytest.mark.parametrize("workers", ["-3", "0"])
def test_workers_below_one_is_refused_before_anything_is_read_or_written(command, workers, tmp_path: Path):
    """It was taken as 1 without a word (or the store was read first and its error shown)."""
    (tmp_path / "data").mkdir()
    line = one_error_line(run_cli(*(a.format(tmp=tmp_path) for a in command), "--workers", workers))
    assert f"--workers {workers}: must be at least 1" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--optimizer", "adamx", "--optimizer 'adamx': choose adam, adamw, sgd"),
        ("--loss", "hinge", "--loss 'hinge': choose focal or ce"),
        ("--device", "gpu", "--device 'gpu': choose auto, cpu, cuda or cuda:N"),
        ("--device", "cuda:x", "--device 'cuda:x'"),
    ],
)
def test_a_bad_optimizer_loss_or_device_is_named_before_the_store_is_read(option, value, named, tmp_path: Path):
    """The trainer refused them only in the first fold, after the data was read (here: the store's error first)."""
    line = one_error_line(run_cli("train", "--store", tmp_path / "none", "--dataset", "d", option, value,
                                  "--out", tmp_path / "run"))
    assert named in line
    assert not (tmp_path / "run").exists()


def test_cuda_where_there_is_none_is_named_before_the_store_is_read(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = one_error_line(run_cli("train", "--store", tmp_path / "none", "--dataset", "d", "--device", "cuda",
                                  "--out", tmp_path / "run"))
    assert "--device cuda: no CUDA device is available here" in line


def test_the_names_checked_are_those_the_trainer_builds():
    import torch

    from mer.train.checks import LOSSES, OPTIMIZERS
    from mer.train.losses import make_loss
    from mer.train.trainer import TrainConfig, _make_optimizer

    model = torch.nn.Linear(2, 2)
    for name in OPTIMIZERS:
        assert isinstance(_make_optimizer(model, TrainConfig(optimizer=name.upper())), torch.optim.Optimizer)
    for name in LOSSES:
        assert isinstance(make_loss(name), torch.nn.Module)
    with pytest.raises(ValueError):
        _make_optimizer(model, TrainConfig(optimizer="adamx"))


def test_cuda_is_not_asked_of_this_machine_when_folds_train_on_a_cluster(tmp_path: Path):
    """With --scheduler the folds run on the cluster's GPUs: the next check (here: the store) speaks, not CUDA's."""
    line = one_error_line(run_cli("train", "--store", tmp_path / "none", "--dataset", "d", "--device", "cuda",
                                  "--scheduler", "tcp://127.0.0.1:9", "--out", tmp_path / "run"))
    assert "no mer store at" in line


def test_a_qc_key_for_a_stage_qc_never_reads_is_named(tmp_path: Path):
    """``--key flow=...`` (or a typo, ``landmark=...``) was ignored: the gallery was made of other entries."""
    line = one_error_line(run_cli("qc", tmp_path / "none", "d", "--out", tmp_path / "qc", "--key", "landmark=e15a"))
    assert "--key 'landmark=e15a': qc reads no 'landmark' entry; stages: detect, landmarks" in line
    assert not (tmp_path / "qc").exists()


def test_an_input_with_an_empty_key_after_the_at_is_named(tmp_path: Path):
    """``mesti@`` read as ``mesti`` with no key: a command that picked some entry where its author meant one."""
    line = one_error_line(run_cli("train", "--store", tmp_path / "none", "--dataset", "d", "--input", "mesti@",
                                  "--out", tmp_path / "run"))
    assert "input source 'mesti@': name the entry key after '@', e.g. mesti@3fa2" in line


def test_a_missing_manifest_column_names_the_option_not_an_internal_input_name(tiny_dataset, tmp_path: Path):
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.store import open_store

    root, manifest = tiny_dataset
    write_dataset_manifest(open_store(str(tmp_path / "store"), "a"), "tiny", manifest, root, "folder", None)
    line = one_error_line(run_cli("train", "--store", tmp_path / "store", "--dataset", "tiny", "--input",
                                  "manifest:au_vectr", "--out", tmp_path / "run"))
    assert "--input manifest:au_vectr: the manifest of tiny has no column 'au_vectr'" in line  # was "input 'x': …"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"this is [not toml\n", "not a valid TOML corrections table: Expected '='"),
        (b"\xff\xfe[[fix]]\n", "not a valid TOML corrections table: 'utf-8' codec"),
        (b"fix = 3\n", "'fix' must be a list of tables"),
        (b"fix = [1, 2]\n", "'fix' must be a list of tables"),
    ],
    ids=["not-toml", "not-utf8", "fix-a-number", "fix-a-list-of-numbers"],
)
def test_a_damaged_corrections_table_is_named(content, named, tiny_dataset, tmp_path: Path):
    """The TOML parser's message came without the file's name; a ``fix`` of the wrong type was an unexpected error."""
    root, _ = tiny_dataset
    table = tmp_path / "fixes.toml"
    table.write_bytes(content)
    line = one_error_line(run_cli("check-dataset", "--dataset", "folder", "--root", root, "--corrections", table))
    assert line.startswith(f"error: {table}: ") and named in line


@pytest.mark.parametrize(
    ("stages", "named"),
    [("", "--stages '': names no stage"), (" , ", "--stages ' , ': names no stage"),
     ("ingest,fase", "--stages 'ingest,fase': unknown stage 'fase'; known: align")],
    ids=["empty", "commas", "typo"],
)
def test_stages_naming_nothing_or_an_unknown_stage_leave_no_store_behind(stages, named, tiny_dataset, tmp_path: Path):
    """An empty --stages ran nothing and said all clips were complete (exit 0); a typo was refused only after the
    clips table was written into a new store."""
    root, _ = tiny_dataset
    line = one_error_line(run_cli("preprocess", "--root", root, "--store", tmp_path / "store", "--stages", stages,
                                  "--workers", "1", "--quiet"))
    assert named in line
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("url", ["s3://", "s3:///", "memory://"])
def test_a_store_url_without_a_bucket_is_named(url):
    """``s3://`` alone reached the S3 client, whose ParamValidationError was reported as an unexpected error."""
    line = one_error_line(run_cli("store", "ls", url))
    assert f"store URL {url!r} names no bucket or folder" in line


@pytest.mark.parametrize("target", ["entry.txt", "entry.zip", ""])
def test_an_export_target_of_no_known_kind_is_refused_before_the_store_is_read(target, tmp_path: Path):
    """``--to entry.txt`` wrote an HDF5 file under that name; ``--to ''`` said "PosixPath('.') has an empty name"."""
    line = one_error_line(run_cli("store", "export", tmp_path / "none", "ds/stage", "--to", target))
    shown = str(Path(target))
    assert f"--to {shown!r}: give a .h5 (HDF5) or .zarr.zip (zipped zarr) file name" in line


@pytest.mark.parametrize("entry", ["tiny/../tiny", "../tiny/ingest", "tiny/.."])
def test_an_entry_argument_with_dot_dot_never_becomes_a_store_path(entry, tiny_dataset, tmp_path: Path):
    """``store info STORE tiny/../tiny`` listed the store's root as the stages of ``tiny`` and read what it found."""
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.store import open_store

    root, manifest = tiny_dataset
    write_dataset_manifest(open_store(str(tmp_path / "store"), "a"), "tiny", manifest, root, "folder", None)
    line = one_error_line(run_cli("store", "info", tmp_path / "store", entry))
    assert "name '..' is unusable" in line


# ------------------------------------------------------------------ the store under the commands
def test_a_dataset_named_dot_dot_never_reads_a_clips_table_outside_the_store(tiny_dataset, tmp_path: Path):
    """``manifest_meta('..')`` read ``<store>/../manifest/zarr.json``: a clips table planted beside the store."""
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.names import UnsafeNameError
    from mer.store import open_store

    root, manifest = tiny_dataset
    st = open_store(str(tmp_path / "store"), "a")
    write_dataset_manifest(st, "tiny", manifest, root, "folder", None)
    planted = tmp_path / "manifest" / "zarr.json"
    planted.parent.mkdir()
    planted.write_bytes((tmp_path / "store" / "tiny" / "manifest" / "zarr.json").read_bytes())
    reader = open_store(str(tmp_path / "store"), "r")
    for read in (lambda: reader.manifest_meta(".."), lambda: reader.manifest("tiny", "../../manifest"),
                 lambda: reader.manifest_versions("..")):
        with pytest.raises(UnsafeNameError, match="is unusable"):
            read()


def test_an_entry_address_from_recorded_inputs_is_one_safe_name_each():
    """An entry's recorded ``inputs`` (stage → key) became store paths as they were: ``{"..": "x"}`` left the
    dataset's folder."""
    from mer.names import UnsafeNameError
    from mer.store.entries import EntryRef

    assert EntryRef("ds", "mesti", "3fa2").path == "ds/mesti/3fa2"
    for parts in (("ds", "..", "x"), ("..", "mesti", "3fa2"), ("ds", "mesti", "../../etc"), ("ds", "mesti", "")):
        with pytest.raises(UnsafeNameError):
            EntryRef(*parts)


@pytest.mark.parametrize(("dtype", "shape"), [("uint8", (4, 16, 16, 3)), ("float32", (4, 68, 2))],
                         ids=["raw-frames", "zstd-points"])
def test_a_chunk_cut_short_is_read_as_damage_named_with_its_array(dtype, shape, tmp_path: Path):
    """A cut-short raw chunk read as "cannot reshape array of size 10 into shape (16,256,256,3)" (a zstd one as
    "Zstd decompression error"), naming neither the file nor the store's damage nor what to do."""
    import numpy as np

    from mer.store import StoreError, open_store
    from mer.store.entries import EntryRef, OutputSpec

    st = open_store(str(tmp_path / "store"), "a")
    entry = st.ensure_entry(EntryRef("ds", "stage", "key"), [OutputSpec("values", dtype)],
                            {"clip_ids": ["s01/c01"], "primary": "values", "recipe": "r"})
    st.commit_clip(entry, 0, {"values": np.ones(shape, dtype)})
    chunk = next(p for p in (tmp_path / "store/ds/stage/key/clips/s01/c01/values/c").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(StoreError) as info:
        st.read_entry(entry, clip="s01/c01")
    message = str(info.value)
    assert message.startswith(f"{st.location}/ds/stage/key/clips/s01/c01/values: damaged chunk data (")
    assert "`mer-cli store verify STORE` names the file" in message and "\n" not in message


def test_a_column_map_header_that_is_not_in_the_sheet_is_warned_about(tiny_dataset, tmp_path: Path):
    """``--column-map 'Sbj=subject'`` for a sheet whose header is ``Subject``: the mapping did nothing, silently."""
    root, _ = tiny_dataset
    sheet = root / "annotations.csv"
    sheet.write_text("subject,clip,onset,apex,offset,emotion\ns01,c01,0,2,4,happiness\n")
    result = run_cli("check-dataset", "--dataset", "folder", "--root", root, "--column-map", "Sbj=subject")
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert f"{sheet}, row 1, column 'Sbj' = 'subject': column_map header 'Sbj' is not in the header row" in warning
    assert "['subject', 'clip', 'onset', 'apex', 'offset', 'emotion']" in warning
    mapped = run_cli("check-dataset", "--dataset", "folder", "--root", root, "--column-map", "subject=subject")
    assert "warning:" not in mapped.output and "0 warning(s)" in mapped.output


def test_a_root_that_is_a_file_and_a_sheet_that_is_a_folder_are_called_so(tiny_dataset, tmp_path: Path):
    """Both were reported as "not found", which sends the user looking for a typo in a path that exists."""
    root, _ = tiny_dataset
    (tmp_path / "notes.txt").write_text("x")
    as_root = run_cli("check-dataset", "--dataset", "folder", "--root", tmp_path / "notes.txt")
    assert f"error: {tmp_path / 'notes.txt'}: folder root folder is a file, not a folder" in as_root.output
    as_sheet = run_cli("check-dataset", "--dataset", "folder", "--root", root, "--annotations", root / "s01")
    assert f"error: {root / 's01'}: annotation file is a folder, not a file" in as_sheet.output
    assert as_root.exit_code == as_sheet.exit_code == 1


@pytest.mark.parametrize(
    ("metrics", "named"),
    [('{"uf1": 0.5, ', "metrics.json: damaged JSON (Expecting property name enclosed in double quotes at line 1"),
     ("[1, 2]", "metrics.json: not a JSON object (list)")],
    ids=["cut-short", "a-list"],
)
def test_a_damaged_run_file_is_named_by_report(metrics, named, tmp_path: Path):
    """A cut-short metrics.json read "damaged JSON …; `mer-cli store verify STORE` names it" (no file, and no store
    is involved); a list was an unexpected AttributeError."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": "meganet", "input": "mesti", "protocol": {"name": "loso"}}')
    (run / "metrics.json").write_text(metrics)
    line = one_error_line(run_cli("report", run, "--out", tmp_path / "report.md"))
    assert line.startswith(f"error: {run / 'metrics.json'}") and named in line and "store verify" not in line
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("fmt", ["2", True, 2.5, 0])
def test_a_store_format_that_is_not_a_format_number_is_named(fmt, tmp_path: Path):
    """``"2"`` was an unexpected TypeError (str > int); ``true`` a "format-True store from an earlier mer"."""
    import json

    from mer.store.store import FORMAT_VERSION

    store = tmp_path / "store"
    store.mkdir()
    root = {"zarr_format": 3, "node_type": "group", "attributes": {"mer_store": {"format": fmt}}}
    (store / "zarr.json").write_text(json.dumps(root))
    for command in (["store", "ls", store], ["store", "verify", store]):
        line = one_error_line(run_cli(*command))
        assert f"{store}/zarr.json: store format {fmt!r} is not a format number (1 to {FORMAT_VERSION})" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--epochs", "0"], "--epochs 0: must be a whole number ≥ 1"),
     (["--device", "gpu"], "--device 'gpu': choose auto, cpu, cuda or cuda:N"),
     (["--out", "{tmp}/notes.txt"], "notes.txt: is a file; give a folder")],
    ids=["epochs", "device", "out-a-file"],
)
def test_reproduce_checks_its_options_before_building_anything(args, named, tmp_path: Path):
    """With --quick a synthetic store and the inputs were built first; then the first fold failed on --device
    (an unexpected RuntimeError) or the epochs."""
    (tmp_path / "notes.txt").write_text("x")
    given = [a.format(tmp=tmp_path) for a in args]
    out = [] if "--out" in given else ["--out", str(tmp_path / "out")]
    line = one_error_line(run_cli("reproduce", "apex", "--store", tmp_path / "none", *out, *given))
    assert named in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
