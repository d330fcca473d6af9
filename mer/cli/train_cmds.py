"""``mer-cli train`` and ``mer-cli report``: train a model on a stored input under a protocol; compare runs."""

from __future__ import annotations

from pathlib import Path

import typer

from mer.cli.console import console, err_console
from mer.cli.errors import user_errors


def resolve_inputs(model: str, options: dict, spec: str | None, key: str | None) -> dict[str, str]:
    """The named inputs of a run: the model's defaults, overridden by ``--input``.

    ``spec`` is one source (``mesti``, ``mesti@3fa2``) for a single-input model, or ``name=source,...`` (merged
    over the model's defaults) for a multi-input one. ``key`` picks the entry of a single input.
    """
    from mer.models import default_inputs
    from mer.train.store_inputs import parse_input_map, parse_source

    defaults = default_inputs(model, options)
    if defaults is None:
        if spec is not None and "=" in spec:
            given = parse_input_map(spec)
            if len(given) != 1:
                raise ValueError(f"model {model!r} takes one input, --input names {', '.join(given)}")
            spec = next(iter(given.values()))
        return {"x": str(parse_source(spec or "mesti", key))}
    if key is not None:
        raise ValueError(f"--key applies to a single input; for {model!r} write --input name=stage@KEY")
    if spec is None:
        return defaults
    if "=" not in spec:
        raise ValueError(
            f"model {model!r} takes inputs {', '.join(defaults)}; write --input name=source,... "
            f"(defaults: {','.join(f'{n}={s}' for n, s in defaults.items())})"
        )
    given = parse_input_map(spec)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"model {model!r} has no input {', '.join(unknown)}; its inputs: {', '.join(defaults)}")
    return defaults | given


