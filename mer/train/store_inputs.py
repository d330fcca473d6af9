"""Loading a training set from the store: named inputs (stored dataset arrays or manifest columns) plus labels.

An input source is written ``stage[:array][@key]`` (a dataset array with a clip axis of any rank, by
default the stage's primary output) or ``manifest:column`` (a per-clip manifest value, e.g. ``au_vector``,
the 21-dim AU vector of the FACS coding). Every input of a dataset is aligned on the clip ids of its
manifest; a clip missing from any input, not yet computed, or without a label is left out (and listed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mer.datasets import load_label_set
from mer.pipeline.catalog import stage_versions
from mer.store.entries import Entry, EntryRef
from mer.store.errors import EntryNotFoundError
from mer.store.provenance import provenance_record
from mer.store.store import FeatureStore

MANIFEST = "manifest"


@dataclass(frozen=True)
class InputSource:
    """Where one named input comes from: a stage's array (``array`` None = primary) or a manifest column."""

    stage: str
    array: str | None = None
    key: str | None = None

    @property
    def is_manifest(self) -> bool:
        return self.stage == MANIFEST

    def __str__(self) -> str:
        text = self.stage + (f":{self.array}" if self.array else "")
        return text + (f"@{self.key}" if self.key else "")


def parse_source(text: str, key: str | None = None) -> InputSource:
    """``mesti``, ``roi-flow:roi_flow``, ``onset-raw@3fa2``, ``manifest:au_vector`` -> :class:`InputSource`."""
    spec, _, at_key = text.strip().partition("@")
    stage, _, array = spec.partition(":")
    if not stage:
        raise ValueError(f"input source {text!r}: expected stage[:array][@key] or manifest:column")
    if stage == MANIFEST and not array:
        raise ValueError(f"input source {text!r}: name the manifest column, e.g. manifest:au_vector")
    if "@" in text and not at_key.strip():
        raise ValueError(f"input source {text!r}: name the entry key after '@', e.g. {spec}@3fa2")
    return InputSource(stage, array or None, at_key or key)


def parse_input_map(text: str) -> dict[str, str]:
    """``onset=onset-raw,apex=apex-frame-raw`` -> ``{"onset": "onset-raw", "apex": "apex-frame-raw"}``."""
    out: dict[str, str] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, source = item.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise ValueError(f"--input item {item!r}: expected name=source, e.g. onset=onset-raw")
        if name.strip() in out:
            raise ValueError(f"--input names {name.strip()!r} twice")
        out[name.strip()] = source.strip()
    return out


@dataclass
class TrainingData:
    """Named inputs (one row per clip each), one meta row per clip (dataset, subject, clip_id, label),
    class names and provenance."""

    inputs: dict[str, np.ndarray]
    meta: pd.DataFrame
    class_names: list[str]
    provenance: dict[str, Any]
    excluded: list[tuple[str, str]] = field(default_factory=list)

    @property
    def X(self) -> np.ndarray:  # noqa: N802  (the single-input array, named as before)
        """The one input of a single-input training set."""
        if len(self.inputs) != 1:
            raise ValueError(f"several inputs ({', '.join(self.inputs)}); use .inputs")
        return next(iter(self.inputs.values()))


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


