"""Quality-control scores of preprocessed clips: one row per clip, worst first, from the stored face stages.

Four measures per clip, each read from what the face stages stored (no frame is decoded):

=====================  ===============================================================  =====  ==========
measure                what it is                                                       limit  bad when
=====================  ===============================================================  =====  ==========
``landmark_quality``   lowest per-frame tracking quality of the clip (``landmarks``      0.5    below
                       stage, in [0, 1], about 0.8–0.95 on a steady face)
``tracking_jump``      largest frame-to-frame move of the raw landmarks (mean over the   0.15   above
                       68 points) in units of the median eye-centre distance
``eye_tilt_deg``       largest angle of the aligned eye line (the ``align`` reference    5.0    above
                       pair) to the horizontal over the clip, degrees
``detection_score``    the face detector's score of the chosen face (``detect``)         0.25   below
=====================  ===============================================================  =====  ==========

Each measure ``m`` with limit ``L`` becomes a sub-score in [0, 1] that equals 0.5 exactly at the limit:
``0.5 ** ((m / L) ** 2)`` when lower is better, ``1 - 0.5 ** ((m / L) ** 2)`` when higher is better. The clip's
``score`` is its lowest sub-score (``weakest`` names it), so a clip is **flagged** (``score < QC_THRESHOLD`` =
0.5) exactly when one of its measures is past its limit. Clips that failed in a face stage come first (with the
stage and error), then clips not processed yet, then the rest by ascending score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mer.store import Entry, EntryNotFoundError, FeatureStore, StoreError

QC_THRESHOLD = 0.5
"""A clip whose score is below this is flagged (each measure's sub-score is 0.5 at its limit)."""

FACE_CHAIN: tuple[str, ...] = ("detect", "landmarks", "align", "equalize")
IMAGE_INPUTS: tuple[str, ...] = ("mesti", "dynamic", "apex-frame", "diff", "onset")
"""Stored image inputs the gallery can show, in order of preference."""

STATUS_ORDER: tuple[str, ...] = ("failed", "missing", "flagged", "ok")


@dataclass(frozen=True)
class Measure:
    """One QC measure: its limit (sub-score 0.5) and whether higher values are better."""

    name: str
    limit: float
    higher_is_better: bool
    description: str

    def sub_score(self, value: float) -> float:
        """Map the measure to [0, 1] (1 best, 0.5 at the limit); NaN stays NaN."""
        if not np.isfinite(value):
            return float("nan")
        ratio = (max(float(value), 0.0) / self.limit) ** 2
        return float(1.0 - 0.5**ratio) if self.higher_is_better else float(0.5**ratio)


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("landmark_quality", 0.5, True, "lowest per-frame landmark tracking quality (0..1)"),
        Measure("tracking_jump", 0.15, False, "largest frame-to-frame landmark move / eye distance"),
        Measure("eye_tilt_deg", 5.0, False, "largest aligned eye-line tilt, degrees"),
        Measure("detection_score", 0.25, True, "face detector score"),
    )
}

TABLE_COLUMNS: tuple[str, ...] = (
    "rank",
    "clip_id",
    "subject",
    "label",
    "action_units",
    "status",
    "score",
    "weakest",
    *MEASURES,
    "n_frames",
    "apex_annotated",
    "apex_used",
    "failed_stage",
    "error",
)


# ----------------------------------------------------------------------------------------------- kernels
def _eye_pair(landmarks: np.ndarray, reference: str) -> tuple[np.ndarray, np.ndarray]:
    """The image-left and image-right eye points (T×2 each) of T×68×2 landmarks."""
    if reference == "inner-corners":
        return landmarks[:, 39], landmarks[:, 42]
    return landmarks[:, 36:42].mean(axis=1), landmarks[:, 42:48].mean(axis=1)


