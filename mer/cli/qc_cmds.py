"""``mer-cli qc``: a browsable gallery of every clip of a dataset, worst first, with its scores as CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from mer.cli.console import console, err_console
from mer.cli.errors import user_errors
from mer.report.qc_scores import FACE_CHAIN, IMAGE_INPUTS, QC_THRESHOLD
from mer.store import FeatureStore


def _parse_keys(items: list[str] | None) -> dict[str, str]:
    """``--key STAGE=KEY`` items by stage; a stage qc never reads is named (it was ignored without a word)."""
    readable = (*FACE_CHAIN, *IMAGE_INPUTS)
    keys = {}
    for item in items or []:
        stage, sep, key = item.partition("=")
        if not sep or not stage.strip() or not key.strip():
            raise typer.BadParameter(f"--key {item!r}: expected STAGE=KEY, e.g. landmarks=e15a07")
        if stage.strip() not in readable:
            raise typer.BadParameter(
                f"--key {item!r}: qc reads no {stage.strip()!r} entry; stages: {', '.join(readable)}"
            )
        keys[stage.strip()] = key.strip()
    return keys


def qc(
    store: str = typer.Argument(..., help="store path or URL"),
    dataset: str = typer.Argument(..., help="dataset name in the store"),
    out: Path = typer.Option(..., "--out", help="folder for index.html, qc.csv, overview.png and thumbs/"),
    threshold: float = typer.Option(QC_THRESHOLD, help="clips scoring below this are flagged"),
    image: str | None = typer.Option(None, help="image input to show (mesti, dynamic, apex-frame, diff, onset, none)"),
    key: list[str] | None = typer.Option(None, "--key", help="STAGE=KEY when a stage has several entries"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Write a static HTML gallery of every clip (worst first), qc.csv and an overview figure."""
    from rich.progress import Progress

    from mer.report.qc_page import write_qc_report
    from mer.store import open_store

    keys = _parse_keys(key)
    if not 0.0 < threshold < 1.0:
        raise typer.BadParameter(f"--threshold {threshold}: must be between 0 and 1")
    with user_errors():
        st = open_store(store, "r")
        with Progress(console=err_console, transient=True, disable=quiet) as progress:
            task = progress.add_task("qc clips", total=None)
            report = write_qc_report(
                st,
                dataset,
                out,
                threshold=threshold,
                keys=keys,
                image=image,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items())
    console.print(f"{escape(dataset)}: {len(report.table)} clips ({counts}); threshold {threshold:g}")
    console.print(f"wrote {escape(str(report.page))}, {escape(str(report.csv))}, {escape(str(report.overview))}")


def print_quality_summary(store: FeatureStore, dataset: str, plan: Sequence[Any] | None = None) -> None:
    """Print how many clips fall below the QC threshold after a preprocess run (nothing when the dataset has no
    face stages). ``plan`` (the run's planned stages) picks the entries this run wrote when a stage has several."""
    from mer.report.qc_scores import FACE_CHAIN, summarize_quality

    keys = {p.stage.name: p.key for p in plan or [] if p.stage.name in FACE_CHAIN}
    line = summarize_quality(store, dataset, keys=keys or None)
    if line:
        console.print(escape(line))
