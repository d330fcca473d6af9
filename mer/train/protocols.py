"""Evaluation protocols: generators of folds ``(name, train_idx, test_idx)`` over a clip table.

The table (``meta``) has one row per clip with columns ``dataset``, ``subject`` and ``label``; indices are
row positions (0..N-1). Subjects are always keyed by ``(dataset, subject)``, so subject "01" of CASME II
and subject "01" of SAMM are different people.

Protocol strings accepted by :func:`parse_protocol`:

* ``loso`` - leave one subject out (one fold per (dataset, subject));
* ``megc2019`` - composite LOSO over several datasets (same folds; per-dataset scores come from the pooled
  predictions, which the experiment runner always reports);
* ``cross:<train>[+<train>...]:<test>`` - e.g. ``cross:casme2+samm:smic``, one fold;
* ``holdout[:<test_fraction>[:<seed>]]`` - stratified split (paper's Experiment 1: 90/10);
* ``kfold[:<k>[:<seed>[:grouped]]]`` - stratified k-fold, optionally with whole subjects per fold.
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


def holdout(meta: pd.DataFrame, test_fraction: float = 0.1, seed: int = 0) -> Iterator[Fold]:
    """Stratified random hold-out: ``round(test_fraction * N)`` test rows, split across labels pro rata."""
    y = meta["label"].to_numpy()
    rng = np.random.default_rng(seed)
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


@dataclass(frozen=True)
class Protocol:
    """A named protocol with its parameters; ``folds(meta)`` lists its folds."""

    name: str
    params: dict = field(default_factory=dict)

    def folds(self, meta: pd.DataFrame) -> list[Fold]:
        """All folds of this protocol on ``meta``."""
        fn = {"loso": loso, "megc2019": megc2019, "cross": cross, "holdout": holdout, "kfold": kfold}
        if self.name not in fn:
            raise ValueError(f"unknown protocol {self.name!r}")
        return list(fn[self.name](meta, **self.params))

    def to_dict(self) -> dict:
        """JSON-able description ``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": dict(self.params)}


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
        return Protocol("holdout", params)
    if name == "kfold":
        params = {}
        if args:
            params["k"] = int(args[0])
        if len(args) > 1:
            params["seed"] = int(args[1])
        if len(args) > 2:
            params["grouped"] = args[2] == "grouped"
        return Protocol("kfold", params)
    raise ValueError(f"unknown protocol {spec!r}")
