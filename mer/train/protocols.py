"""Evaluation protocols: generators of folds ``(name, train_idx, test_idx)`` over a clip table.

The table (``meta``) has one row per clip with columns ``dataset``, ``subject`` and ``label``; indices are
row positions (0..N-1). Subjects are always keyed by ``(dataset, subject)``, so subject "01" of CASME II
and subject "01" of SAMM are different people.

Protocol strings accepted by :func:`parse_protocol`:

* ``loso`` - leave one subject out (one fold per (dataset, subject));
* ``megc2019`` - composite LOSO over several datasets (same folds; per-dataset scores come from the pooled
  predictions, which the experiment runner always reports);
* ``cross:<train>[+<train>...]:<test>`` - e.g. ``cross:casme2+samm:smic``, one fold;
* ``holdout[:<test_fraction>[:<seed>[:grouped]]]`` - stratified split (paper's Experiment 1: 90/10);
  ``grouped`` holds out whole subjects instead;
* ``kfold[:<k>[:<seed>[:grouped]]]`` - stratified k-fold, optionally with whole subjects per fold.

Subject independence: ``loso``, ``megc2019``, ``cross`` and the ``grouped`` forms never put a test subject in
training; plain ``holdout`` and ``kfold`` split clips, so one person's clips land on both sides (measured on
CASME II: 16 of 26 test subjects of a 90/10 split are also in training). :attr:`Protocol.subject_independent`
says which, and :func:`overlapping_subjects` measures it on the actual folds (written to config.json).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd


class Fold(NamedTuple):
    """One train/test split; indices are sorted row positions in the clip table."""

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray


def subject_keys(meta: pd.DataFrame) -> np.ndarray:
    """Composite subject keys ``"<dataset>/<subject>"`` (one per row)."""
    return (meta["dataset"].astype(str) + "/" + meta["subject"].astype(str)).to_numpy()


def loso(meta: pd.DataFrame) -> Iterator[Fold]:
    """Leave-one-subject-out folds, one per (dataset, subject), in sorted key order."""
    keys = subject_keys(meta)
    for key in sorted(set(keys)):
        test = keys == key
        yield Fold(key, np.flatnonzero(~test), np.flatnonzero(test))


def megc2019(meta: pd.DataFrame) -> Iterator[Fold]:
    """MEGC 2019 composite LOSO: LOSO over the union of datasets with subjects keyed by dataset."""
    yield from loso(meta)


def cross(meta: pd.DataFrame, train: Sequence[str], test: str | Sequence[str]) -> Iterator[Fold]:
    """Cross-dataset: train on all clips of ``train`` datasets, test on ``test`` dataset(s)."""
    tests = [test] if isinstance(test, str) else list(test)
    ds = meta["dataset"].astype(str).to_numpy()
    if set(train) & set(tests):
        raise ValueError("train and test datasets overlap")
    missing = (set(train) | set(tests)) - set(ds)
    if missing:
        raise ValueError(f"datasets not in the table: {sorted(missing)}")
    name = "+".join(train) + "->" + "+".join(tests)
    yield Fold(name, np.flatnonzero(np.isin(ds, list(train))), np.flatnonzero(np.isin(ds, tests)))


def _stratified_counts(class_sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` test samples across classes proportionally (largest remainder)."""
    exact = class_sizes * total / class_sizes.sum()
    base = np.floor(exact).astype(int)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return base