def _manifest_column(name: str, dataset: str, manifest: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    if column not in manifest.columns:
        which = "--input" if name == "x" else f"input {name!r}"  # "x": the one input of a single-input model
        raise ValueError(f"{which} manifest:{column}: the manifest of {dataset} has no column {column!r}")
    values: dict[str, np.ndarray] = {}
    for clip_id, value in zip(manifest["clip_id"], manifest[column], strict=True):
        arr = np.asarray(value if value is not None else [], dtype=np.float32)
        values[str(clip_id)] = arr
    shapes = {v.shape for v in values.values()}
    if len(shapes) > 1:
        raise ValueError(f"input {name!r}: manifest column {column!r} of {dataset} has rows of shapes {sorted(shapes)}")
    if column == "au_vector" and values and not any(v.any() for v in values.values()):
        raise ValueError(
            f"input {name!r}: {dataset} has no AU coding (every au_vector is empty); "
            "train without it (e.g. --option au=false)"
        )
    return values


def _stored_rows(
    store: FeatureStore, name: str, dataset: str, source: InputSource
) -> tuple[dict[str, int], np.ndarray, dict[str, Any], list[tuple[str, str]]]:
    """Clip id -> row of the entry's dataset array (computed clips only), the array, its record, exclusions."""
    entry = store.find(dataset, source.stage, source.key, complete_only=False, current_versions=stage_versions())
    array_name = source.array or entry.primary
    array = store.read_entry(entry, name=array_name, allow_partial=True)
    done = store.done_mask(entry)
    rows = {clip: i for i, clip in enumerate(entry.clip_ids) if done[i]}
    skipped = [(f"{dataset}:{c}", f"not computed in {entry.ref}") for i, c in enumerate(entry.clip_ids) if not done[i]]
    record = {
        "source": str(source),
        "entry": str(entry.ref),
        "array": array_name,
        "params": entry.attrs["params"],
        "manifest_hash": entry.attrs.get("manifest_hash"),
        "shape": [int(s) for s in array.shape[1:]],
        "dtype": str(array.dtype),
        "channels": entry.attrs.get("channels"),  # channel declaration (flow images), for augmentation
        "recipe": entry.recipe,
        "inputs": dict(entry.attrs.get("inputs", {})),
        "upstream": upstream_entries(store, entry),
    }
    current = store.current_manifest_hash(dataset)
    if entry.manifest_hash and entry.manifest_hash != current:
        raise ValueError(
            f"input {name!r}: {entry.ref} was built from clips table version {entry.manifest_hash[:16]} of {dataset}, "
            f"but the current version is {current[:16]} (clips or labels changed since): build it again for the "
            "current table, or train on the entry of the current version"
        )
    return rows, array, record, skipped


def upstream_entries(store: FeatureStore, entry: Entry) -> dict[str, dict[str, Any]]:
    """Every entry ``entry`` was computed from, by stage name: its ref, key, version, recipe and parameters
    (e.g. ``upstream["apex"]["params"]`` is the apex rule a MESTI or flow input used). The chain is followed
    through the input keys recorded in each entry, up to the clips table."""
    found: dict[str, dict[str, Any]] = {}
    pending = [entry]
    while pending:
        current = pending.pop()
        for stage, key in current.attrs.get("inputs", {}).items():
            if stage == MANIFEST or stage in found:
                continue
            ref = EntryRef(current.ref.dataset, stage, key)
            try:
                upstream = store.entry(ref)
            except EntryNotFoundError:  # removed since: say so rather than fail the run
                found[stage] = {"entry": str(ref), "key": key, "missing": True}
                continue
            found[stage] = {
                "entry": str(ref),
                "key": key,
                "version": upstream.attrs.get("version"),
                "recipe": upstream.recipe,
                "params": upstream.attrs.get("params"),
            }
            pending.append(upstream)
    return dict(sorted(found.items()))


def load_training_inputs(
    store: FeatureStore,
    datasets: str,
    inputs: Mapping[str, str | InputSource],
    labels: str | None = None,
    keys: Mapping[str, Mapping[str, str]] | None = None,
) -> TrainingData:
    """Read every named input for each dataset; keep the clips that all inputs have and that have a label.

    ``inputs`` maps an input name (the model's, e.g. ``onset``) to a source (``stage[:array][@key]`` or
    ``manifest:column``). ``labels`` (a label-set name such as ``3class`` or a TOML path) relabels the clips
    from their emotions; by default the labels chosen at preprocessing are used, and several datasets must
    then share classes. Provenance lists every entry read, with its manifest hash, recipe, input keys and every
    upstream entry (key and parameters, e.g. the ``apex`` entry behind MESTI or flow), and each manifest's hash:
    ``entries[dataset][input name]`` (``entries[dataset]`` itself for a single input). ``keys``
    (``{dataset: {input name: entry key}}``) pins the entry of an input per dataset, over its source's key.
    """
    if not inputs:
        raise ValueError("no inputs to load")
    sources = {n: s if isinstance(s, InputSource) else parse_source(s) for n, s in inputs.items()}
    names = split_datasets(store, datasets)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in sources}
    metas, entries, manifests = [], {}, {}
    excluded: list[tuple[str, str]] = []
    left_out: set[str] = set()
    class_names: list[str] | None = None
    label_set_record: Any = None
    if labels is not None:
        observed = {n: set(store.manifest(n)["emotion"]) for n in names}
        label_set = load_label_set(labels, observed)
        class_names, label_set_record = list(label_set.classes), label_set.to_dict()
    for dataset in names:
        manifest_df = store.manifest(dataset)
        manifests[dataset] = store.manifest_meta(dataset).get("hash")
        lookups: dict[str, tuple[dict[str, int] | None, Any]] = {}
        entries[dataset] = {}
        for input_name, source in sources.items():
            if source.is_manifest:
                values = _manifest_column(input_name, dataset, manifest_df, source.array or "")
                lookups[input_name] = (None, values)
                entries[dataset][input_name] = {"source": str(source), "manifest_hash": manifests[dataset]}
                continue
            pinned = (keys or {}).get(dataset, {}).get(input_name)
            stored = source if pinned is None else dataclasses.replace(source, key=pinned)
            rows, array, record, skipped = _stored_rows(store, input_name, dataset, stored)
            lookups[input_name] = (rows, array)
            entries[dataset][input_name] = record
            for tag, reason in skipped:
                if tag not in left_out:
                    left_out.add(tag)
                    excluded.append((tag, reason))
        manifest = manifest_df.set_index("clip_id")
        meta_rows, picks = [], {n: [] for n in sources}
        for clip_id in manifest.index:
            tag = f"{dataset}:{clip_id}"
            missing = [n for n, (rows, _) in lookups.items() if rows is not None and clip_id not in rows]
            if missing:
                if tag not in left_out:
                    left_out.add(tag)
                    excluded.append((tag, f"no computed {', '.join(missing)} input"))
                continue
            row = manifest.loc[clip_id]
            if labels is not None:
                verdict, cls = label_set.classify(row["dataset"], row["emotion"])
                if verdict != "class":
                    excluded.append((tag, f"emotion {row['emotion']!r} is {verdict} in {labels}"))
                    continue
                label = class_names.index(cls)
            else:
                label = int(row["label"])
            meta_rows.append(
                {"dataset": row["dataset"], "subject": str(row["subject"]), "clip_id": clip_id, "label": label}
            )
            for n, (rows, _) in lookups.items():
                picks[n].append(rows[clip_id] if rows is not None else clip_id)
        if labels is None:
            ds_classes = store.manifest_meta(dataset).get("label_set", {}).get("classes")
            if class_names is not None and ds_classes != class_names:
                raise ValueError(f"{dataset} uses classes {ds_classes}, the others {class_names}; pass --labels")
            class_names, label_set_record = ds_classes, store.manifest_meta(dataset).get("label_set")
        for n, (rows, data) in lookups.items():
            if rows is None:
                shape = next(iter(data.values())).shape if data else (0,)
                stacked = np.stack([data[c] for c in picks[n]]) if picks[n] else np.zeros((0, *shape), np.float32)
                parts[n].append(stacked)
            else:
                parts[n].append(data[np.asarray(picks[n], dtype=np.int64)])
        metas.append(pd.DataFrame(meta_rows, columns=["dataset", "subject", "clip_id", "label"]))
    meta = pd.concat(metas, ignore_index=True)
    if meta.empty:
        raise ValueError(f"no labelled clips with every input ({', '.join(map(str, sources.values()))}) in {datasets}")
    arrays = {n: np.concatenate(p) for n, p in parts.items()}
    shapes = {n: a.shape for n, a in arrays.items()}
    if len({s[0] for s in shapes.values()}) != 1:  # cannot happen: every input is picked per kept clip
        raise AssertionError(f"inputs are not aligned: {shapes}")
    if len(sources) == 1:  # one input: entries[dataset] is its record, as before the inputs by name
        entries = {ds: next(iter(recs.values())) for ds, recs in entries.items()}
    provenance = {
        "store": store.location,
        "input": _describe(sources),
        "inputs": {n: str(s) for n, s in sources.items()},
        "entries": entries,
        "manifests": manifests,
        "label_set": label_set_record,
        "excluded": [{"clip": c, "reason": r} for c, r in excluded],
        **provenance_record(),
    }
    return TrainingData(arrays, meta, list(class_names or []), provenance, excluded)


