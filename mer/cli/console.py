"""Terminal output shared by the CLI commands: a console, progress bars, and failure tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# no emoji codes: escape() leaves ``:x:`` alone, and text from data or options (``kfold:x:3``, a clip ``a:ok:b``)
# would print as emoji
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


@contextmanager
def clip_progress(description: str, quiet: bool = False) -> Iterator[Progress | None]:
    """A progress bar for per-clip work: clips done, failed, frames per second, ETA (nothing when quiet)."""
    if quiet:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[fps]:.0f} frames/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    with progress:
        yield progress


def failure_table(title: str, rows: list[tuple[str, str, str]]) -> Table:
    """A table of (clip, stage or file, error) rows; cells are plain text (data is never read as rich markup)."""
    table = Table(title=escape(title), show_lines=False)
    table.add_column("clip")
    table.add_column("where")
    table.add_column("error", overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


def print_error(message: str) -> None:
    """``error: message`` on stderr as one line (the message escaped, never wrapped)."""
    err_console.print(f"[red]error[/red]: {escape(message)}", soft_wrap=True, highlight=False)
