"""``mer-cli synth``, ``check-dataset`` and ``preprocess``: make data, check it, and run the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from mer.cli.console import console, err_console, failure_table
from mer.cli.errors import user_errors
from mer.cli.qc_cmds import print_quality_summary
from mer.cli.run_view import check_workers, exit_on_failures, print_report, run_with_progress
from mer.cli.store_open import open_cli_store
from mer.datasets.manifest_store import write_dataset_manifest
from mer.names import printable, validate_component
from mer.pipeline.catalog import STAGE_GROUPS, expand_stages
from mer.pipeline.graph import build_plan
from mer.pipeline.stage import get_stage

DEFAULT_STAGES = "ingest,face"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"size {text!r}: expected WIDTHxHEIGHT such as 640x480") from None
    return width, height


def synth(
    out: Path = typer.Option(..., "--out", help="folder to write the dataset into"),
    subjects: int = typer.Option(8, help="number of subjects"),
    clips_per_subject: int = typer.Option(6, help="clips per subject"),
    classes: int = typer.Option(3, help="3 (positive/negative/surprise) or 5 (CASME II-style)"),
    seed: int = typer.Option(0, help="random seed: the same seed writes the same bytes"),
    size: str = typer.Option("640x480", help="frame size WIDTHxHEIGHT"),
) -> None:
    """Write a synthetic micro-expression dataset (real face photos, AU-shaped motions, ground truth)."""
    from mer.synthetic.clips import generate_synthetic

    if classes not in (3, 5):
        raise typer.BadParameter(f"--classes must be 3 or 5, got {classes}")
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("synth clips", total=subjects * clips_per_subject)
        summary = generate_synthetic(
            out,
            subjects=subjects,
            clips_per_subject=clips_per_subject,
            classes=classes,
            seed=seed,
            frame_size=_parse_size(size),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(escape(f"wrote {summary.n_clips} clips ({summary.n_frames} frames) to {out}"))


def parse_column_map(text: str | None) -> dict[str, str] | None:
    """``"Sub=subject,Video=clip"`` → ``{"Sub": "subject", "Video": "clip"}``."""
    if not text:
        return None
    mapping = {}
    for item in text.split(","):
        theirs, sep, ours = item.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise typer.BadParameter(f"--column-map item {item!r}: expected 'Their header=ours'")
        mapping[theirs.strip()] = ours.strip()
    return mapping


COLUMN_MAP = typer.Option(None, help="other sheet headers onto ours: 'Sub=subject,Video=clip' (folder adapter)")
CORRECTIONS = typer.Option(None, help="corrections table (TOML) keyed by subject and clip, instead of the built-in")


DATASET_HELP = "adapter (folder, casme2, samm, smic, ...), composite, or a sheet dataset's specification file (.toml)"


def load_dataset(
    dataset: str,
    root: Path,
    labels: str,
    annotations: Path | None,
    column_map: str | None,
    corrections: Path | None,
    name: str | None = None,
) -> Any:
    """Run the adapter with the CLI's options; a bad option or missing file is a one-line error. ``name`` (a safe
    name, `mer.names`) names a `folder` dataset; without it the folder's default name is used."""
    from mer.datasets import load

    with user_errors():
        if name is not None:
            validate_component("dataset", name)
        return load(
            dataset,
            root,
            labels=labels,
            annotations=annotations,
            column_map=parse_column_map(column_map),
            corrections=corrections,
            dataset_name=name,
        )


def _print_problems(problems: list) -> int:
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    for p in warnings:
        err_console.print(escape(str(p)), style="yellow", soft_wrap=True, highlight=False)
    if errors:
        rows = [
            (
                "/".join(printable(x, 130) for x in (p.subject, p.clip) if x) or "-",
                f"{p.file}" + (f" row {p.row}" if p.row else ""),
                str(p),
            )
            for p in errors
        ]
        err_console.print(failure_table(f"{len(errors)} annotation/layout error(s): these clips are left out", rows))
    return len(errors)