def train(
    store: str = typer.Option(..., help="store path or URL"),
    dataset: str = typer.Option(..., help="stored dataset, or several joined by + (casme2+samm+smic)"),
    input: str | None = typer.Option(
        None,
        "--input",
        help="input source: a stage (mesti, dynamic, apex-frame, ...; default mesti), stage:array, stage@KEY, or "
        "manifest:column; for a multi-input model name=source,... over its defaults "
        "(facesleuth: onset=onset-raw,apex=apex-frame-raw,au=manifest:au_vector)",
    ),
    key: str | None = typer.Option(None, help="entry key of a single input, when the store has several"),
    model: str = typer.Option("meganet", help="meganet, facesleuth, mmnet, vgg19, resnet50, efficientnet_b0, ..."),
    option: list[str] = typer.Option([], "--option", help="model option name=value (repeatable), e.g. au=false"),
    protocol: str = typer.Option(
        "loso", help="loso | megc2019 | cross:TRAIN+SETS:TEST | holdout[:0.1[:seed]] | kfold[:k[:seed[:grouped]]]"
    ),
    classes: int | None = typer.Option(None, help="3 or 5: relabel with the 3class / 5class label set"),
    labels: str | None = typer.Option(None, help="label set name or TOML file (default: the preprocessing one)"),
    recipe: str | None = typer.Option(
        None, help="preset of training values: meganet-paper | facesleuth-paper | facesleuth-early-stop | mmnet-paper"
    ),
    epochs: int | None = typer.Option(None, help="fixed number of epochs (default 50; no choice made on a test fold)"),
    batch_size: int | None = typer.Option(None, help="default 32"),
    lr: float | None = typer.Option(None, help="learning rate (default 1e-4)"),
    weight_decay: float | None = typer.Option(None, help="default 1e-4"),
    optimizer: str | None = typer.Option(None, help="adam (default) | adamw | sgd"),
    loss: str | None = typer.Option(None, help="focal (default) | ce"),
    gamma: float | None = typer.Option(None, help="focal loss γ (default 2)"),
    label_smoothing: float | None = typer.Option(None, help="default 0"),
    augment: bool | None = typer.Option(None, "--augment/--no-augment", help="flip and rotations on the device"),
    val_fraction: float | None = typer.Option(None, help="inner validation split from the training subjects"),
    early_stopping: bool | None = typer.Option(
        None, "--early-stopping/--no-early-stopping", help="stop on the inner validation split (needs --val-fraction)"
    ),
    patience: int | None = typer.Option(None, help="epochs without a lower inner validation loss (default 10)"),
    seed: int | None = typer.Option(None, help="default 0"),
    device: str | None = typer.Option(None, help="auto (default) | cpu | cuda"),
    checkpoints: bool = typer.Option(False, help="save each fold's weights (state dicts)"),
    parallel_folds: int | None = typer.Option(
        None,
        "--parallel-folds",
        help="folds trained together on one device, with the same results as one at a time "
        "(default: as many as fit in memory on CUDA, 1 on the CPU where it is no faster)",
    ),
    scheduler: str | None = typer.Option(
        None, help="Dask scheduler tcp://HOST:PORT: each fold is a task on its workers (one GPU each), which read "
        "--store themselves"
    ),
    out: Path = typer.Option(..., "--out", help="run folder, e.g. runs/mesti-meganet"),
) -> None:
    """Train and evaluate under a protocol; writes metrics.json, predictions.csv, config and provenance.

    Values come from TrainConfig's defaults, or from --recipe, then from the options given.
    """
    import dataclasses

    import torch
    from rich.markup import escape
    from rich.progress import Progress

    from mer.cli.store_open import open_cli_store
    from mer.models.stag import roi_set_option
    from mer.names import validate_component
    from mer.train.checks import check_folds, check_named_options, check_train_options, parse_model_options
    from mer.train.experiment import run_experiment
    from mer.train.protocols import parse_protocol, subject_keys
    from mer.train.recipes import get_recipe
    from mer.train.store_inputs import load_training_inputs
    from mer.train.trainer import TrainConfig

    if labels is None and classes is not None:
        if classes not in (3, 5):
            raise typer.BadParameter(f"--classes must be 3 or 5, got {classes}")
        labels = f"{classes}class"
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "optimizer": optimizer,
        "loss": loss,
        "gamma": gamma,
        "label_smoothing": label_smoothing,
        "augment": augment,
        "val_fraction": val_fraction,
        "early_stopping": early_stopping,
        "patience": patience,
        "seed": seed,
        "device": device,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    cuda_available = bool(scheduler) or torch.cuda.is_available()  # a cluster's GPUs are not here
    with user_errors():  # every option is checked before any data is read or any folder made
        for part in dataset.split("+"):
            validate_component("dataset", part)
        model_options = parse_model_options(option, model)
        default = TrainConfig()  # the options given are named as given (building the config would refuse them too)
        check_named_options(optimizer=optimizer or default.optimizer, loss=loss or default.loss,
                            device=device or default.device, cuda_available=cuda_available)
        config = get_recipe(recipe).config(**overrides) if recipe else dataclasses.replace(TrainConfig(), **overrides)
        if parallel_folds is not None and parallel_folds < 1:
            raise typer.BadParameter(f"--parallel-folds must be at least 1, got {parallel_folds}")
        if parallel_folds is not None and scheduler:
            raise typer.BadParameter(
                "--parallel-folds and --scheduler: on a cluster each fold is its own task (one per GPU); give one"
            )
        if config.early_stopping and config.val_fraction <= 0:
            raise typer.BadParameter("--early-stopping needs --val-fraction > 0 (an inner split of training subjects)")
        check_train_options(
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            val_fraction=config.val_fraction,
            weight_decay=config.weight_decay,
            label_smoothing=config.label_smoothing,
            gamma=config.gamma,
            early_stopping=config.early_stopping,
            protocol=protocol,
            out=out,
        )
        check_named_options(optimizer=config.optimizer, loss=config.loss, device=config.device,
                            cuda_available=cuda_available)  # the recipe's values too
        inputs = resolve_inputs(model, model_options, input, key)
        st = open_cli_store(store, "r")
        data = load_training_inputs(st, dataset, inputs, labels)
        if "roi_flow" in inputs:  # STAG's roi_set comes from the stored entry (a given one must match it)
            model_options = roi_set_option(model_options, data.provenance["entries"])
        spec = parse_protocol(protocol)
        folds = list(spec.folds(data.meta))
        check_folds(folds, data.meta["label"].to_numpy(), subject_keys(data.meta), protocol, data.class_names)
    if data.excluded:
        err_console.print(
            f"{len(data.excluded)} clip(s) left out (not computed or no label), e.g. "
            f"{escape(data.excluded[0][0])}: {escape(data.excluded[0][1])}"
        )
    input_label = data.provenance["input"]
    n_folds = len(folds)
    console.print(
        f"{escape(input_label)} → {escape(model)}: {len(data.meta)} clips, {data.meta['subject'].nunique()} subjects, "
        f"classes {escape(str(data.class_names))}, {escape(protocol)} ({n_folds} folds × {config.epochs} epochs)"
        + (f", recipe {escape(recipe)}" if recipe else "")
    )
    if scheduler:
        from mer.cli.cluster_train import train_on_cluster

        result = train_on_cluster(
            scheduler, st, data, inputs, labels, protocol, model, model_options, config, out, recipe, checkpoints
        )
        m = result.metrics
        console.print(f"UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}  ACC {m['acc']:.3f}  WF1 {m['wf1']:.3f}  → {out}")
        return
    arrays = data.inputs if set(data.inputs) != {"x"} else data.X
    with Progress(console=err_console) as progress:
        task = progress.add_task("training", total=n_folds * config.epochs)
        result = run_experiment(
            arrays,
            data.meta,
            spec,
            model,
            model_options,
            config,
            out,
            class_names=data.class_names,
            provenance=data.provenance,
            input_name=input_label,
            save_checkpoints=checkpoints,
            progress=lambda fold, epoch, loss_value: progress.advance(task),
            recipe=recipe,
            parallel_folds=parallel_folds,
        )
    console.print(f"trained {escape(result.config['parallel_folds_basis'])}")
    m = result.metrics
    console.print(f"UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}  ACC {m['acc']:.3f}  WF1 {m['wf1']:.3f}  → {out}")


