"""``mer-cli show-stag RUN CLIP``: the STAG explanation figure of a clip and of every class."""

from __future__ import annotations

from pathlib import Path

import typer


def show_stag(
    run: Path = typer.Argument(..., help="a finished STAG run folder (trained with --checkpoints)"),
    clip: str = typer.Argument(..., help="clip id (subject/clip), or DATASET:CLIP in a composite run"),
    out: Path = typer.Option(Path("stag.png"), "--out", help="PNG to write (plus <name>_importance.csv)"),
    store: str | None = typer.Option(None, "--store", help="store path or URL (default: the run's store)"),
) -> None:
    """Learned ROI adjacency and ROI importance over the aligned face: the clip, then the mean of each class."""
    from rich.markup import escape

    from mer.cli.console import console, err_console
    from mer.report.stag_explain import show_stag as write_figure
    from mer.store import StoreError

    try:
        path = write_figure(run, clip, out, store)
    except (ValueError, KeyError, StoreError, FileNotFoundError) as exc:
        err_console.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"wrote {escape(str(path))} and {escape(path.stem)}_importance.csv")
