"""``mer-cli build-mesti``, ``build-di`` and ``build-input``: single-image network inputs from aligned faces."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

import mer.pipeline.catalog  # noqa: F401  (registers the built-in stages)
from mer.cli.console import console
from mer.cli.errors import user_errors
from mer.cli.run_view import check_workers, exit_on_failures, print_report, run_with_progress
from mer.cli.store_open import open_cli_store
from mer.names import validate_component
from mer.pipeline.graph import build_plan

STORE = typer.Option(..., "--store", help="store path or URL")
DATASET = typer.Option(..., "--dataset", help="dataset name in the store")
SIZE = typer.Option(224, help="output size in pixels (square)")
NORM = typer.Option("minmax", help="minmax (uint8 0..255, as the MESTI paper shows) | zscore | none")
APEX = typer.Option(
    None,
    help="the apex stage's mode: annotated | middle | detected (default: the apex entry already stored for these "
    "faces, else annotated)",
)
FALLBACK = typer.Option(
    None, help="when the annotated apex is missing: middle | detected | none (an error); default middle"
)
WORKERS = typer.Option(None, help="parallel worker processes (default: all cores)")
SCHEDULER = typer.Option(None, help="Dask scheduler tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS)")
QUIET = typer.Option(False, "--quiet", help="no progress bars")


def apex_overrides(apex: str | None, fallback: str | None) -> dict[str, dict[str, Any]]:
    """The ``apex`` stage's parameters from ``--apex`` / ``--apex-fallback``; none given: no override, so that the
    plan reuses the apex entry already stored for these faces (one apex per clip for every input), else the
    default (annotated, falling back to the middle frame)."""
    if apex is None and fallback is None:
        return {}
    params: dict[str, Any] = {"mode": apex or "annotated"}
    if fallback is not None:
        params["fallback"] = None if fallback.lower() == "none" else fallback
    return {"apex": params}


def build_stages(
    store: str,
    dataset: str,
    params: dict[str, dict[str, Any]],
    workers: int | None,
    quiet: bool,
    scheduler: str | None = None,
    upstream: dict[str, dict[str, Any]] | None = None,
    batch_units: int | None = None,
) -> None:
    """Compute the named stages (and whatever they lack upstream) for every clip; report and exit like preprocess.

    ``upstream`` gives parameters of stages read by the named ones (e.g. ``apex``) without making them targets;
    ``batch_units`` the work per call of a stage that computes groups of clips (None: its default for the device)."""
    validate_component("dataset", dataset)
    check_workers(workers)
    st = open_cli_store(store, "a")
    with user_errors():
        plan = build_plan(st, dataset, list(params), (upstream or {}) | params)
    report = run_with_progress(
        st, dataset, plan, workers, quiet, f"{','.join(params)} {dataset}", scheduler, batch_units=batch_units
    )
    print_report(report, plan)
    for planned in plan[-len(params) :]:
        console.print(
            escape(f"read with: open_store({store!r}).read({dataset!r}, {planned.stage.name!r}, key={planned.key!r})")
        )
    exit_on_failures(report)


def build_mesti(
    store: str = STORE,
    dataset: str = DATASET,
    apex: str | None = APEX,
    apex_fallback: str | None = FALLBACK,
    scheme: str = typer.Option("mesti", help="mesti (two-segment) | mesti-distance"),
    size: int = SIZE,
    norm: str = NORM,
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
    scheduler: str | None = SCHEDULER,
) -> None:
    """MESTI images (apex-centred approximate rank pooling): one N×3×size×size array plus the apex per clip."""
    params = {"scheme": scheme, "size": size, "norm": norm}
    build_stages(store, dataset, {"mesti": params}, workers, quiet, scheduler, apex_overrides(apex, apex_fallback))


def build_di(
    store: str = STORE,
    dataset: str = DATASET,
    scheme: str = typer.Option("di", help="di (Bilen's approximate rank pooling) | di-linear"),
    size: int = SIZE,
    norm: str = NORM,
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
    scheduler: str | None = SCHEDULER,
) -> None:
    """Dynamic images: one N×3×size×size array."""
    build_stages(store, dataset, {"dynamic": {"scheme": scheme, "size": size, "norm": norm}}, workers, quiet, scheduler)


def build_input(
    store: str = STORE,
    dataset: str = DATASET,
    kind: str = typer.Option(
        ...,
        help="apex-frame | onset | diff (apex − onset) | onset-raw | apex-frame-raw (aligned uint8 RGB, "
        "FaceSleuth/MMNet) | apex (the apex position only)",
    ),
    apex: str | None = APEX,
    apex_fallback: str | None = FALLBACK,
    size: int = SIZE,
    norm: str = NORM,
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
    scheduler: str | None = SCHEDULER,
) -> None:
    """Other single-image inputs: apex frame, onset frame, apex − onset (the MESTI paper's comparison), and the
    raw aligned onset/apex frames (uint8 RGB, no equalisation or min-max; ``--norm`` does not apply)."""
    kinds = ("apex-frame", "onset", "diff", "onset-raw", "apex-frame-raw", "apex")
    if kind not in kinds:
        raise typer.BadParameter(f"--kind {kind!r}: choose {', '.join(kinds)}")
    upstream = apex_overrides(apex, apex_fallback)
    if kind == "apex":
        build_stages(store, dataset, upstream or {"apex": {}}, workers, quiet, scheduler)
        return
    params: dict[str, Any] = {"size": size}
    if not kind.endswith("-raw"):
        params["norm"] = norm
    build_stages(store, dataset, {kind: params}, workers, quiet, scheduler, upstream)


def build_flow(
    store: str = STORE,
    dataset: str = DATASET,
    method: str = typer.Option("farneback", help="farneback | tvl1 (OpenCV) | tvl1-torch (batched, any device)"),
    pairs: str = typer.Option(
        "onset-apex,apex-offset", help="onset-apex,apex-offset | sequence | from-onset (comma-separated)"
    ),
    size: int = typer.Option(28, help="flow image size: 28, 112 or 224"),
    roi: int | None = typer.Option(None, help="also build STAG ROI sequences with 6, 14 or 18 ROIs"),
    length: int = typer.Option(32, help="ROI sequence length T"),
    apex: str | None = APEX,
    apex_fallback: str | None = FALLBACK,
    device: str = typer.Option("auto", help="tvl1-torch only: auto (CUDA when available) | cpu | cuda"),
    batch_pairs: int | None = typer.Option(
        None,
        help="tvl1-torch only: frame pairs per kernel call, short clips grouped to fill it (default 64 on cuda, "
        "8 on cpu; 1: one clip per call); the stored fields do not depend on it",
    ),
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
    scheduler: str | None = SCHEDULER,
) -> None:
    """Optical flow on aligned faces: per-clip fields (int16), (u, v, strain) images and optional ROI sequences."""
    if roi not in (None, 6, 14, 18):
        raise typer.BadParameter(f"--roi {roi}: choose 6, 14 or 18")
    if batch_pairs is not None and (method != "tvl1-torch" or batch_pairs < 1):
        raise typer.BadParameter(f"--batch-pairs {batch_pairs}: a number >= 1, for --method tvl1-torch only")
    flow: dict[str, Any] = {"method": method, "pairs": pairs}
    if method == "tvl1-torch":
        from mer.pipeline.flow.tvl1_torch import resolve_device

        try:
            resolve_device(device)  # a missing CUDA device fails here, before any clip
        except ValueError as exc:
            raise typer.BadParameter(f"--device: {exc}") from None
        flow["method_params"] = {"device": device}
    elif device != "auto":
        raise typer.BadParameter(f"--device {device}: only --method tvl1-torch runs on a chosen device")
    params: dict[str, dict[str, Any]] = {"flow": flow, "flow-image": {"size": size}}
    if roi is not None:
        params["roi-flow"] = {"roi_set": f"stag{roi}", "length": length}
    build_stages(store, dataset, params, workers, quiet, scheduler, apex_overrides(apex, apex_fallback), batch_pairs)