def check_dataset(
    dataset: str = typer.Option(..., help=DATASET_HELP),
    root: Path = typer.Option(..., help="dataset root folder"),
    labels: str = typer.Option("original", help="label set: original, 3class, 5class or a TOML file"),
    annotations: Path | None = typer.Option(None, help="annotation sheet, if not at its usual place"),
    column_map: str | None = COLUMN_MAP,
    corrections: Path | None = CORRECTIONS,
) -> None:
    """Validate a dataset's layout and annotations without writing anything; exit 1 on errors."""
    result = load_dataset(dataset, root, labels, annotations, column_map, corrections)
    n_errors = _print_problems(result.problems)
    console.print(
        escape(
            f"{dataset}: {len(result.manifest)} usable clips, {n_errors} error(s), "
            f"{len(result.problems) - n_errors} warning(s)"
        )
    )
    if n_errors:
        raise typer.Exit(1)


def _stage_names(stages: str) -> list[str]:
    """The stages ``--stages`` names, groups expanded; a usage error naming it when it names none or an unknown one
    (checked before the clips table is written: a typo left a new store behind)."""
    names = expand_stages(stages)
    if not names:
        groups = ", ".join(STAGE_GROUPS)
        raise typer.BadParameter(
            f"--stages {stages!r}: names no stage; give stages or groups ({groups}), e.g. ingest,face"
        )
    for name in names:
        try:
            get_stage(name)
        except ValueError as exc:
            raise typer.BadParameter(f"--stages {stages!r}: {exc}") from None
    return names


def preprocess(
    dataset: str = typer.Option("folder", help=DATASET_HELP),
    root: Path = typer.Option(..., help="dataset root folder"),
    store: str = typer.Option(..., help="store path or URL"),
    name: str | None = typer.Option(None, help="dataset name in the store (default: the adapter's)"),
    labels: str = typer.Option("original", help="label set: original, 3class, 5class or a TOML file"),
    annotations: Path | None = typer.Option(None, help="annotation sheet, if not at its usual place"),
    column_map: str | None = COLUMN_MAP,
    corrections: Path | None = CORRECTIONS,
    stages: str = typer.Option(
        DEFAULT_STAGES,
        help="comma-separated stages or groups (face, flow), e.g. face,mesti,flow: one pass per clip for all of them",
    ),
    workers: int | None = typer.Option(None, help="parallel worker processes (default: all cores)"),
    scheduler: str | None = typer.Option(
        None, help="Dask scheduler tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS); workers write to --store"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars; log lines only"),
    update: bool = typer.Option(
        False, "--update", help="store a changed clips table as a new version (the earlier one stays readable)"
    ),
    rehash: bool = typer.Option(False, "--rehash", help="hash every frame file again (not only those whose size or "
                                "modification time changed)"),
) -> None:
    """Ingest a dataset's manifest into the store and run the preprocessing stages on every clip."""
    from mer.datasets import default_dataset_name

    check_workers(workers)
    stage_names = _stage_names(stages)
    with user_errors():
        ds_name = validate_component("dataset", name) if name is not None else default_dataset_name(dataset, root)
    result = load_dataset(dataset, root, labels, annotations, column_map, corrections, ds_name)
    n_errors = _print_problems(result.problems)
    st = open_cli_store(store, "a")
    label_set = result.label_set.to_dict() if result.label_set is not None else None
    with user_errors():
        outcome = write_dataset_manifest(
            st,
            ds_name,
            result.manifest,
            root,
            result.adapter,
            label_set,
            {"corrections": getattr(result, "corrections", None)},
            update=update,
            rehash=rehash,
        )
    state = "new version" if outcome.changed else ("unchanged" if outcome.previous else "new")
    console.print(
        f"manifest {ds_name}: {outcome.n_clips} clips, version {outcome.hash[:16]} ({state}; "
        f"{outcome.hashed_files} frame file(s) hashed)",
        markup=False,
        soft_wrap=True,
    )
    for line in outcome.diff.summary():
        err_console.print(f"  {line}", markup=False, soft_wrap=True)
    with user_errors():
        plan = build_plan(st, ds_name, stage_names)
    report = run_with_progress(st, ds_name, plan, workers, quiet, f"preprocess {ds_name}", scheduler)
    print_report(report, plan)
    print_quality_summary(st, ds_name, plan)
    exit_on_failures(report, n_errors)
