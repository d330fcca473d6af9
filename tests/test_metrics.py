"""Metrics against scikit-learn, including classes missing from the truth or the predictions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion

from mer.train.metrics import compute_metrics, confusion_matrix

K = 5


@st.composite
def label_pairs(draw):
    n = draw(st.integers(1, 40))
    k_true = draw(st.integers(1, K))  # restrict truth to a subset so that classes go missing
    yt = draw(st.lists(st.integers(0, k_true - 1), min_size=n, max_size=n))
    yp = draw(st.lists(st.integers(0, K - 1), min_size=n, max_size=n))
    return np.array(yt), np.array(yp)


@settings(max_examples=150, deadline=None)
@given(label_pairs())
def test_metrics_match_sklearn(pair):
    yt, yp = pair
    m = compute_metrics(yt, yp, K)
    union = sorted(set(yt) | set(yp))
    present = sorted(set(yt))
    assert m["uf1"] == pytest.approx(f1_score(yt, yp, labels=union, average="macro", zero_division=0))
    assert m["wf1"] == pytest.approx(f1_score(yt, yp, labels=union, average="weighted", zero_division=0))
    assert m["uar"] == pytest.approx(recall_score(yt, yp, labels=present, average="macro", zero_division=0))
    assert m["acc"] == pytest.approx(accuracy_score(yt, yp))
    assert np.array_equal(np.array(m["confusion_matrix"]), sk_confusion(yt, yp, labels=list(range(K))))
    sk_per_class = f1_score(yt, yp, labels=list(range(K)), average=None, zero_division=0)
    for c in range(K):
        if c in union:
            assert m["per_class_f1"][c] == pytest.approx(sk_per_class[c])
        else:
            assert m["per_class_f1"][c] is None


@settings(max_examples=60, deadline=None)
@given(label_pairs())
def test_fixed_label_set_matches_sklearn_labels_argument(pair):
    yt, yp = pair
    labels = list(range(K))
    m = compute_metrics(yt, yp, K, labels=labels)
    assert m["uf1"] == pytest.approx(f1_score(yt, yp, labels=labels, average="macro", zero_division=0))
    assert m["uar"] == pytest.approx(recall_score(yt, yp, labels=labels, average="macro", zero_division=0))


def test_missing_class_by_hand():
    # class 2 never occurs in truth but is predicted once; class 3 occurs nowhere
    yt = [0, 0, 1, 1, 1]
    yp = [0, 1, 1, 1, 2]
    m = compute_metrics(yt, yp, 4)
    f1_0 = 2 * 1 / (2 * 1 + 0 + 1)  # TP=1, FN=1
    f1_1 = 2 * 2 / (2 * 2 + 1 + 1)  # TP=2, FP=1, FN=1
    f1_2 = 0.0  # TP=0, FP=1
    assert m["uf1"] == pytest.approx((f1_0 + f1_1 + f1_2) / 3)
    assert m["uar"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # only classes with true samples
    assert m["acc"] == pytest.approx(3 / 5)
    assert m["wf1"] == pytest.approx((2 * f1_0 + 3 * f1_1) / 5)
    assert m["per_class_f1"][3] is None
    assert m["support"] == [2, 3, 0, 0]


def test_confusion_matrix_orientation_and_range():
    cm = confusion_matrix([0, 0, 1], [1, 1, 1], 2)
    assert cm.tolist() == [[0, 2], [0, 1]]  # rows: true, columns: predicted
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)
