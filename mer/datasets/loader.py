"""`load` and `check`: run an adapter (or several for a composite), validate, apply a label set."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from . import dfme, folder, smic, video
from .composite import (
    ADAPTER_NAMES,
    ALIASES,
    canonical_adapter,
    composite_labels,
    composite_roots,
    is_composite,
    parse_composite,
)
from .corrections import load_corrections
from .labels import read_label_set
from .manifest import AdapterOutput, LoadResult, build_manifest
from .problems import Problem
from .sheet_specs import builtin_specs, is_spec_path, user_spec

ADAPTERS: dict[str, Callable[..., AdapterOutput]] = {
    "folder": folder.read,
    "video": video.read,
    **{name: spec.read for name, spec in builtin_specs().items()},
    "smic": partial(smic.read, name="smic"),
    "smic-vis": partial(smic.read, name="smic-vis"),
    "smic-nir": partial(smic.read, name="smic-nir"),
    "dfme": dfme.read,
}


def _reader(name: str) -> tuple[str, Callable[..., AdapterOutput]]:
    """The adapter's name and read function: a built-in adapter, or a user's specification file (``*.toml``)."""
    if is_spec_path(name):
        spec = user_spec(name, reserved=(*ADAPTER_NAMES, *ALIASES))
        return spec.name, spec.read
    adapter = canonical_adapter(name)
    return adapter, ADAPTERS[adapter]


def _run_adapter(
    name: str,
    root: Path,
    annotations: Path | None,
    column_map: dict[str, str] | None,
    problems: list[Problem],
    corrections: str | Path | bool | None,
    dataset_name: str | None,
) -> AdapterOutput:
    name, read = _reader(name)
    kwargs = {}
    target = read.func if isinstance(read, partial) else read
    if dataset_name is not None and "dataset_name" in inspect.signature(target).parameters:
        kwargs["dataset_name"] = dataset_name
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "not found"
        problems.append(Problem.about_file(root, f"{name} root folder {found}"))
        return AdapterOutput(dataset=name, records=[])
    out = read(root, Path(annotations) if annotations is not None else None, column_map, problems, **kwargs)
    out.root = str(root)
    if corrections is False:
        out.corrections = None
    elif corrections is not None and corrections is not True:
        out.corrections = load_corrections(corrections)
    return out


def default_dataset_name(name: str, root: str | Path | Mapping[str, str | Path]) -> str:
    """The name a dataset gets in a store when none is given: for `folder` and `video`, the root's name plus a short
    hash of its resolved path (two folders never collide); else the adapter or composite name (`casme2`,
    `casme2+samm`)."""
    if is_spec_path(name):
        return _reader(name)[0]
    if is_composite(name):
        return name.strip().lower()
    adapter = canonical_adapter(name)
    if adapter in ("folder", "video") and not isinstance(root, Mapping):  # generic layouts: name by the root
        return folder.dataset_name_for(Path(root))
    return adapter


def load(
    name: str,
    root: str | Path | Mapping[str, str | Path],
    labels: str | Path = "original",
    annotations: Path | Mapping[str, Path] | None = None,
    column_map: dict[str, str] | Mapping[str, dict[str, str]] | None = None,
    *,
    corrections: str | Path | bool | None = None,
    dataset_name: str | None = None,
) -> LoadResult:
    """Read a dataset (or composite) into a validated manifest with labels; never writes anything.

    `name`: an adapter (`folder`, `casme2`, `samm`, `smic`, `mmew`, `casme3`, `4dme`, `dfme`), a composite
    (`megc2019`, `casme2+samm`) or a sheet dataset's specification file (`mylab.toml`, named by its `name`).
    `labels`: `original`, `3class`, `5class` or a TOML path. `corrections`: None uses the adapter's built-in table,
    False none, a path a user table. `dataset_name` names a `folder` dataset.
    Label-set files that do not parse raise ValueError; every problem with the data is in `problems`.
    """
    problems: list[Problem] = []
    if is_composite(name) and not is_spec_path(name):
        datasets = parse_composite(name)
        if corrections not in (None, True, False):
            raise ValueError("a composite takes corrections=None (built-in tables) or False (none)")
        labels = composite_labels(name, labels)
        roots = composite_roots(datasets, dict(root) if isinstance(root, Mapping) else root)
        ann = dict(annotations) if isinstance(annotations, Mapping) else {}
        if annotations is not None and not isinstance(annotations, Mapping):
            raise ValueError("annotations of a composite must be a mapping {dataset: path}")
        cmap = dict(column_map) if column_map else {}
        outputs = []
        for d in datasets:
            droot = roots.get(d)
            if droot is None:
                problems.append(
                    Problem.about_file(
                        root,
                        f"no root for {d} in the composite (give a mapping, or a sub-folder named like {d})",
                        value=d,
                    )
                )
                continue
            outputs.append(_run_adapter(d, droot, ann.get(d), cmap.get(d), problems, corrections, None))
        adapter = name.strip().lower()
    else:
        adapter = _reader(name)[0]
        if isinstance(root, Mapping):
            raise ValueError(f"{adapter}: root must be one folder")
        if isinstance(annotations, Mapping):
            raise ValueError(f"{adapter}: annotations must be one path")
        outputs = [_run_adapter(name, Path(root), annotations, column_map, problems, corrections, dataset_name)]
    label_file = read_label_set(labels)
    manifest, label_set = build_manifest(outputs, label_file, problems)
    tables = [o.corrections.label() for o in outputs if o.corrections is not None]
    return LoadResult(
        manifest=manifest,
        problems=problems,
        label_set=label_set,
        adapter=adapter,
        corrections="; ".join(tables) if tables else None,
        annotation_files=[f for o in outputs for f in o.annotation_files],
    )


def check(
    name: str,
    root: str | Path | Mapping[str, str | Path],
    labels: str | Path = "original",
    annotations: Path | Mapping[str, Path] | None = None,
    column_map: dict[str, str] | Mapping[str, dict[str, str]] | None = None,
    **options: object,
) -> list[Problem]:
    """All problems `load` would find (errors first); reads only, writes nothing."""
    problems = load(name, root, labels, annotations, column_map, **options).problems  # type: ignore[arg-type]
    return [p for p in problems if p.severity == "error"] + [p for p in problems if p.severity != "error"]
