"""``mer-cli build-mesti``, ``build-di`` and ``build-input``: single-image network inputs from aligned faces."""

from __future__ import annotations

from typing import Any

import typer

from mer.cli.console import console
from mer.cli.run_view import exit_on_failures, print_report, run_with_progress
from mer.pipeline.graph import build_plan
from mer.store import open_store

STORE = typer.Option(..., "--store", help="store path or URL")
DATASET = typer.Option(..., "--dataset", help="dataset name in the store")
SIZE = typer.Option(224, help="output size in pixels (square)")
NORM = typer.Option("minmax", help="minmax (uint8 0..255, as the MESTI paper shows) | zscore | none")
APEX = typer.Option("annotated", help="annotated | middle | detected")
FALLBACK = typer.Option(None, help="when the annotated apex is missing: middle | detected (default: error)")
WORKERS = typer.Option(1, help="parallel worker processes")
QUIET = typer.Option(False, "--quiet", help="no progress bars")


def build_stage(store: str, dataset: str, stage: str, params: dict[str, Any], workers: int, quiet: bool) -> None:
    """Compute one stage (and whatever it lacks upstream) for every clip, then report and exit like preprocess."""
    st = open_store(store, "a")
    plan = build_plan(st, dataset, [stage], {stage: params})
    report = run_with_progress(st, dataset, plan, workers, quiet, f"{stage} {dataset}")
    print_report(report, plan)
    console.print(f"read it with: mer.store.open_store({store!r}).read({dataset!r}, {stage!r}, key={plan[-1].key!r})")
    exit_on_failures(report)


def build_mesti(
    store: str = STORE,
    dataset: str = DATASET,
    apex: str = APEX,
    apex_fallback: str | None = FALLBACK,
    scheme: str = typer.Option("mesti", help="mesti (two-segment) | mesti-distance"),
    size: int = SIZE,
    norm: str = NORM,
    workers: int = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """MESTI images (apex-centred approximate rank pooling): one N×3×size×size array plus the apex per clip."""
    build_stage(
        store,
        dataset,
        "mesti",
        {"apex": apex, "apex_fallback": apex_fallback, "scheme": scheme, "size": size, "norm": norm},
        workers,
        quiet,
    )


def build_di(
    store: str = STORE,
    dataset: str = DATASET,
    scheme: str = typer.Option("di", help="di (Bilen's approximate rank pooling) | di-linear"),
    size: int = SIZE,
    norm: str = NORM,
    workers: int = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Dynamic images: one N×3×size×size array."""
    build_stage(store, dataset, "dynamic", {"scheme": scheme, "size": size, "norm": norm}, workers, quiet)


def build_input(
    store: str = STORE,
    dataset: str = DATASET,
    kind: str = typer.Option(..., help="apex | onset | diff (apex − onset)"),
    apex: str = APEX,
    apex_fallback: str | None = FALLBACK,
    size: int = SIZE,
    norm: str = NORM,
    workers: int = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Other single-image inputs of the MESTI paper's comparison: apex frame, onset frame, apex − onset."""
    if kind not in ("apex", "onset", "diff"):
        raise typer.BadParameter(f"--kind {kind!r}: choose apex, onset or diff")
    params: dict[str, Any] = {"size": size, "norm": norm}
    if kind != "onset":
        params |= {"apex": apex, "apex_fallback": apex_fallback}
    build_stage(store, dataset, kind, params, workers, quiet)
