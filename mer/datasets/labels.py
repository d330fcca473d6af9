"""Label sets as data: TOML tables mapping each dataset's emotions onto ordered classes.

Built-in sets live in `mer/datasets/labelsets/` (`original`, `3class`, `5class`); a user passes the path of
their own TOML file in the same format (documented at the top of `labelsets/original.toml`). A resolved
`LabelSet` records the file and its sha256 so the store can write the exact mapping into provenance.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

LABELSET_DIR = Path(__file__).parent / "labelsets"
SPELLINGS_FILE = Path(__file__).parent / "emotion_spellings.toml"
BUILTIN_LABEL_SETS = ("original", "3class", "5class")
_TABLE_KEYS = {"classes", "map", "drop", "open"}
_FILE_KEYS = _TABLE_KEYS | {"name", "version", "description", "datasets"}


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    with open(SPELLINGS_FILE, "rb") as fh:
        return dict(tomllib.load(fh).get("aliases", {}))


def normalise_emotion(value: object) -> str:
    """Lower-case, trimmed emotion with spaces/underscores collapsed and known spellings unified
    (`Others`/`other` -> `others`, `Happy` -> `happiness`); empty string for a missing cell."""
    if value is None:
        return ""
    text = re.sub(r"[\s_]+", " ", str(value)).strip().lower()
    if text in {"", "nan", "none"}:
        return ""
    return _aliases().get(text, text)


@dataclass(frozen=True)
class LabelTable:
    """One dataset's view of a label set: classes (None when open), emotion->class map, dropped emotions."""

    classes: tuple[str, ...] | None
    map: dict[str, str]
    drop: frozenset[str]
    open: bool

    def classify(self, emotion: str) -> tuple[Literal["class", "drop", "unknown"], str | None]:
        """("class", name) for a mapped emotion, ("drop", None) for a dropped one, else ("unknown", None)."""
        if emotion in self.map:
            return "class", self.map[emotion]
        if emotion in self.drop:
            return "drop", None
        if self.open and emotion:
            return "class", emotion
        return "unknown", None


@dataclass(frozen=True)
class LabelSetFile:
    """A parsed label-set TOML: top-level table plus optional per-dataset tables."""

    name: str
    version: object
    description: str
    path: str
    sha256: str
    default: LabelTable
    datasets: dict[str, LabelTable]

    def table_for(self, dataset: str) -> LabelTable:
        """The table that applies to `dataset` (its own section, else the top-level one)."""
        return self.datasets.get(dataset, self.default)


@dataclass
class LabelSet:
    """A label set resolved for the datasets of one load: `classes` give the label index."""

    name: str
    classes: list[str]
    mapping: dict[str, dict[str, str]]
    source: str
    sha256: str = ""
    version: object = None
    dropped: dict[str, list[str]] = field(default_factory=dict)
    tables: dict[str, LabelTable] = field(default_factory=dict, repr=False)

    def index(self, class_name: str) -> int:
        """Label index of a class name."""
        return self.classes.index(class_name)

    def classify(self, dataset: str, emotion: str) -> tuple[str, str | None]:
        """("class", name) / ("drop", None) / ("unknown", None) for a normalised emotion of `dataset`."""
        table = self.tables.get(dataset)
        if table is None:
            return "unknown", None
        return table.classify(emotion)

    def to_dict(self) -> dict:
        """Plain dict (for provenance)."""
        return {
            "name": self.name,
            "version": self.version,
            "classes": list(self.classes),
            "mapping": {d: dict(sorted(m.items())) for d, m in sorted(self.mapping.items())},
            "dropped": {d: sorted(v) for d, v in sorted(self.dropped.items())},
            "source": self.source,
            "sha256": self.sha256,
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, compact) of `to_dict()`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _table(raw: dict, where: str) -> LabelTable:
    unknown = set(raw) - _TABLE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_TABLE_KEYS)})")
    classes = raw.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"{where}: 'classes' must be a list of non-empty strings")
        if len(set(classes)) != len(classes):
            raise ValueError(f"{where}: 'classes' has duplicates: {classes}")
    mapping_raw = raw.get("map")
    if mapping_raw is None:
        mapping = {normalise_emotion(c): c for c in classes or []}
    else:
        if not isinstance(mapping_raw, dict):
            raise ValueError(f"{where}: 'map' must be a table emotion = \"class\"")
        mapping = {normalise_emotion(k): str(v) for k, v in mapping_raw.items()}
    is_open = bool(raw.get("open", False))
    if classes is None and not is_open:
        raise ValueError(f"{where}: give 'classes' or set open = true")
    if classes is not None:
        bad = sorted({v for v in mapping.values() if v not in classes})
        if bad:
            raise ValueError(f"{where}: map targets {bad} are not in classes {classes}")
    drop = frozenset(normalise_emotion(d) for d in raw.get("drop", []))
    both = sorted(drop & set(mapping))
    if both:
        raise ValueError(f"{where}: emotions {both} are both mapped and dropped")
    return LabelTable(tuple(classes) if classes is not None else None, mapping, drop, is_open)


