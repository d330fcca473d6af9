"""Loading a training set from the store: one stage's dataset array plus the labels of its clips."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mer.datasets import load_label_set
from mer.store.provenance import provenance_record
from mer.store.store import FeatureStore


@dataclass
class TrainingData:
    """Inputs (N×C×H×W), one meta row per clip (dataset, subject, clip_id, label), class names and provenance."""

    X: np.ndarray
    meta: pd.DataFrame
    class_names: list[str]
    provenance: dict[str, Any]
    excluded: list[tuple[str, str]] = field(default_factory=list)


def split_datasets(store: FeatureStore, spec: str) -> list[str]:
    """A stored dataset name, or several joined by ``+`` (``casme2+samm+smic``)."""
    if spec in store.datasets():
        return [spec]
    names = [s for s in spec.split("+") if s]
    missing = [n for n in names if n not in store.datasets()]
    if missing:
        raise ValueError(
            f"dataset(s) {', '.join(missing)} not in {store.location}; stored: {', '.join(store.datasets()) or 'none'}"
        )
    return names


def load_training_data(
    store: FeatureStore, datasets: str, input_stage: str, key: str | None = None, labels: str | None = None
) -> TrainingData:
    """Read ``input_stage``'s array for each dataset; keep the clips that are written and have a label.

    ``labels`` (a label-set name such as ``3class`` or a TOML path) relabels the clips from their emotions;
    by default the labels chosen at preprocessing are used, and several datasets must then share classes.
    """
    names = split_datasets(store, datasets)
    parts, metas, excluded, entries = [], [], [], {}
    class_names: list[str] | None = None
    label_set_record: Any = None
    if labels is not None:
        observed = {n: set(store.manifest(n)["emotion"]) for n in names}
        label_set = load_label_set(labels, observed)
        class_names, label_set_record = list(label_set.classes), label_set.to_dict()
    for name in names:
        entry = store.find(name, input_stage, key, complete_only=False)
        array = store.read_entry(entry, allow_partial=True)
        if array.ndim != 4:
            raise ValueError(f"{entry.ref} has shape {array.shape}; the trainer takes N×C×H×W image inputs")
        manifest = store.manifest(name).set_index("clip_id")
        done = store.done_mask(entry)
        rows, keep = [], []
        for i, clip_id in enumerate(entry.clip_ids):
            if not done[i]:
                excluded.append((f"{name}:{clip_id}", f"not computed in {entry.ref}"))
                continue
            if clip_id not in manifest.index:
                excluded.append((f"{name}:{clip_id}", "no longer in the manifest"))
                continue
            row = manifest.loc[clip_id]
            if labels is not None:
                verdict, cls = label_set.classify(row["dataset"], row["emotion"])
                if verdict != "class":
                    excluded.append((f"{name}:{clip_id}", f"emotion {row['emotion']!r} is {verdict} in {labels}"))
                    continue
                label = class_names.index(cls)
            else:
                label = int(row["label"])
            rows.append({"dataset": row["dataset"], "subject": str(row["subject"]), "clip_id": clip_id, "label": label})
            keep.append(i)
        if labels is None:
            ds_classes = store.manifest_meta(name).get("label_set", {}).get("classes")
            if class_names is not None and ds_classes != class_names:
                raise ValueError(f"{name} uses classes {ds_classes}, the others {class_names}; pass --labels")
            class_names, label_set_record = ds_classes, store.manifest_meta(name).get("label_set")
        parts.append(array[keep])
        metas.append(pd.DataFrame(rows, columns=["dataset", "subject", "clip_id", "label"]))
        entries[name] = {
            "entry": str(entry.ref),
            "params": entry.attrs["params"],
            "manifest_hash": entry.attrs["manifest_hash"],
            "channels": entry.attrs.get("channels"),  # channel declaration (flow images), for augmentation
        }
    meta = pd.concat(metas, ignore_index=True)
    if meta.empty:
        raise ValueError(f"no labelled clips with a computed {input_stage} in {datasets}")
    provenance = {
        "store": store.location,
        "input": input_stage,
        "entries": entries,
        "label_set": label_set_record,
        "excluded": [{"clip": c, "reason": r} for c, r in excluded],
        **provenance_record(),
    }
    return TrainingData(np.concatenate(parts), meta, list(class_names or []), provenance, excluded)
