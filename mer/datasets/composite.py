"""Composite and cross-dataset definitions.

A composite loads several datasets into one manifest whose rows keep their own `dataset`, so subjects are
keyed by (dataset, subject) (CASME and CASME II both have a subject "01"). Names: a defined composite
(`megc2019` = SMIC-HS + CASME II + SAMM with the `3class` label set) or any `a+b+…` list of adapter names.

The root of a composite is either a mapping {dataset: root} or one folder holding each dataset's root as a
sub-folder, found by name ignoring case and punctuation (`CASME2`, `CASME II`, `casme_ii` for casme2;
`SAMM`; `SMIC`, `SMIC_all_raw` for smic; `CAS(ME)^3` for casme3; …). `annotations` and `column_map` of a
composite are mappings keyed by dataset name.

A cross-dataset protocol (`CrossDataset`) trains on some datasets and tests on another:
`parse_cross("casme2+samm->smic")`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .sheet_specs import builtin_specs

_SPECS = builtin_specs()
ADAPTER_NAMES = ("folder", "video", *_SPECS, "smic", "smic-vis", "smic-nir", "dfme")
ALIASES = {"smic-hs": "smic", **{alias: spec.name for spec in _SPECS.values() for alias in spec.aliases}}


@dataclass(frozen=True)
class Composite:
    """A named combination of datasets and the label set it implies when the caller asks for `original`."""

    name: str
    datasets: tuple[str, ...]
    labels: str
    description: str = ""


COMPOSITES = {
    "megc2019": Composite(
        "megc2019",
        ("smic", "casme2", "samm"),
        "3class",
        "MEGC 2019 composite: SMIC-HS + CASME II + SAMM, negative/positive/surprise",
    ),
}

# Sub-folder names (lower case, letters and digits only) that hold each dataset inside a composite root.
FOLDER_KEYS = {
    **{spec.name: spec.composite_folders for spec in _SPECS.values()},
    "smic": ("smic", "smicallraw", "smichs"),
    "smic-vis": ("smic", "smicallraw", "smicvis"),
    "smic-nir": ("smic", "smicallraw", "smicnir"),
    "dfme": ("dfme",),
}


def canonical_adapter(name: str) -> str:
    """Lower-case adapter name with aliases resolved (`SMIC-HS` -> `smic`); raises ValueError if unknown."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ADAPTER_NAMES:
        raise ValueError(
            f"unknown dataset adapter {name!r}; known: {', '.join(ADAPTER_NAMES)} "
            f"or composites {', '.join(COMPOSITES)} / a+b lists"
        )
    return key


def is_composite(name: str) -> bool:
    """True for a defined composite name or an `a+b` list."""
    return name.strip().lower() in COMPOSITES or "+" in name


def parse_composite(name: str) -> list[str]:
    """Adapter names of a composite (`megc2019`, `casme2+samm`); ValueError on unknown or repeated names."""
    key = name.strip().lower()
    if key in COMPOSITES:
        return list(COMPOSITES[key].datasets)
    parts = [canonical_adapter(p) for p in key.split("+") if p.strip()]
    if len(parts) < 2 and "+" in key:
        raise ValueError(f"composite {name!r} needs at least two datasets joined by '+'")
    if len(set(parts)) != len(parts):
        raise ValueError(f"composite {name!r} names a dataset twice")
    return parts


def composite_labels(name: str, labels: str | Path) -> str | Path:
    """The label set of a composite load: a defined composite turns the default `original` into its own."""
    comp = COMPOSITES.get(name.strip().lower())
    if comp is not None and isinstance(labels, str) and labels == "original":
        return comp.labels
    return labels


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def composite_roots(datasets: list[str], root: object) -> dict[str, Path | None]:
    """Each dataset's root: from a mapping, or the matching sub-folder of one folder (None when not found)."""
    if isinstance(root, dict):
        lowered = {canonical_adapter(str(k)): Path(v) for k, v in root.items()}
        return {d: lowered.get(d) for d in datasets}
    base = Path(str(root))
    try:
        children = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        children = []
    found: dict[str, Path | None] = {}
    for d in datasets:
        keys = FOLDER_KEYS.get(d, (_key(d),))
        exact = [c for c in children if _key(c.name) in keys]
        prefix = [c for c in children if any(_key(c.name).startswith(k) for k in keys)]
        found[d] = (exact or prefix or [None])[0]
    return found


@dataclass(frozen=True)
class CrossDataset:
    """Train on `train` datasets, test on `test` (subjects never shared: different datasets)."""

    train: list[str] = field(default_factory=list)
    test: str = ""

    @property
    def name(self) -> str:
        """`casme2+samm->smic`."""
        return f"{'+'.join(self.train)}->{self.test}"

    @property
    def datasets(self) -> list[str]:
        """All datasets involved, train first."""
        return [*self.train, self.test]


def parse_cross(text: str) -> CrossDataset:
    """Parse `a+b->c` into CrossDataset(train=[a, b], test=c); raises ValueError naming the problem."""
    if text.count("->") != 1:
        raise ValueError(f"cross-dataset spec {text!r} must look like 'casme2+samm->smic'")
    left, right = text.split("->")
    train = [canonical_adapter(p) for p in left.split("+") if p.strip()]
    if not train or not right.strip():
        raise ValueError(f"cross-dataset spec {text!r} needs training datasets and a test dataset")
    test = canonical_adapter(right)
    if len(set(train)) != len(train):
        raise ValueError(f"cross-dataset spec {text!r} names a training dataset twice")
    if test in train:
        raise ValueError(f"cross-dataset spec {text!r} tests on a training dataset")
    return CrossDataset(train=train, test=test)
