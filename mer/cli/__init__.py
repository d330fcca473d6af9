"""The ``mer-cli`` command line: thin commands that parse options, call the library and show progress."""

from __future__ import annotations

from pathlib import Path

import typer

from mer.cli.build_cmds import build_di, build_flow, build_input, build_mesti
from mer.cli.preprocess_cmds import check_dataset, preprocess, synth
from mer.cli.show_cmds import show_face, show_mesti
from mer.cli.storage_cmds import storage_options_callback
from mer.cli.store_cmds import store_app
from mer.cli.train_cmds import report, train

app = typer.Typer(
    help="mer: micro-expression recognition toolkit.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.callback()(storage_options_callback)
app.command("synth")(synth)
app.command("check-dataset")(check_dataset)
app.command("preprocess")(preprocess)
app.command("build-mesti")(build_mesti)
app.command("build-di")(build_di)
app.command("build-input")(build_input)
app.command("build-flow")(build_flow)
app.command("show-face")(show_face)
app.command("show-mesti")(show_mesti)
app.command("train")(train)
app.command("report")(report)
app.add_typer(store_app, name="store")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="folder for data, store and runs"),
    fresh: bool = typer.Option(False, help="delete the folder first"),
) -> None:
    """Synthetic data → preprocessing → MESTI and apex inputs → MEGANet under LOSO → results table."""
    from mer.demo import run_demo

    run_demo(out, fresh=fresh)


__all__ = ["app"]
