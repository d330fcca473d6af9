"""Landmark ROIs and per-ROI flow aggregation (STAG, section 3.2–3.3).

ROI sets are data: TOML files in ``mer/pipeline/flow/roi_sets/`` (``stag6``, ``stag14``, ``stag18``), each ROI a
subset of dlib's 68 landmarks (0-based) and a padding in inter-ocular distances. Box rule::

    iod = |L42 − L39|                       (inner eye corners, as STAG)
    x0 = floor(min x − pad_left·iod)        y0 = floor(min y − pad_top·iod)
    x1 = ceil(max x + pad_right·iod)        y1 = ceil(max y + pad_bottom·iod)

clipped to the image; boxes are half-open (columns ``x0 … x1−1``, rows ``y0 … y1−1``). The sub-window
geometry of ``stag18`` and the reduction to ``stag14`` are this project's definitions (the paper does not
publish them) and are documented in the data files: brows split into consecutive-landmark windows (18) or
outer/inner halves (14); the mouth into corners, upper and lower lip halves; the nose tip into left/right
halves at the columella. Names say image left/right, as the paper does.

Aggregation: in each box keep the ``top_percent`` % pixels of largest flow magnitude (at least one pixel)
and average their (u, v) → one 2-vector per ROI; a box that lies wholly outside the image gives (0, 0).
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from mer.pipeline.flow.fields import as_flow, as_flows

DEFAULT_TOP_PERCENT = 20.0
DEFAULT_LENGTH = 32
IOD_LANDMARKS = (39, 42)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class RoiDef:
    """One ROI: its name, the landmark indices it spans and its pad ``(left, top, right, bottom)`` in iod."""

    name: str
    landmarks: tuple[int, ...]
    pad: tuple[float, float, float, float]


@dataclass(frozen=True)
class RoiSet:
    """A named, versioned, ordered set of ROIs (the order is the channel order of ``roi_flow``)."""

    name: str
    version: int
    description: str
    rois: tuple[RoiDef, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """ROI names in channel order."""
        return tuple(r.name for r in self.rois)

    def __len__(self) -> int:
        return len(self.rois)


def _roi_dir():
    return resources.files("mer.pipeline.flow").joinpath("roi_sets")


def available_roi_sets() -> list[str]:
    """Names of the ROI sets shipped with the package.

    Returns
    -------
    list of str
        Sorted file stems of the TOML files in ``mer/pipeline/flow/roi_sets`` (e.g. ``["stag14", "stag18", "stag6"]``).
    """
    return sorted(p.name[:-5] for p in _roi_dir().iterdir() if p.name.endswith(".toml"))


def _parse(data: dict, origin: str) -> RoiSet:
    try:
        rois = []
        for item in data["roi"]:
            lms = tuple(int(i) for i in item["landmarks"])
            pad = tuple(float(p) for p in item["pad"])
            if not lms or any(not 0 <= i < 68 for i in lms):
                raise ValueError(f"ROI {item['name']!r}: landmark indices must be in 0..67")
            if len(pad) != 4:
                raise ValueError(f"ROI {item['name']!r}: pad needs 4 values (left, top, right, bottom)")
            rois.append(RoiDef(str(item["name"]), lms, pad))  # type: ignore[arg-type]
        names = [r.name for r in rois]
        if len(set(names)) != len(names):
            raise ValueError("duplicate ROI names")
        return RoiSet(str(data["name"]), int(data["version"]), str(data.get("description", "")), tuple(rois))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed ROI set {origin}: {exc}") from exc


@functools.cache
def _load_named(name: str) -> RoiSet:
    f = _roi_dir().joinpath(f"{name}.toml")
    if not f.is_file():
        raise ValueError(f"unknown ROI set {name!r}; available: {available_roi_sets()}")
    return _parse(tomllib.loads(f.read_text(encoding="utf-8")), name)


def load_roi_set(roi_set: str | Path | RoiSet) -> RoiSet:
    """Load a ROI set by name or path.

    Parameters
    ----------
    roi_set : str or pathlib.Path or RoiSet
        A shipped name (``"stag6"``, ``"stag14"``, ``"stag18"``; loaded once per process), a TOML file (a
        ``Path`` or a name ending in ``.toml``) or a ``RoiSet`` (returned as is).

    Returns
    -------
    RoiSet
        The ROIs in channel order.

    Raises
    ------
    ValueError
        If the name is unknown or the file is malformed (landmark outside 0..67, pad without 4 values,
        duplicate names, missing keys).
    OSError
        If a TOML path cannot be read.
    """
    if isinstance(roi_set, RoiSet):
        return roi_set
    if isinstance(roi_set, Path) or str(roi_set).endswith(".toml"):
        path = Path(roi_set)
        return _parse(tomllib.loads(path.read_text(encoding="utf-8")), str(path))
    return _load_named(str(roi_set))


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be 68×2 (x, y), got {lm.shape}")
    return lm


def roi_boxes(
    landmarks: np.ndarray,
    roi_set: str | Path | RoiSet = "stag6",
    image_shape: tuple[int, ...] | None = None,
) -> dict[str, Box]:
    """Integer pixel box of each ROI of a set around a face's landmarks (the box rule of the module docstring).

    Parameters
    ----------
    landmarks : numpy.ndarray
        ``68×2`` dlib landmarks ``(x, y)`` in pixels (0-based columns, rows).
    roi_set : str or pathlib.Path or RoiSet, default "stag6"
        The ROI set (see :func:`load_roi_set`).
    image_shape : tuple of int, optional
        ``(H, W, …)`` of the image; when given, boxes are clipped to it (possibly empty: ``x0 == x1``).

    Returns
    -------
    dict of str to tuple of int
        ``{name: (x0, y0, x1, y1)}`` in the set's order, half-open (columns ``x0 … x1−1``, rows ``y0 … y1−1``);
        draw one with ``cv2.rectangle(img, (x0, y0), (x1 − 1, y1 − 1), …)``.

    Raises
    ------
    ValueError
        If ``landmarks`` is not ``68×2`` or the ROI set is unknown or malformed.
    """
    rs = load_roi_set(roi_set)
    lm = _check_landmarks(landmarks)
    iod = float(np.hypot(*(lm[IOD_LANDMARKS[1]] - lm[IOD_LANDMARKS[0]])))
    boxes: dict[str, Box] = {}
    for roi in rs.rois:
        pts = lm[list(roi.landmarks)]
        (xmin, ymin), (xmax, ymax) = pts.min(axis=0), pts.max(axis=0)
        pl, pt, pr, pb = (p * iod for p in roi.pad)
        x0, y0 = math.floor(xmin - pl), math.floor(ymin - pt)
        x1, y1 = math.ceil(xmax + pr), math.ceil(ymax + pb)
        if image_shape is not None:
            h, w = int(image_shape[0]), int(image_shape[1])
            x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
            y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
            x1, y1 = max(x1, x0), max(y1, y0)
        boxes[roi.name] = (x0, y0, x1, y1)
    return boxes


def _top_mean(patch: np.ndarray, top_percent: float) -> np.ndarray:
    vec = patch.reshape(-1, 2)
    n = len(vec)
    if n == 0:
        return np.zeros(2, dtype=np.float32)
    k = max(1, math.ceil(n * top_percent / 100.0))
    mag2 = np.einsum("ij,ij->i", vec, vec, dtype=np.float64)
    idx = np.arange(n) if k >= n else np.argpartition(-mag2, k - 1)[:k]
    return vec[idx].mean(axis=0, dtype=np.float64).astype(np.float32)


def roi_flow(
    flow: np.ndarray,
    landmarks: np.ndarray,
    roi_set: str | Path | RoiSet = "stag6",
    top_percent: float = DEFAULT_TOP_PERCENT,
) -> np.ndarray:
    """Dominant motion of each ROI: the mean flow of its ``top_percent`` % pixels of largest magnitude (STAG eq. 9–11).

    Parameters
    ----------
    flow : numpy.ndarray
        ``H×W×2`` field ``(u, v)`` in pixels.
    landmarks : numpy.ndarray
        ``68×2`` landmarks ``(x, y)`` in pixels of the same frame as ``flow``.
    roi_set : str or pathlib.Path or RoiSet, default "stag6"
        The ROI set (see :func:`load_roi_set`).
    top_percent : float, default 20.0
        Share of each box's pixels kept, in percent, in ``(0, 100]`` (at least one pixel).

    Returns
    -------
    numpy.ndarray
        float32 ``R×2``: mean ``(u, v)`` in pixels per ROI, in the set's order; ``(0, 0)`` for a box wholly
        outside the image.

    Raises
    ------
    ValueError
        If ``flow`` is not ``H×W×2``, ``landmarks`` not ``68×2``, ``top_percent`` outside ``(0, 100]``, or the
        ROI set is unknown or malformed.
    """
    flow = as_flow(flow)
    if not 0 < top_percent <= 100:
        raise ValueError(f"top_percent must be in (0, 100], got {top_percent}")
    rs = load_roi_set(roi_set)
    boxes = roi_boxes(landmarks, rs, flow.shape)
    out = np.empty((len(rs), 2), dtype=np.float32)
    for r, roi in enumerate(rs.rois):
        x0, y0, x1, y1 = boxes[roi.name]
        out[r] = _top_mean(flow[y0:y1, x0:x1], top_percent)
    return out


def resample_time(x: np.ndarray, length: int) -> np.ndarray:
    """Linearly resample the first (time) axis of an array, first and last samples kept.

    Parameters
    ----------
    x : numpy.ndarray
        ``N×…`` array, ``N >= 1`` samples along axis 0, any real dtype.
    length : int
        Number of output samples, ``>= 1``.

    Returns
    -------
    numpy.ndarray
        float32 ``length×…``: sample ``k`` at position ``k·(N−1)/(length−1)`` of the input, linearly
        interpolated; a single input sample is repeated.

    Raises
    ------
    ValueError
        If ``x`` is empty or ``length < 1``.
    """
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if n == 0:
        raise ValueError("cannot resample an empty sequence")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if n == 1:
        return np.repeat(x, length, axis=0)
    pos = np.linspace(0.0, n - 1, length)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    w = (pos - i0).astype(np.float32).reshape((-1,) + (1,) * (x.ndim - 1))
    return ((1.0 - w) * x[i0] + w * x[i0 + 1]).astype(np.float32)


def roi_sequence(
    flows: np.ndarray,
    landmarks_per_frame: np.ndarray,
    roi_set: str | Path | RoiSet = "stag6",
    length: int = DEFAULT_LENGTH,
    top_percent: float = DEFAULT_TOP_PERCENT,
) -> np.ndarray:
    """STAG's input: the ROI motion of each flow of a clip (:func:`roi_flow`), resampled to ``length`` steps.

    Parameters
    ----------
    flows : numpy.ndarray
        ``P×H×W×2`` fields ``(u, v)`` in pixels, ``P >= 1`` (usually consecutive pairs ``i → i+1``).
    landmarks_per_frame : numpy.ndarray
        ``F×68×2`` landmarks ``(x, y)`` in pixels, ``F >= P``: flow ``i`` is aggregated with the boxes of
        ``landmarks_per_frame[i]`` (the source frame of pair ``i → i+1``); a single ``68×2`` (or ``1×68×2``)
        array serves every flow.
    roi_set : str or pathlib.Path or RoiSet, default "stag6"
        The ROI set (see :func:`load_roi_set`).
    length : int, default 32
        Time steps of the output (linear interpolation, first and last kept; see :func:`resample_time`).
    top_percent : float, default 20.0
        Share of each box's pixels kept, in percent (see :func:`roi_flow`).

    Returns
    -------
    numpy.ndarray
        float32 ``length×R×2``, ``(u, v)`` in pixels per step and ROI.

    Raises
    ------
    ValueError
        If ``flows`` is not ``P×H×W×2`` with ``P >= 1``, there are fewer landmark sets than flows, or an
        argument of :func:`roi_flow` is invalid.
    """
    flows = as_flows(flows)
    if len(flows) == 0:
        raise ValueError(f"flows must be P×H×W×2 with P >= 1, got {flows.shape}")
    lms = np.asarray(landmarks_per_frame, dtype=np.float32)
    if lms.ndim == 2:
        lms = lms[None]
    if len(lms) != 1 and len(lms) < len(flows):
        raise ValueError(f"{len(lms)} landmark sets for {len(flows)} flows")
    rs = load_roi_set(roi_set)
    seq = np.stack([roi_flow(f, lms[0 if len(lms) == 1 else i], rs, top_percent) for i, f in enumerate(flows)])
    return resample_time(seq, length)


def flow_motion(flows: np.ndarray, remove_global: bool = False, top_percent: float = 100.0) -> np.ndarray:
    """Motion score of each flow field: the mean vector length of its ``top_percent`` % strongest pixels.

    With ``remove_global`` this is the project's one measure of local motion: the apex detector
    (:func:`mer.pipeline.temporal.apex.motion_curve`) uses it with ``top_percent`` 20.

    Parameters
    ----------
    flows : numpy.ndarray
        ``P×H×W×2`` fields ``(u, v)`` in pixels.
    remove_global : bool, default False
        First subtract each field's median vector, so that head drift (global) does not count and facial
        movements (local) do.
    top_percent : float, default 100
        Share of the strongest pixels averaged, in percent (at least one pixel; 100 = every pixel), as
        :func:`roi_flow` keeps per ROI.

    Returns
    -------
    numpy.ndarray
        float64 ``P``: mean ``|(u, v)|`` over the kept pixels of each field, in pixels.

    Raises
    ------
    ValueError
        If ``flows`` is not ``P×H×W×2`` or ``top_percent`` is outside (0, 100].
    """
    flows = as_flows(flows)
    if not 0 < top_percent <= 100:
        raise ValueError(f"top_percent must be in (0, 100], got {top_percent}")
    if remove_global:
        flows = flows - np.median(flows.reshape(len(flows), -1, 2), axis=1)[:, None, None, :]
    magnitude = np.sqrt(np.einsum("phwc,phwc->phw", flows, flows))
    if top_percent >= 100:
        return magnitude.mean(axis=(1, 2), dtype=np.float64)
    magnitude = magnitude.reshape(len(flows), -1)
    n = magnitude.shape[1]
    k = max(1, math.ceil(n * top_percent / 100.0))
    return np.partition(magnitude, n - k, axis=1)[:, n - k :].mean(axis=1, dtype=np.float64)


def top_k_frames(flows: np.ndarray, k: int, remove_global: bool = False) -> np.ndarray:
    """The ``k`` flows of largest motion (:func:`flow_motion`), in time order.

    Parameters
    ----------
    flows : numpy.ndarray
        ``P×H×W×2`` fields ``(u, v)`` in pixels.
    k : int
        How many to keep, ``>= 1``; ``k >= P`` keeps every index.
    remove_global : bool, default False
        Rank by local motion (each field's median vector removed, see :func:`flow_motion`).

    Returns
    -------
    numpy.ndarray
        int64, ``min(k, P)`` 0-based indices into ``flows``, ascending; ties go to the earlier field.

    Raises
    ------
    ValueError
        If ``k < 1`` or ``flows`` is not ``P×H×W×2``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    motion = flow_motion(flows, remove_global)
    order = np.argsort(-motion, kind="stable")[:k]
    return np.sort(order).astype(np.int64)