def report(
    runs: list[Path] = typer.Argument(..., help="run folders written by mer-cli train"),
    out: Path | None = typer.Option(None, help="Markdown file (default: report.md beside the runs)"),
) -> None:
    """Compare runs (rows input × model, columns metrics per dataset); save confusion and training-curve PNGs."""
    import pandas as pd
    from rich.markup import escape

    from mer.report.angle_figures import angle_columns, plot_angles
    from mer.report.figures import save_run_figures
    from mer.report.stag_explain import stag_importance_report
    from mer.report.tables import compare_runs, to_markdown, to_text
    from mer.store import StoreError

    runs = [r for r in runs if (r / "metrics.json").exists()]
    if not runs:
        raise typer.BadParameter("no run folder with a metrics.json among the arguments")
    table = compare_runs(runs)
    console.print(to_text(table))
    figures = [p for run in runs for p in save_run_figures(run)]
    figures += [p for run in runs if (p := plot_angles(run)) is not None]
    for run in runs:
        history = pd.read_csv(run / "history.csv") if (run / "history.csv").exists() else pd.DataFrame()
        cols = angle_columns(history)
        if cols and not history.empty:
            last = history[history["epoch"] == history["epoch"].max()][cols].mean()
            angles = ", ".join(f"{v:.1f}°" for v in last)
            console.print(f"{escape(run.name)}: learned SOA angles at the last epoch (mean over folds) {angles}")
    importance = []
    for run in runs:
        try:
            roi_table = stag_importance_report(run)
        except (ValueError, OSError, StoreError) as exc:  # e.g. the store moved: the rest of the report stands
            err_console.print(f"{escape(run.name)}: no ROI importance: {escape(str(exc))}")
            continue
        if roi_table is not None:
            console.print(f"{escape(run.name)}: mean ROI importance per class (roi_importance.csv)")
            by_roi = roi_table.set_index("class").drop(columns="n").T  # one row per ROI, one column per class
            console.print(escape(by_roi.to_string(float_format=lambda v: f"{v:.3f}")))
            heading = f"\n## {run.name}: mean ROI importance per class\n\n"
            importance.append(heading + to_markdown(roi_table.set_index("class")))
    target = out or runs[0].parent / "report.md"
    target.write_text("# Results\n\n" + to_markdown(table) + "\n" + "".join(importance))
    console.print(f"table: {target}; {len(figures)} figure(s) beside the runs (confusion.png, history.png, angles.png)")