def tracking_jump(landmarks_raw: np.ndarray) -> float:
    """Largest frame-to-frame move of T×68×2 landmarks (mean over points), over the median eye-centre distance.

    0 for a one-frame clip. A face that jumps by a third of its eye distance between two frames gives 0.33.
    """
    pts = np.asarray(landmarks_raw, dtype=np.float64)
    if len(pts) < 2:
        return 0.0
    left, right = _eye_pair(pts, "eye-centres")
    eye_distance = max(float(np.median(np.linalg.norm(right - left, axis=1))), 1e-6)
    moves = np.linalg.norm(np.diff(pts, axis=0), axis=-1).mean(axis=1)
    return float(moves.max() / eye_distance)


def eye_tilt_deg(aligned_landmarks: np.ndarray, reference: str = "inner-corners") -> float:
    """Largest absolute angle (degrees) of the aligned eye line to the horizontal over T×68×2 landmarks."""
    left, right = _eye_pair(np.asarray(aligned_landmarks, dtype=np.float64), reference)
    d = right - left
    return float(np.degrees(np.abs(np.arctan2(d[:, 1], d[:, 0]))).max())


def clip_measures(
    quality: np.ndarray,
    landmarks_raw: np.ndarray,
    aligned_landmarks: np.ndarray,
    detection_score: float,
    reference: str = "inner-corners",
) -> dict[str, float]:
    """The four QC measures of one clip (see the module docstring).

    Parameters
    ----------
    quality : (T,) per-frame tracking quality in [0, 1].
    landmarks_raw : (T, 68, 2) unsmoothed tracked landmarks, frame pixels.
    aligned_landmarks : (T, 68, 2) landmarks in aligned-crop pixels.
    detection_score : the detector's score of the chosen face.
    reference : the alignment's eye reference pair, ``inner-corners`` or ``eye-centres``.
    """
    return {
        "landmark_quality": float(np.min(quality)) if len(quality) else float("nan"),
        "tracking_jump": tracking_jump(landmarks_raw),
        "eye_tilt_deg": eye_tilt_deg(aligned_landmarks, reference),
        "detection_score": float(detection_score),
    }


def combine(measures: Mapping[str, float]) -> tuple[float, str]:
    """The clip score (lowest sub-score) and the name of the measure that gave it; (NaN, "") when none is finite."""
    subs = {name: MEASURES[name].sub_score(v) for name, v in measures.items() if name in MEASURES}
    finite = {n: s for n, s in subs.items() if np.isfinite(s)}
    if not finite:
        return float("nan"), ""
    weakest = min(finite, key=lambda n: (finite[n], n))
    return finite[weakest], weakest


# ------------------------------------------------------------------------------------------ store access
@dataclass
class QCEntries:
    """The face-stage entries a QC table reads (``image`` is the optional stored image input)."""

    detect: Entry
    landmarks: Entry
    align: Entry
    equalize: Entry | None
    image: Entry | None

    def chain(self) -> list[Entry]:
        return [e for e in (self.detect, self.landmarks, self.align, self.equalize) if e is not None]


def _pick(store: FeatureStore, dataset: str, stage: str, upstream: Entry | None, key: str | None) -> Entry | None:
    """The entry of ``stage`` that reads ``upstream`` (and matches ``key``): the complete one when several."""
    infos = [
        i
        for i in store.ls(dataset, stage)
        if (upstream is None or i.inputs.get(upstream.ref.stage) == upstream.ref.key)
        and (key is None or i.key.startswith(key))
    ]
    if not infos:
        if key is not None:
            raise EntryNotFoundError(f"no {stage} entry of dataset {dataset!r} with key {key!r} in {store.location}")
        return None
    if len(infos) > 1:
        complete = [i for i in infos if i.status == "complete"]
        if len(complete) == 1:
            infos = complete
        else:
            listing = ", ".join(f"{i.key} ({i.status})" for i in infos)
            raise StoreError(
                f"{len(infos)} {stage} entries for {dataset}: {listing}; choose one with --key {stage}=KEY"
            )
    return store.entry(infos[0].ref)


