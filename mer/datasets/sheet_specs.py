"""Sheet dataset specifications as TOML files: parsing one (`read_spec`, every mistake a ValueError naming the file
and key), the registry of the built-in ones in `mer/datasets/specs/` (`builtin_specs`), and a user's own file given
where a dataset name goes (`--dataset mylab.toml`, `user_spec`). The format is described in
`mer.datasets.sheet_adapter`."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from mer.names import component_problem

from .sheet_adapter import SPECS_DIR, STANDARD_COLUMNS, KeepRows, SheetSpec
from .sheets import Column

_LISTS = ("sheets", "frame_folders", "aliases", "composite_folders")
_TEXTS = ("name", "path", "subject_folders", "subject_name", "clip_subfolder", "repeated_clips", "corrections")
_INTS = ("frame_folder_depth", "search_depth")
_KEYS = {*_LISTS, *_TEXTS, *_INTS, "columns", "keep_rows"}
_PLACEHOLDERS = {"{subject}", "{clip}", "{emotion}"}


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: must be a list of non-empty strings")
    return tuple(value)


def _columns(raw: object, where: str) -> tuple[Column, ...]:
    """The standard columns with the spellings given here; other names become optional extra columns."""
    if not isinstance(raw, dict):
        raise ValueError(f'{where}: must be a table column = ["Header", …]')
    given = {str(k): _strings(v, f"{where}.{k}") for k, v in raw.items()}
    standard = [replace(c, aliases=given.get(c.name, c.aliases)) for c in STANDARD_COLUMNS]
    known = {c.name for c in STANDARD_COLUMNS}
    return (*standard, *(Column(k, v, required=False) for k, v in given.items() if k not in known))


def _check(spec: SheetSpec, where: str) -> None:
    parts = spec.path.split("/")
    bad = [p for p in parts if ("{" in p or "}" in p) and p not in _PLACEHOLDERS]
    if bad or "{clip}" not in parts or not all(parts):
        raise ValueError(f"{where}: path {spec.path!r} must hold {{clip}}; placeholders are {sorted(_PLACEHOLDERS)}")
    if spec.subject_folders is not None:
        try:
            re.compile(spec.subject_folders)
        except re.error as exc:
            raise ValueError(f"{where}: subject_folders {spec.subject_folders!r} is not a regex: {exc}") from exc
    if spec.subject_name is not None:
        try:
            spec.subject_name.format(n=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{where}: subject_name {spec.subject_name!r} must format a number n: {exc}") from exc
    if spec.repeated_clips not in ("error", "suffix"):
        raise ValueError(f"{where}: repeated_clips must be 'error' or 'suffix', not {spec.repeated_clips!r}")
    if spec.keep_rows is not None and spec.keep_rows.column not in {c.name for c in spec.columns}:
        raise ValueError(f"{where}: keep_rows.column {spec.keep_rows.column!r} is not one of the columns")


def read_spec(path: str | Path) -> SheetSpec:
    """Parse one specification file; raises ValueError naming the file and the key at fault."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML dataset specification: {exc}") from exc
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} (allowed: {sorted(_KEYS)})")
    for key in ("name", "sheets"):
        if key not in raw:
            raise ValueError(f"{path}: {key!r} is required")
    kwargs: dict[str, object] = {"source": str(path)}
    for key in _LISTS:
        if key in raw:
            kwargs[key] = _strings(raw[key], f"{path}: {key}")
    for key in _TEXTS:
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise ValueError(f"{path}: {key} must be a non-empty string")
            kwargs[key] = raw[key]
    for key in _INTS:
        if key in raw:
            if not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 0:
                raise ValueError(f"{path}: {key} must be a whole number >= 0")
            kwargs[key] = raw[key]
    if "columns" in raw:
        kwargs["columns"] = _columns(raw["columns"], f"{path}: columns")
    if "keep_rows" in raw:
        keep = raw["keep_rows"]
        if not isinstance(keep, dict) or set(keep) != {"column", "equals", "what"}:
            raise ValueError(f"{path}: keep_rows must be a table with column, equals and what")
        kwargs["keep_rows"] = KeepRows(str(keep["column"]), str(keep["equals"]), str(keep["what"]))
    kwargs.setdefault("corrections", raw["name"])
    spec = SheetSpec(**kwargs)  # type: ignore[arg-type]
    _check(spec, str(path))
    return spec


@lru_cache(maxsize=1)
def builtin_specs() -> dict[str, SheetSpec]:
    """The specifications in `mer/datasets/specs/`, by name (file name order)."""
    specs: dict[str, SheetSpec] = {}
    for path in sorted(SPECS_DIR.glob("*.toml")):
        spec = read_spec(path)
        if spec.name in specs:
            raise ValueError(f"{path}: dataset name {spec.name!r} is also used by {specs[spec.name].source}")
        specs[spec.name] = spec
    return specs


def is_spec_path(name: str) -> bool:
    """True when a dataset argument names a specification file (it ends in ``.toml``) rather than an adapter."""
    return str(name).strip().lower().endswith(".toml")


def user_spec(path: str | Path, reserved: tuple[str, ...] = ()) -> SheetSpec:
    """A user's specification file, given where a dataset name goes; ValueError naming the file and the fault.

    Its ``name`` becomes the dataset's name in a store, so it must be a safe path component and must not be one of
    the ``reserved`` names (the built-in adapters and their aliases): a lab's own sheet never passes for a
    built-in dataset. A ``corrections`` value ending in ``.toml`` is a table path relative to the file's folder.
    """
    path = Path(str(path).strip()).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: dataset specification file not found")
    spec = read_spec(path)
    problem = component_problem(spec.name)
    if problem is not None:
        raise ValueError(f"{path}: name {spec.name!r} cannot name a dataset ({problem})")
    if spec.name.lower() in reserved:
        raise ValueError(f"{path}: name {spec.name!r} is a built-in dataset's name; give the dataset its own name")
    if spec.corrections is not None and spec.corrections.endswith(".toml"):
        spec = replace(spec, corrections=str(path.parent / spec.corrections))
    return spec
