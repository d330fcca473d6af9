"""``--scheduler`` of ``mer-cli train`` and ``reproduce``: folds as Dask tasks, shown as they finish."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress

from mer.cli.console import err_console, print_error
from mer.cli.errors import user_errors
from mer.store.store import FeatureStore
from mer.train.distributed import ClusterRun, FoldDone, FoldTaskError, fold_line, run_on_cluster, train_inputs
from mer.train.results import ExperimentResult
from mer.train.store_inputs import TrainingData
from mer.train.trainer import TrainConfig


@contextmanager
def fold_progress(total: int) -> Iterator[Callable[[FoldDone], None]]:
    """A bar of folds done, and one line per fold (which worker, how long, its UF1) as it finishes."""
    with Progress(console=err_console) as progress:
        task = progress.add_task("folds", total=total)

        def shown(done: FoldDone) -> None:
            progress.advance(task)
            progress.console.print(escape(fold_line(done)), soft_wrap=True, highlight=False)

        yield shown


@contextmanager
def fold_failures() -> Iterator[None]:
    """A failed fold as one line (``error: fold '…' (…, test subject …) failed on …: …``), exit 1."""
    try:
        yield
    except FoldTaskError as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None


def train_on_cluster(
    scheduler: str,
    store: FeatureStore,
    data: TrainingData,
    inputs: Mapping[str, str],
    labels: str | None,
    protocol: str,
    model: str,
    model_options: dict[str, Any],
    config: TrainConfig,
    out: Path,
    recipe: str | None,
    checkpoints: bool,
) -> ExperimentResult:
    """Train the run's folds on the cluster at ``scheduler``; write ``out`` once they are all in."""
    run = ClusterRun(
        train_inputs(store, data, inputs, labels),
        data.meta,
        data.class_names,
        protocol,
        model,
        model_options,
        config,
        out,
        provenance=data.provenance,
        input_name=data.provenance["input"],
        recipe=recipe,
        save_checkpoints=checkpoints,
    )
    with user_errors(), fold_failures(), fold_progress(len(run.folds)) as shown:
        log = lambda message: err_console.print(escape(message), soft_wrap=True, highlight=False)  # noqa: E731
        ((_, result),) = list(run_on_cluster([run], scheduler, on_fold=shown, log=log))
    return result
