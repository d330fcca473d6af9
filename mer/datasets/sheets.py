"""Annotation sheets (xlsx via openpyxl, xls via xlrd, csv/tsv): header found by column names, rows numbered
as a person sees them in Excel or a text editor (1-based, header and title rows included)."""

from __future__ import annotations

import csv
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from .problems import Problem

SHEET_EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".csv", ".tsv", ".txt")
MAX_HEADER_SCAN = 60


@dataclass(frozen=True)
class Column:
    """A canonical column an adapter reads: accepted header spellings and whether it must be present."""

    name: str
    aliases: tuple[str, ...]
    required: bool = True


@dataclass
class SheetTable:
    """Rows of one sheet under canonical column names; `headers` maps canonical name -> header as written."""

    path: str
    sheet: str | None
    header_row: int
    headers: dict[str, str]
    rows: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    other_headers: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        """The header text as written in the file for a canonical column (the canonical name if absent)."""
        return self.headers.get(name, name)


def header_key(text: object) -> str:
    """Header comparison key: lower case, letters and digits only (`Onset Frame` == `OnsetFrame`)."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower()) if text is not None else ""


def clean_cell(value: object) -> object:
    """Trimmed strings, integral floats as int, empty cells as None."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        text = value.strip()
        return text if text else None
    return value


def cell_text(value: object) -> str:
    """A cell as text for messages and name columns (`1.0` -> `1`, None -> ``)."""
    value = clean_cell(value)
    return "" if value is None else str(value)


def _read_xlsx(path: Path) -> list[tuple[str, list[list[object]]]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=False, data_only=True)
    try:
        sheets = []
        for ws in wb.worksheets:
            rows = [list(r) for r in ws.iter_rows(min_row=1, max_row=ws.max_row, values_only=True)]
            sheets.append((ws.title, rows))
        return sheets
    finally:
        wb.close()


def _read_xls(path: Path) -> list[tuple[str, list[list[object]]]]:
    import xlrd

    book = xlrd.open_workbook(str(path))
    return [(sh.name, [sh.row_values(i) for i in range(sh.nrows)]) for sh in book.sheets()]


