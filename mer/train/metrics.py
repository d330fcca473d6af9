"""Classification metrics over pooled predictions (UF1, UAR, ACC, WF1, per-class F1, confusion matrix).

Convention for classes that are absent (methods.md §5, MEGC practice):

* UF1 and WF1 average over the classes present in ``y_true ∪ y_pred`` (scikit-learn's default
  ``labels``). A class that was predicted but never occurs has F1 = 0 and so lowers UF1 (its support is 0,
  so it does not change WF1). A class that appears in neither is left out.
* UAR averages recall over the classes present in ``y_true`` only: recall is undefined for a class with no
  true samples (the MEGC 2019 evaluation script skips such a class, as it does for an F1 of a class absent
  from both sides).
* Per-class F1 is NaN for a class absent from both ``y_true`` and ``y_pred``.

Pass ``labels`` to average over a fixed class set instead (sklearn's ``labels=`` semantics: absent classes
count as F1 = 0 and recall = 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of samples with true class i predicted as j (rows true, columns predicted)."""
    yt = np.asarray(y_true, dtype=np.int64)
    yp = np.asarray(y_pred, dtype=np.int64)
    if yt.shape != yp.shape:
        raise ValueError("y_true and y_pred differ in length")
    if yt.size and (min(yt.min(), yp.min()) < 0 or max(yt.max(), yp.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return np.bincount(yt * num_classes + yp, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) per class; NaN where the class is absent from both truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall TP / N per class; NaN where the class has no true samples."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    return np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)


def compute_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    num_classes: int | None = None,
    labels: Sequence[int] | None = None,
) -> dict:
    """UF1, UAR, ACC, WF1 (fractions), per-class F1, recall and support, and the confusion matrix.

    See the module docstring for how absent classes are handled; ``labels`` fixes the averaging set.
    """
    yt = np.asarray(y_true, dtype=np.int64)
    yp = np.asarray(y_pred, dtype=np.int64)
    if num_classes is None:
        extra = list(labels) if labels is not None else [-1]
        num_classes = int(max(yt.max(initial=-1), yp.max(initial=-1), *extra)) + 1
    cm = confusion_matrix(yt, yp, num_classes)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    f1 = per_class_f1(cm)
    recall = per_class_recall(cm)
    if labels is not None:
        lab = np.asarray(list(labels), dtype=np.int64)
        f1_set, rec_set = np.nan_to_num(f1[lab]), np.nan_to_num(recall[lab])
        w = support[lab]
    else:
        union = (support > 0) | (predicted > 0)
        f1_set, w = f1[union], support[union]
        rec_set = recall[support > 0]
    n = int(cm.sum())
    return {
        "n": n,
        "uf1": float(f1_set.mean()) if f1_set.size else float("nan"),
        "uar": float(rec_set.mean()) if rec_set.size else float("nan"),
        "acc": float(np.trace(cm) / n) if n else float("nan"),
        "wf1": float((f1_set * w).sum() / w.sum()) if w.sum() > 0 else float("nan"),
        "per_class_f1": [None if np.isnan(v) else float(v) for v in f1],
        "per_class_recall": [None if np.isnan(v) else float(v) for v in recall],
        "support": [int(v) for v in support],
        "confusion_matrix": cm.tolist(),
    }
