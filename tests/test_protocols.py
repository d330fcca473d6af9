"""Fold generators: coverage, subject disjointness, composite keys, stratified sizes, cross-dataset."""

import numpy as np
import pandas as pd
import pytest

from mer.train.protocols import Protocol, cross, holdout, kfold, loso, megc2019, parse_protocol


def make_meta(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for ds, n_subj in (("casme2", 5), ("samm", 4), ("smic", 3)):
        for s in range(1, n_subj + 1):
            for _ in range(rng.integers(2, 7)):
                rows.append({"dataset": ds, "subject": f"{s:02d}", "label": int(rng.integers(0, 3))})
    return pd.DataFrame(rows)


def _subjects(meta, idx):
    return set(zip(meta["dataset"].iloc[idx], meta["subject"].iloc[idx], strict=True))


def test_loso_covers_every_row_once_with_disjoint_subjects():
    meta = make_meta()
    folds = list(loso(meta))
    assert len(folds) == 5 + 4 + 3
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested) == list(range(len(meta)))
    for f in folds:
        assert len(_subjects(meta, f.test_idx)) == 1
        assert not _subjects(meta, f.train_idx) & _subjects(meta, f.test_idx)
        assert len(f.train_idx) + len(f.test_idx) == len(meta)


def test_composite_keys_subjects_by_dataset():
    meta = make_meta()
    folds = {f.name: f for f in megc2019(meta)}
    a, b = folds["casme2/01"], folds["samm/01"]
    assert set(meta["dataset"].iloc[a.test_idx]) == {"casme2"}
    assert set(meta["dataset"].iloc[b.test_idx]) == {"samm"}
    # samm's subject "01" is still in the training rows of casme2's subject "01" fold
    assert set(b.test_idx) <= set(a.train_idx)


def test_holdout_is_stratified_with_the_requested_size():
    meta = make_meta()
    (fold,) = holdout(meta, test_fraction=0.2, seed=3)
    n = len(meta)
    assert len(fold.test_idx) == round(0.2 * n)
    assert sorted(np.concatenate([fold.train_idx, fold.test_idx])) == list(range(n))
    y = meta["label"].to_numpy()
    for c in np.unique(y):
        n_c = (y == c).sum()
        assert abs((y[fold.test_idx] == c).sum() - 0.2 * n_c) < 1.0
    (again,) = holdout(meta, test_fraction=0.2, seed=3)
    assert np.array_equal(again.test_idx, fold.test_idx)
    (other,) = holdout(meta, test_fraction=0.2, seed=4)
    assert not np.array_equal(other.test_idx, fold.test_idx)


def test_cross_dataset_fold():
    meta = make_meta()
    (fold,) = cross(meta, train=["casme2", "samm"], test="smic")
    assert fold.name == "casme2+samm->smic"
    assert set(meta["dataset"].iloc[fold.train_idx]) == {"casme2", "samm"}
    assert set(meta["dataset"].iloc[fold.test_idx]) == {"smic"}
    assert len(fold.train_idx) + len(fold.test_idx) == len(meta)
    with pytest.raises(ValueError):
        list(cross(meta, train=["casme2"], test="casme2"))


@pytest.mark.parametrize("grouped", [False, True])
def test_kfold_partitions_rows(grouped):
    meta = make_meta()
    folds = list(kfold(meta, k=3, seed=1, grouped=grouped))
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested) == list(range(len(meta)))
    if grouped:
        for f in folds:
            assert not _subjects(meta, f.train_idx) & _subjects(meta, f.test_idx)
    else:
        y = meta["label"].to_numpy()
        for c in np.unique(y):
            counts = [(y[f.test_idx] == c).sum() for f in folds]
            assert max(counts) - min(counts) <= 1


def test_parse_protocol_strings():
    assert parse_protocol("loso") == Protocol("loso")
    p = parse_protocol("cross:casme2+samm:smic")
    assert p.params == {"train": ["casme2", "samm"], "test": "smic"}
    assert parse_protocol("holdout:0.1:7").params == {"test_fraction": 0.1, "seed": 7}
    assert parse_protocol("kfold:5:2:grouped").params == {"k": 5, "seed": 2, "grouped": True}
    meta = make_meta()
    assert len(parse_protocol("kfold:4").folds(meta)) == 4
    with pytest.raises(ValueError):
        parse_protocol("bogus")