def resolve_entries(
    store: FeatureStore, dataset: str, keys: Mapping[str, str] | None = None, image: str | None = None
) -> QCEntries:
    """Find the detect → landmarks → align → equalize entries of a dataset (each reading the one before) and an
    image input (``image``, else the first of IMAGE_INPUTS stored over that equalize entry; ``"none"`` for none)."""
    keys = dict(keys or {})
    store.manifest_meta(dataset)  # one clear error when the dataset is not there
    found: dict[str, Entry | None] = {}
    upstream = None
    for stage in FACE_CHAIN:
        entry = _pick(store, dataset, stage, upstream, keys.get(stage))
        if entry is None and stage != "equalize":
            present = sorted({i.stage for i in store.ls(dataset)})
            raise EntryNotFoundError(
                f"dataset {dataset!r} has no {stage} entry in {store.location} (stages present: "
                f"{', '.join(present) or 'none'}); run preprocess with the face stages first"
            )
        found[stage] = entry
        upstream = entry if entry is not None else upstream
    image_entry = None
    equalize = found["equalize"]
    if image != "none" and equalize is not None:
        for stage in [image] if image else IMAGE_INPUTS:
            image_entry = _pick(store, dataset, stage, equalize, keys.get(stage))
            if image_entry is not None:
                break
        if image and image_entry is None:
            raise EntryNotFoundError(f"dataset {dataset!r} has no {image} entry over equalize {equalize.ref.key}")
    return QCEntries(found["detect"], found["landmarks"], found["align"], equalize, image_entry)  # type: ignore[arg-type]


def _status_of(
    entries: QCEntries,
    clip_id: str,
    done: dict[str, np.ndarray],
    failed: dict[str, dict[int, dict[str, Any]]],
) -> tuple[str, str, str]:
    """(status, failed stage, error) of a clip along the face chain: failed, missing or ok."""
    first_missing = None
    for entry in entries.chain():
        index = entry.index_of(clip_id)
        if done[entry.ref.stage][index]:
            continue
        record = failed[entry.ref.stage].get(index)
        if record is not None:
            return "failed", str(record.get("stage", entry.ref.stage)), str(record.get("error", ""))
        first_missing = first_missing or entry.ref.stage
    if first_missing is not None:
        return "missing", first_missing, f"not processed yet by {first_missing}"
    return "ok", "", ""


def _label_of(row: Mapping[str, Any]) -> str:
    for column in ("label_name", "emotion", "label"):
        value = row.get(column)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return str(value)
    return ""


def annotated_apex_position(row: Mapping[str, Any]) -> int | None:
    """The annotated apex as a 0-based position inside the clip's frames, or None when missing or outside."""
    apex = row.get("apex")
    if apex is None or pd.isna(apex):
        return None
    numbers = [int(n) for n in row.get("frame_numbers") or []]
    return numbers.index(int(apex)) if int(apex) in numbers else None


