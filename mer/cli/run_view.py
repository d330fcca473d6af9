"""Running a stage plan from the CLI: progress bar, summary, failure table, exit code."""

from __future__ import annotations

import time

import typer
from rich.markup import escape

from mer.cli.console import clip_progress, console, err_console, failure_table
from mer.pipeline.claim_wait import ClaimWaitNotice
from mer.pipeline.graph import PlannedStage
from mer.pipeline.outcomes import ClipOutcome, RunReport
from mer.pipeline.runner import run_plan
from mer.store.store import FeatureStore


def check_workers(workers: int | None) -> int | None:
    """``--workers`` as given (None: all cores); a usage error naming it when below 1 (it was taken as 1)."""
    if workers is not None and workers < 1:
        raise typer.BadParameter(f"--workers {workers}: must be at least 1 (leave it out for all cores)")
    return workers


def run_with_progress(
    store: FeatureStore,
    dataset: str,
    plan: list[PlannedStage],
    workers: int | None,
    quiet: bool,
    title: str,
    scheduler: str | None = None,
    batch_units: int | None = None,
) -> RunReport:
    """Run the plan with one progress bar per stage: clips done and failed, frames per second, ETA.

    ``batch_units``: work per call of a stage that computes groups of clips (see :func:`run_plan`)."""
    state = {"frames": 0, "t0": time.perf_counter(), "tasks": {}, "failed": {}}
    names = [p.stage.name for p in plan]
    with clip_progress(title, quiet) as progress:

        def on_start(n_pending: int, n_skipped: int) -> None:
            if progress is not None:
                for name in names:
                    state["failed"][name] = 0
                    state["tasks"][name] = progress.add_task(f"{dataset} {name}", total=n_pending, failed=0, fps=0.0)
            if n_skipped and not quiet:
                err_console.print(f"{n_skipped} clip(s) already complete: skipped")

        def on_outcome(outcome: ClipOutcome) -> None:
            state["frames"] += outcome.frames
            if progress is None:
                if outcome.error:
                    err_console.print(
                        escape(f"failed {outcome.clip_id} at {outcome.failed_stage}: {outcome.error}"), soft_wrap=True
                    )
                return
            fps = state["frames"] / max(time.perf_counter() - state["t0"], 1e-9)
            reached = True
            for name in names:
                if name == outcome.failed_stage:
                    state["failed"][name] += 1
                    reached = False
                elif not reached:
                    state["failed"][name] += 1  # not computed: its input failed
                progress.update(state["tasks"][name], advance=1, failed=state["failed"][name], fps=fps)

        notice = ClaimWaitNotice()

        def on_wait(holders: list[dict]) -> None:
            line = notice.due(holders)
            if line:
                err_console.print(escape(line))

        report = run_plan(
            store,
            dataset,
            plan,
            workers=workers,
            on_outcome=on_outcome,
            on_start=on_start,
            scheduler=scheduler,
            on_wait=on_wait,
            batch_units=batch_units,
        )
    return report


def print_report(report: RunReport, plan: list[PlannedStage]) -> None:
    """Summary line per stage (key, clips computed) and the failure table."""
    computed, reused = report.computed, report.reused
    for planned in plan:
        name = planned.stage.name
        extra = f", reused {reused[name]} unchanged" if reused.get(name) else ""
        line = f"  {name:<10} key {planned.key}  computed {computed[name]} clip(s){extra}"
        console.print(line, markup=False, soft_wrap=True)
    console.print(
        f"{report.dataset}: {report.n_clips} clips, {report.skipped} already complete, "
        f"{len(report.failures)} failed, {report.seconds:.1f} s",
        markup=False,
        soft_wrap=True,
    )
    if report.failures:
        rows = [(o.clip_id, o.failed_stage or "", o.error or "") for o in report.failures]
        err_console.print(failure_table(f"{len(rows)} clip(s) failed", rows))


def exit_on_failures(report: RunReport, extra_errors: int = 0) -> None:
    """Exit 1 when any clip failed or the input had errors."""
    if report.failures or extra_errors:
        raise typer.Exit(1)
