"""Validation findings: one `Problem` per bad cell, row, file or folder.

Adapters never patch bad input silently; they report it here, with enough detail (file, sheet row as a person
sees it in Excel, column header, offending value) for the user to find and fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from mer.names import printable, shown

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding about a dataset: an `error` leaves its clip out of the manifest, a `warning` does not."""

    severity: Severity
    file: str
    row: int | None
    column: str | None
    value: str
    message: str
    subject: str | None = None
    clip: str | None = None

    def __str__(self) -> str:
        """One readable line: `error: file, row 12, column 'ApexFrame' = '/': message [sub01/EP02_01f]`."""
        where = [self.file or "<no file>"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = f"{self.severity}: {', '.join(where)}"
        if self.value != "":
            text += f" = {shown(self.value, 240)}"
        text += f": {self.message}"
        if self.subject is not None or self.clip is not None:
            text += f" [{printable(self.subject or '?', 130)}/{printable(self.clip or '?', 130)}]"
        return text

    @classmethod
    def about_file(cls, file: str | Path, message: str, value: str = "", severity: Severity = "error") -> Problem:
        """A problem with a whole file or folder (no row, no column): a missing root, sheet or annotation file."""
        return cls(severity, str(file), None, None, value, message)

    def to_dict(self) -> dict:
        """Plain dict for JSON reports."""
        return asdict(self)


def errors(problems: list[Problem]) -> list[Problem]:
    """The error-level problems only."""
    return [p for p in problems if p.severity == "error"]


def format_problems(problems: list[Problem]) -> str:
    """All problems, one line each, errors first (stable order within a severity)."""
    ordered = [p for p in problems if p.severity == "error"] + [p for p in problems if p.severity != "error"]
    return "\n".join(str(p) for p in ordered)
