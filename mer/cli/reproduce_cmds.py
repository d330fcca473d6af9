"""``mer-cli reproduce NAME``: one of the MESTI-MEGANet paper's experiments, the paper's numbers beside ours."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mer.cli.console import console, err_console
from mer.cli.errors import user_errors
from mer.cli.run_view import check_workers
from mer.train.paper_grids import EXPERIMENTS


def reproduce(
    name: str = typer.Argument(..., help=f"experiment: {', '.join(EXPERIMENTS)}"),
    store: str | None = typer.Option(None, help="store path or URL holding the datasets (casme2, samm, smic)"),
    out: Path = typer.Option(..., "--out", help="folder for the run folders and the tables"),
    quick: bool = typer.Option(False, help="the grid shrunk on a synthetic store on the CPU (a test, not results)"),
    real_networks: bool = typer.Option(False, help="with --quick: keep VGG19/ResNet50/EfficientNet (slow on CPU)"),
    epochs: int = typer.Option(50, help="fixed number of epochs (the paper's 50; nothing is chosen on test folds)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    amp: bool = typer.Option(False, help="bfloat16 mixed precision on CUDA (default float32; recorded)"),
    pretrained: bool = typer.Option(False, help="ImageNet weights for the timm networks, from the local cache"),
    subject_independent: bool = typer.Option(
        False, help="hold out whole subjects where the paper split clips (Table 1's 90/10 split)"
    ),
    workers: int | None = typer.Option(None, help="processes for building missing inputs (default: all cores)"),
    scheduler: str | None = typer.Option(
        None, help="Dask scheduler tcp://HOST:PORT: missing inputs built and every fold of every run trained there"
    ),
) -> None:
    """Build the missing inputs, train every run of the grid (finished runs are skipped), write NAME.md/.tex/.png."""
    import torch

    from mer.store import open_store
    from mer.train.checks import check_device, check_out_dir
    from mer.train.reproduce import QuickSizes, ReproduceOptions, build_quick_store
    from mer.train.reproduce import reproduce as run

    check_workers(workers)
    if epochs < 1:  # checked before the inputs are built (they were, and then the first fold refused them)
        raise typer.BadParameter(f"--epochs {epochs}: must be a whole number ≥ 1")
    with user_errors():
        check_device(device, cuda_available=bool(scheduler) or torch.cuda.is_available())
        check_out_dir(out)
    if name not in EXPERIMENTS:
        raise typer.BadParameter(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    if store is None and not quick:
        raise typer.BadParameter("--store is required (or --quick, which builds a synthetic store)")
    if store is None:
        console.print(f"quick: synthetic store in {escape(str(out / 'quick'))}")
        store = build_quick_store(out / "quick", workers=workers or 1)
    options = ReproduceOptions(
        epochs=epochs, seed=seed, device=device, amp=amp, workers=workers, pretrained=pretrained,
        subject_independent=subject_independent, scheduler=scheduler,
    )
    sizes = QuickSizes(tiny_networks=not real_networks) if quick else None
    from mer.cli.cluster_train import fold_failures
    from mer.models.baselines import PretrainedWeightsUnavailableError

    with user_errors(), fold_failures():
        try:
            result = run(name, open_store(store, "a"), out, options, sizes, log=lambda m: err_console.print(escape(m)))
        except PretrainedWeightsUnavailableError as exc:
            raise ValueError(str(exc)) from None
    computed = sum(result.clips_computed.values())
    console.print(
        f"{name}: {result.runs_trained} run(s) trained, {result.runs_skipped} finished run(s) skipped, "
        f"{computed} clip input(s) computed"
    )
    from mer.report.reproduce_report import write_reproduction

    files = write_reproduction(result.experiment, result.cells, out, quick=quick)
    console.print("tables: " + ", ".join(escape(str(p)) for p in files))
