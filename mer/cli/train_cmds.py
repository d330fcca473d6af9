"""``mer-cli train`` and ``mer-cli report``: train a model on a stored input under a protocol; compare runs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mer.cli.console import console, err_console
from mer.cli.errors import user_errors


def _model_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--option {item!r}: expected name=value, e.g. blocks=2")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def train(
    store: str = typer.Option(..., help="store path or URL"),
    dataset: str = typer.Option(..., help="stored dataset, or several joined by + (casme2+samm+smic)"),
    input: str = typer.Option("mesti", "--input", help="input stage: mesti, dynamic, apex, onset, diff, ..."),
    key: str | None = typer.Option(None, help="entry key of the input, when the store has several"),
    model: str = typer.Option("meganet", help="meganet, vgg19, resnet50, efficientnet_b0, ststnet, ..."),
    option: list[str] = typer.Option([], "--option", help="model option name=value (repeatable)"),
    protocol: str = typer.Option(
        "loso", help="loso | megc2019 | cross:TRAIN+SETS:TEST | holdout[:0.1[:seed]] | kfold[:k[:seed[:grouped]]]"
    ),
    classes: int | None = typer.Option(None, help="3 or 5: relabel with the 3class / 5class label set"),
    labels: str | None = typer.Option(None, help="label set name or TOML file (default: the preprocessing one)"),
    epochs: int = typer.Option(50, help="fixed number of epochs (no choice made on a test fold)"),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-4, help="learning rate"),
    weight_decay: float = typer.Option(1e-4),
    optimizer: str = typer.Option("adam", help="adam | adamw"),
    loss: str = typer.Option("focal", help="focal | ce"),
    gamma: float = typer.Option(2.0, help="focal loss γ"),
    label_smoothing: float = typer.Option(0.0),
    augment: bool = typer.Option(True, help="flip and ±5°/±10° rotations on the device"),
    val_fraction: float = typer.Option(0.0, help="inner validation split from the training subjects"),
    early_stopping: bool = typer.Option(False, help="stop on the inner validation split (needs --val-fraction)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    checkpoints: bool = typer.Option(False, help="save each fold's weights (state dicts)"),
    out: Path = typer.Option(..., "--out", help="run folder, e.g. runs/mesti-meganet"),
) -> None:
    """Train and evaluate under a protocol; writes metrics.json, predictions.csv, config and provenance."""
    from rich.progress import Progress

    from mer.store import open_store
    from mer.train.experiment import run_experiment
    from mer.train.protocols import parse_protocol
    from mer.train.trainer import TrainConfig

    if labels is None and classes is not None:
        if classes not in (3, 5):
            raise typer.BadParameter(f"--classes must be 3 or 5, got {classes}")
        labels = f"{classes}class"
    if early_stopping and val_fraction <= 0:
        raise typer.BadParameter("--early-stopping needs --val-fraction > 0 (an inner split of training subjects)")
    from mer.train.store_inputs import load_training_data

    with user_errors():
        data = load_training_data(open_store(store, "r"), dataset, input, key, labels)
        spec = parse_protocol(protocol)
    if data.excluded:
        err_console.print(
            f"{len(data.excluded)} clip(s) left out (not computed or no label), e.g. "
            f"{data.excluded[0][0]}: {data.excluded[0][1]}"
        )
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimizer=optimizer,
        loss=loss,
        gamma=gamma,
        label_smoothing=label_smoothing,
        augment=augment,
        val_fraction=val_fraction,
        early_stopping=early_stopping,
        seed=seed,
        device=device,
    )
    n_folds = len(list(spec.folds(data.meta)))
    console.print(
        f"{input} → {model}: {len(data.meta)} clips, {data.meta['subject'].nunique()} subjects, "
        f"classes {data.class_names}, {protocol} ({n_folds} folds × {epochs} epochs)"
    )
    with Progress(console=err_console) as progress:
        task = progress.add_task("training", total=n_folds * epochs)
        result = run_experiment(
            data.X,
            data.meta,
            spec,
            model,
            _model_options(option),
            config,
            out,
            class_names=data.class_names,
            provenance=data.provenance,
            input_name=input,
            save_checkpoints=checkpoints,
            progress=lambda fold, epoch, loss_value: progress.advance(task),
        )
    m = result.metrics
    console.print(f"UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}  ACC {m['acc']:.3f}  WF1 {m['wf1']:.3f}  → {out}")


def report(
    runs: list[Path] = typer.Argument(..., help="run folders written by mer-cli train"),
    out: Path | None = typer.Option(None, help="Markdown file (default: report.md beside the runs)"),
) -> None:
    """Compare runs (rows input × model, columns metrics per dataset); save confusion and training-curve PNGs."""
    from mer.report.figures import save_run_figures
    from mer.report.tables import compare_runs, to_markdown, to_text

    runs = [r for r in runs if (r / "metrics.json").exists()]
    if not runs:
        raise typer.BadParameter("no run folder with a metrics.json among the arguments")
    table = compare_runs(runs)
    console.print(to_text(table))
    figures = [p for run in runs for p in save_run_figures(run)]
    target = out or runs[0].parent / "report.md"
    target.write_text("# Results\n\n" + to_markdown(table) + "\n")
    console.print(f"table: {target}; {len(figures)} figure(s) beside the runs (confusion.png, history.png)")