def qc_table(
    store: FeatureStore,
    dataset: str,
    *,
    threshold: float = QC_THRESHOLD,
    keys: Mapping[str, str] | None = None,
    image: str | None = None,
    entries: QCEntries | None = None,
) -> pd.DataFrame:
    """The QC table of a dataset: one row per clip (columns TABLE_COLUMNS), worst first.

    ``status`` is ``failed`` (with ``failed_stage`` and ``error``), ``missing`` (not processed yet), ``flagged``
    (score below ``threshold``) or ``ok``. Positions (``apex_annotated``, ``apex_used``) are 0-based inside the
    clip; ``apex_used`` comes from the stored image input when there is one. Example: drop flagged clips with
    ``table[table.status == "ok"].clip_id``.
    """
    entries = entries or resolve_entries(store, dataset, keys, image)
    manifest = store.manifest(dataset)
    done = {e.ref.stage: store.done_mask(e) for e in entries.chain()}
    failed = {e.ref.stage: {int(r["index"]): r for r in store.failed_records(e.ref)} for e in entries.chain()}
    reference = str(entries.align.attrs["params"].get("reference", "inner-corners"))
    used_apex = _used_apex(store, entries.image)
    rows = []
    for row in manifest.to_dict("records"):
        clip_id = str(row["clip_id"])
        status, failed_stage, error = _status_of(entries, clip_id, done, failed)
        measures = dict.fromkeys(MEASURES, float("nan"))
        if status == "ok":
            detection = store.read_entry(entries.detect, clip=clip_id, name="detection")
            measures = clip_measures(
                store.read_entry(entries.landmarks, clip=clip_id, name="quality"),
                store.read_entry(entries.landmarks, clip=clip_id, name="landmarks_raw"),
                store.read_entry(entries.align, clip=clip_id, name="landmarks"),
                float(detection[0]),
                reference,
            )
        score, weakest = combine(measures)
        if status == "ok" and score < threshold:
            status = "flagged"
        apex_used = used_apex.get(clip_id) if entries.image is not None else None
        rows.append(
            {
                "clip_id": clip_id,
                "subject": str(row.get("subject", "")),
                "label": _label_of(row),
                "action_units": "" if row.get("action_units") is None else str(row.get("action_units")),
                "status": status,
                "score": score,
                "weakest": weakest,
                **measures,
                "n_frames": len(row.get("frame_paths") or []),
                "apex_annotated": annotated_apex_position(row),
                "apex_used": apex_used,
                "failed_stage": failed_stage,
                "error": error,
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in TABLE_COLUMNS if c != "rank"])
    for column in ("apex_annotated", "apex_used"):
        table[column] = table[column].astype("Int64")
    return sort_worst_first(table)


def _used_apex(store: FeatureStore, image: Entry | None) -> dict[str, int]:
    """Clip id -> apex position the image input used (clips without one, or not written, are left out)."""
    if image is None or "apex" not in image.outputs:
        return {}
    apex = store.read_entry(image, name="apex", allow_partial=True)
    mask = store.done_mask(image)
    return {c: int(apex[i, 0]) for i, c in enumerate(image.clip_ids) if mask[i] and int(apex[i, 0]) >= 0}


def sort_worst_first(table: pd.DataFrame) -> pd.DataFrame:
    """Failed, then missing, then by ascending score (ties by clip id); adds a 1-based ``rank`` column."""
    order = table.assign(
        _status=table["status"].map({s: i for i, s in enumerate(STATUS_ORDER)}),
        _score=table["score"].fillna(-1.0),
    ).sort_values(["_status", "_score", "clip_id"], kind="stable")
    out = order.drop(columns=["_status", "_score"]).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def write_qc_csv(table: pd.DataFrame, path: Any) -> None:
    """Write the table as CSV (worst first; scores with 4 decimals; missing values empty)."""
    table.to_csv(path, index=False, float_format="%.4f", lineterminator="\n")


def summarize_quality(
    store: FeatureStore,
    dataset: str,
    threshold: float = QC_THRESHOLD,
    keys: Mapping[str, str] | None = None,
) -> str | None:
    """One line for the end of a preprocess run: how many clips fall below the QC threshold (None when the
    dataset has no face stages to score, or when they are ambiguous and ``keys`` does not pick them)."""
    try:
        table = qc_table(store, dataset, threshold=threshold, keys=keys, image="none")
    except (EntryNotFoundError, StoreError):
        return None
    flagged = table[table.status == "flagged"]
    scored = int(table.status.isin(["flagged", "ok"]).sum())
    line = f"quality: {len(flagged)} of {scored} scored clips below the QC threshold {threshold:g}"
    if len(flagged):
        worst = flagged.iloc[0]
        line += f" (worst {worst.clip_id}: {worst.score:.2f}, {worst.weakest})"
    return line + f"; see mer-cli qc STORE {dataset} --out DIR"


def flagged_clips(table: pd.DataFrame, statuses: Sequence[str] = ("failed", "flagged")) -> list[str]:
    """Clip ids of the table with one of ``statuses`` (for dropping or re-annotating clips by rule)."""
    return [str(c) for c in table.loc[table.status.isin(list(statuses)), "clip_id"]]