def _grouped_holdout_mask(meta: pd.DataFrame, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Whole subjects, in a seeded random order, added while they bring the test class counts closer to the target."""
    y = meta["label"].to_numpy()
    keys = subject_keys(meta)
    classes = np.unique(y)
    uniq = np.array(sorted(set(keys)))
    uniq = uniq[rng.permutation(len(uniq))]
    target = np.array([(y == c).sum() for c in classes]) * test_fraction
    counts = np.zeros(len(classes))
    chosen = []
    for g in uniq[:-1]:  # at least one subject stays in training
        hist = np.array([(y[keys == g] == c).sum() for c in classes])
        if ((counts + hist - target) ** 2).sum() < ((counts - target) ** 2).sum():
            counts += hist
            chosen.append(g)
    if not chosen:
        chosen = [uniq[0]]
    return np.isin(keys, chosen)


def holdout(meta: pd.DataFrame, test_fraction: float = 0.1, seed: int = 0, grouped: bool = False) -> Iterator[Fold]:
    """Stratified random hold-out: ``round(test_fraction * N)`` test rows, split across labels pro rata.

    With ``grouped`` whole subjects are held out (about ``test_fraction`` of every class; subject-independent).
    """
    y = meta["label"].to_numpy()
    rng = np.random.default_rng(seed)
    if grouped:
        mask = _grouped_holdout_mask(meta, test_fraction, rng)
        yield Fold(f"holdout{test_fraction:g}-grouped", np.flatnonzero(~mask), np.flatnonzero(mask))
        return
    classes, sizes = np.unique(y, return_counts=True)
    counts = _stratified_counts(sizes, int(round(test_fraction * len(y))))
    test = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, counts, strict=True)]
    )
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    yield Fold(f"holdout{test_fraction:g}", np.flatnonzero(~mask), np.flatnonzero(mask))


def kfold(meta: pd.DataFrame, k: int = 5, seed: int = 0, grouped: bool = False) -> Iterator[Fold]:
    """Stratified k-fold; with ``grouped`` every subject's clips fall in one fold (greedy balancing)."""
    y = meta["label"].to_numpy()
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    if not grouped:
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            offset = rng.integers(k)
            fold_of[idx] = (np.arange(len(idx)) + offset) % k
    else:
        keys = subject_keys(meta)
        classes = np.unique(y)
        uniq = np.array(sorted(set(keys)))
        uniq = uniq[rng.permutation(len(uniq))]
        hist = {g: np.array([(y[keys == g] == c).sum() for c in classes]) for g in uniq}
        order = sorted(uniq, key=lambda g: -hist[g].sum())  # stable: ties keep the shuffled order
        target = np.array([(y == c).sum() for c in classes]) / k
        per_fold = np.zeros((k, len(classes)))
        for g in order:
            cost = [
                (((per_fold[f] + hist[g]) - target) ** 2).sum() - ((per_fold[f] - target) ** 2).sum() for f in range(k)
            ]
            f = int(np.argmin(cost))
            per_fold[f] += hist[g]
            fold_of[keys == g] = f
    for f in range(k):
        test = fold_of == f
        yield Fold(f"fold{f}", np.flatnonzero(~test), np.flatnonzero(test))


def overlapping_subjects(meta: pd.DataFrame, folds: Sequence[Fold]) -> int:
    """How many (fold, test subject) pairs have clips of that subject in the fold's training rows (0 = independent)."""
    keys = subject_keys(meta)
    return sum(len(np.intersect1d(keys[f.test_idx], keys[f.train_idx])) for f in folds)


@dataclass(frozen=True)
class Protocol:
    """A named protocol with its parameters; ``folds(meta)`` lists its folds."""

    name: str
    params: dict = field(default_factory=dict)

    @property
    def subject_independent(self) -> bool:
        """True when no test subject can appear in training (LOSO, MEGC 2019, cross-dataset, grouped forms)."""
        if self.name in ("holdout", "kfold"):
            return bool(self.params.get("grouped", False))
        return True

    def folds(self, meta: pd.DataFrame) -> list[Fold]:
        """All folds of this protocol on ``meta``."""
        fn = {"loso": loso, "megc2019": megc2019, "cross": cross, "holdout": holdout, "kfold": kfold}
        if self.name not in fn:
            raise ValueError(f"unknown protocol {self.name!r}")
        return list(fn[self.name](meta, **self.params))

    def to_dict(self) -> dict:
        """JSON-able description ``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": dict(self.params), "subject_independent": self.subject_independent}


def parse_protocol(spec: str | Protocol) -> Protocol:
    """Parse a protocol string (see module docstring) into a :class:`Protocol`."""
    if isinstance(spec, Protocol):
        return spec
    parts = spec.strip().split(":")
    name, args = parts[0].lower(), parts[1:]
    if name in ("loso", "megc2019"):
        return Protocol(name)
    if name == "cross":
        if len(args) != 2:
            raise ValueError("cross protocol: expected 'cross:<train>[+<train>]:<test>'")
        return Protocol("cross", {"train": args[0].split("+"), "test": args[1]})
    if name == "holdout":
        params: dict = {}
        if args:
            params["test_fraction"] = float(args[0])
        if len(args) > 1:
            params["seed"] = int(args[1])
        if len(args) > 2:
            params["grouped"] = _grouped_flag(spec, args[2])
        return Protocol("holdout", params)
    if name == "kfold":
        params = {}
        if args:
            params["k"] = int(args[0])
        if len(args) > 1:
            params["seed"] = int(args[1])
        if len(args) > 2:
            params["grouped"] = _grouped_flag(spec, args[2])
        return Protocol("kfold", params)
    raise ValueError(f"unknown protocol {spec!r}")


def _grouped_flag(spec: str, value: str) -> bool:
    if value not in ("grouped", "rows"):
        raise ValueError(f"protocol {spec!r}: the last field is 'grouped' (whole subjects) or 'rows', not {value!r}")
    return value == "grouped"