def _resolve_path(spec: str | Path) -> Path:
    if isinstance(spec, Path) or str(spec).endswith(".toml") or "/" in str(spec) or "\\" in str(spec):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"label set file not found: {path}")
        return path
    if spec not in BUILTIN_LABEL_SETS:
        raise ValueError(
            f"unknown label set {spec!r}; built-in sets: {', '.join(BUILTIN_LABEL_SETS)}, "
            "or give the path of a .toml file"
        )
    return LABELSET_DIR / f"{spec}.toml"


def read_label_set(spec: str | Path) -> LabelSetFile:
    """Read a built-in label set by name or a user TOML file by path; raises ValueError naming the file."""
    path = _resolve_path(spec)
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML label set: {exc}") from exc
    unknown = set(raw) - _FILE_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (allowed: {sorted(_FILE_KEYS)})")
    top = {k: raw[k] for k in _TABLE_KEYS if k in raw}
    datasets = {
        str(name): _table(section, f"{path} [datasets.{name}]") for name, section in raw.get("datasets", {}).items()
    }
    default = LabelTable(None, {}, frozenset(), False) if not top and datasets else _table(top, str(path))
    return LabelSetFile(
        name=str(raw.get("name", path.stem)),
        version=raw.get("version"),
        description=str(raw.get("description", "")),
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        default=default,
        datasets=datasets,
    )


def resolve_label_set(file: LabelSetFile, observed: dict[str, set[str]]) -> LabelSet:
    """Resolve `file` for the datasets in `observed` (dataset -> emotions seen): open tables take the sorted
    emotions found; the classes of several datasets are joined in order of first appearance."""
    classes: list[str] = []
    mapping: dict[str, dict[str, str]] = {}
    dropped: dict[str, list[str]] = {}
    tables: dict[str, LabelTable] = {}
    for dataset, emotions in observed.items():
        table = file.table_for(dataset)
        if table.open:
            found = sorted(e for e in emotions if e and e not in table.drop and e not in table.map)
            extra = {e: e for e in found}
            own = list(table.classes or []) + [e for e in found if e not in (table.classes or ())]
            own += [c for c in dict.fromkeys(table.map.values()) if c not in own]
            table = LabelTable(tuple(own), {**table.map, **extra}, table.drop, False)
        tables[dataset] = table
        mapping[dataset] = dict(table.map)
        dropped[dataset] = sorted(table.drop)
        for c in table.classes or ():
            if c not in classes:
                classes.append(c)
    return LabelSet(
        name=file.name,
        classes=classes,
        mapping=mapping,
        source=f"{file.path} sha256:{file.sha256}",
        sha256=file.sha256,
        version=file.version,
        dropped=dropped,
        tables=tables,
    )


def load_label_set(spec: str | Path, datasets: dict[str, set[str]] | list[str]) -> LabelSet:
    """Read and resolve a label set for the given datasets (a list, or dataset -> emotions seen)."""
    observed = datasets if isinstance(datasets, dict) else {d: set() for d in datasets}
    return resolve_label_set(read_label_set(spec), observed)