def _describe(sources: Mapping[str, InputSource]) -> str:
    """The run's input label: the source of a single input, else ``name=source,...``."""
    if len(sources) == 1:
        return str(next(iter(sources.values())))
    return ",".join(f"{n}={s}" for n, s in sources.items())


def load_training_data(
    store: FeatureStore, datasets: str, input_stage: str, key: str | None = None, labels: str | None = None
) -> TrainingData:
    """One stored input (``input_stage``'s primary array), as before the inputs by name; see
    :func:`load_training_inputs`."""
    return load_training_inputs(store, datasets, {"x": parse_source(input_stage, key)}, labels)


def load_joined(
    store: FeatureStore, datasets: Sequence[str], stage: str, keys: Mapping[str, str], labels: str | None = None
) -> TrainingData:
    """``stage``'s primary array of each dataset (entry ``keys[dataset]``) through :func:`load_training_data`, the
    datasets' rows concatenated in order; they must share classes."""
    parts = [load_training_data(store, ds, stage, keys[ds], labels) for ds in datasets]
    if len(parts) == 1:
        return parts[0]
    names = parts[0].class_names
    for ds, part in zip(datasets, parts, strict=True):
        if part.class_names != names:
            raise ValueError(f"{ds} has classes {part.class_names}, {datasets[0]} {names}; they cannot be joined")
    provenance = dict(parts[0].provenance)
    provenance["entries"] = {k: v for p in parts for k, v in p.provenance["entries"].items()}
    provenance["excluded"] = [e for p in parts for e in p.provenance["excluded"]]
    return TrainingData(
        {"x": np.concatenate([p.X for p in parts])},
        pd.concat([p.meta for p in parts], ignore_index=True),
        names,
        provenance,
        [e for p in parts for e in p.excluded],
    )
