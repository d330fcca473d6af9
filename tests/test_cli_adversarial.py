"""Bad input met through ``mer-cli`` as a new user or an adversary would (cases the fault suite did not cover): one
line naming the option or value, exit 2, nothing written; text from data or options printed as given."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.cli.console import console, err_console


@pytest.fixture(autouse=True)
def wide_consoles():
    """Lines not wrapped at 80 columns, so that a message is found whole in the output."""
    saved = console.width, err_console.width
    console.width = err_console.width = 2000
    yield
    console.width, err_console.width = saved


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
