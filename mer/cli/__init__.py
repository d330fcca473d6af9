"""The ``mer-cli`` command line: thin commands that parse options, call the library and show progress."""

from __future__ import annotations

from pathlib import Path

import typer

from mer.cli.build_cmds import build_di, build_flow, build_input, build_mesti
from mer.cli.errors import guard_commands, set_debug
from mer.cli.preprocess_cmds import check_dataset, preprocess, synth
from mer.cli.qc_cmds import qc
from mer.cli.reproduce_cmds import reproduce
from mer.cli.show_cmds import show_face, show_mesti
from mer.cli.stag_cmds import show_stag
from mer.cli.storage_cmds import storage_options_callback
from mer.cli.store_cmds import store_app
from mer.cli.train_cmds import report, train

app = typer.Typer(
    help="mer: micro-expression recognition toolkit.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="show the traceback of an error (as MER_DEBUG=1 does)"),
    storage_option: list[str] = typer.Option(
        [],
        "--storage-option",
        help="key=value for the filesystem of a URL store, e.g. endpoint_url=http://minio:9000 or anon=true "
        "(repeatable; credentials come from the AWS_* variables or ~/.aws otherwise)",
    ),
) -> None:
    """mer: micro-expression recognition toolkit. Errors are one line: exit 2 for bad input, 1 for failed clips."""
    set_debug(debug)
    storage_options_callback(storage_option, ctx)


app.command("synth")(synth)
app.command("check-dataset")(check_dataset)
app.command("preprocess")(preprocess)
app.command("build-mesti")(build_mesti)
app.command("build-di")(build_di)
app.command("build-input")(build_input)
app.command("build-flow")(build_flow)
app.command("show-face")(show_face)
app.command("show-mesti")(show_mesti)
app.command("show-stag")(show_stag)
app.command("train")(train)
app.command("report")(report)
app.command("qc")(qc)
app.command("reproduce")(reproduce)
app.add_typer(store_app, name="store")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="folder for data, store and runs"),
    fresh: bool = typer.Option(False, help="delete the folder first"),
) -> None:
    """Synthetic data → preprocessing → MESTI, dynamic-image and apex inputs → MEGANet under LOSO → results table."""
    from mer.cli.demo import run_demo

    run_demo(out, fresh=fresh)


@app.command("demo-facesleuth")
def demo_facesleuth(
    out: Path = typer.Option(Path("demo-facesleuth"), "--out", help="folder for data, store and runs"),
    fresh: bool = typer.Option(False, help="delete the folder first"),
) -> None:
    """Synthetic data → aligned faces → raw onset/apex frames → FaceSleuth under LOSO → table and θ curves."""
    from mer.cli.demo import run_facesleuth_demo

    run_facesleuth_demo(out, fresh=fresh)


guard_commands(app)  # last: every command above, and any added to store_app, reports errors as one line

__all__ = ["app"]