def _read_csv(path: Path) -> list[tuple[str | None, list[list[object]]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    if path.suffix.lower() != ".tsv":
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    rows: list[list[object]] = []
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    for record in reader:
        while len(rows) < reader.line_num - 1:  # keep physical line numbers (multi-line cells)
            rows.append([])
        rows.append(list(record))
    return [(None, rows)]


def read_cells(path: str | Path) -> list[tuple[str | None, list[list[object]]]]:
    """All sheets of a workbook (or the one table of a CSV) as (sheet name, rows of raw cell values)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if suffix == ".xls":
        return _read_xls(path)
    return _read_csv(path)


def _match_header(
    cells: list[object], columns: list[Column], column_map: dict[str, str]
) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Columns of one candidate header row: canonical -> index, canonical -> header text, the others."""
    accepted: dict[str, str] = {}
    for col in columns:
        for alias in (col.name, *col.aliases):
            accepted.setdefault(header_key(alias), col.name)
    for user_header, canonical in column_map.items():
        accepted[header_key(user_header)] = canonical
    index: dict[str, int] = {}
    text: dict[str, str] = {}
    other: list[str] = []
    for i, cell in enumerate(cells):
        if cell is None or str(cell).strip() == "":
            continue
        canonical = accepted.get(header_key(cell))
        if canonical is not None and canonical not in index:
            index[canonical] = i
            text[canonical] = str(cell).strip()
        else:
            other.append(str(cell).strip())
    return index, text, other


def read_sheet(
    path: str | Path,
    columns: list[Column],
    problems: list[Problem],
    column_map: dict[str, str] | None = None,
    max_scan: int = MAX_HEADER_SCAN,
) -> SheetTable | None:
    """Find the header row (first row holding every required column, in any sheet) and return the rows below
    it; on failure add one error naming the columns found and return None."""
    path = Path(path)
    column_map = dict(column_map or {})
    known = {c.name for c in columns}
    for user_header, canonical in column_map.items():
        if canonical not in known:
            problems.append(
                Problem(
                    "error",
                    str(path),
                    None,
                    user_header,
                    canonical,
                    f"column_map target {canonical!r} is not one of {sorted(known)}",
                )
            )
            return None
    if not path.is_file():
        found = "is a folder, not a file" if path.is_dir() else "not found"
        problems.append(Problem.about_file(path, f"annotation file {found}"))
        return None
    try:
        sheets = read_cells(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes a Problem naming the file
        problems.append(Problem.about_file(path, f"cannot read annotation file: {exc}"))
        return None
    required = [c.name for c in columns if c.required]
    best: tuple[int, str | None, int, list[str], list[str]] | None = None  # (n, sheet, row, found, missing)
    for sheet_name, rows in sheets:
        for r, cells in enumerate(rows[:max_scan]):
            index, text, other = _match_header(cells, columns, column_map)
            if all(name in index for name in required):
                _warn_unmatched_mapping(path, r + 1, cells, column_map, problems)
                table = SheetTable(str(path), sheet_name, r + 1, text, other_headers=other)
                for rr in range(r + 1, len(rows)):
                    row_cells = rows[rr]
                    values = {
                        name: clean_cell(row_cells[i]) if i < len(row_cells) else None for name, i in index.items()
                    }
                    if any(v is not None for v in values.values()):
                        table.rows.append((rr + 1, values))
                return table
            n = sum(1 for name in required if name in index)
            if n and (best is None or n > best[0]):
                found = [str(c).strip() for c in cells if c is not None and str(c).strip()]
                best = (n, sheet_name, r + 1, found, [c for c in required if c not in index])
    accepted = "; ".join(f"{c.name}: {', '.join(dict.fromkeys((c.name, *c.aliases)))}" for c in columns if c.required)
    if best is None:
        problems.append(
            Problem.about_file(
                path,
                f"no header row with the required columns in the first {max_scan} rows "
                f"(accepted headers - {accepted}); pass column_map to map other names",
            )
        )
        return None
    _, sheet_name, row, found, missing = best
    where = f" (sheet {sheet_name!r})" if sheet_name else ""
    problems.append(
        Problem(
            "error",
            str(path),
            row,
            ", ".join(missing),
            ", ".join(found),
            f"header row{where} lacks required column(s) {missing}; columns found: {found}; "
            f"accepted headers - {accepted}; pass column_map to map other names",
        )
    )
    return None


def _warn_unmatched_mapping(
    path: Path, row: int, cells: list[object], column_map: dict[str, str], problems: list[Problem]
) -> None:
    """A warning for each ``column_map`` header that is not in the header row (a typo: the mapping did nothing)."""
    present = {header_key(cell) for cell in cells if cell is not None and str(cell).strip()}
    found = [str(c).strip() for c in cells if c is not None and str(c).strip()]
    for user_header, canonical in column_map.items():
        if header_key(user_header) not in present:
            problems.append(
                Problem(
                    "warning",
                    str(path),
                    row,
                    user_header,
                    canonical,
                    f"column_map header {user_header!r} is not in the header row (it maps nothing); headers: {found}",
                )
            )


def find_sheet(root: Path, patterns: tuple[str, ...], depth: int = 2) -> Path | None:
    """First file under `root` (up to `depth` levels) whose name matches one of the glob `patterns`
    (case-insensitive), trying the patterns in order and shallower files first."""
    candidates: list[Path] = []
    level = [root]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for d in level:
            try:
                entries = sorted(d.iterdir())
            except OSError:
                continue
            candidates += [e for e in entries if e.is_file()]
            nxt += [e for e in entries if e.is_dir()]
        level = nxt
    for pattern in patterns:
        for c in candidates:
            if fnmatch.fnmatch(c.name.lower(), pattern.lower()) and not c.name.startswith("~$"):
                return c
    return None
