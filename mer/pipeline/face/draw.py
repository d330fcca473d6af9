"""A figure of one face-stage result: the frame with its overlays beside the aligned crop.

Left panel: the frame with the 68 landmarks (green dots), the detection box (yellow), the outline of the
aligned crop (cyan, when the frame->aligned transform is given) and ROI boxes (magenta, labelled).
Right panel: the aligned frame, scaled to the frame's height, with aligned landmarks and ROIs when given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

GREEN = (40, 220, 40)
YELLOW = (250, 220, 0)
CYAN = (0, 220, 250)
MAGENTA = (240, 40, 240)

RoiBox = tuple[float, float, float, float]


def _rgb(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"an image must be H×W or H×W×3, got shape {a.shape}")
    return np.ascontiguousarray(a).copy()


def _points(img: np.ndarray, pts: np.ndarray, radius: int) -> None:
    import cv2

    for x, y in np.asarray(pts, dtype=np.float64).reshape(-1, 2):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(img, (int(round(x)), int(round(y))), radius, GREEN, -1, cv2.LINE_8)


def _polygon(img: np.ndarray, corners: np.ndarray, colour: tuple[int, int, int], thick: int) -> None:
    import cv2

    poly = np.round(np.asarray(corners, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [poly], True, colour, thick, cv2.LINE_8)


def _box_corners(box: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _label(img: np.ndarray, text: str, at: np.ndarray, scale: float, thick: int) -> None:
    import cv2

    x, y = int(round(at[0])), int(round(at[1])) - 2
    cv2.putText(img, text, (x, max(y, 8)), cv2.FONT_HERSHEY_SIMPLEX, scale, MAGENTA, thick, cv2.LINE_AA)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def draw_face_figure(
    frame: np.ndarray,
    landmarks: np.ndarray,
    box: Sequence[float],
    aligned_frame: np.ndarray,
    rois: Mapping[str, RoiBox] | None = None,
    *,
    transform: np.ndarray | None = None,
    aligned_landmarks: np.ndarray | None = None,
    rois_space: str = "frame",
) -> np.ndarray:
    """Draw landmarks, box, crop outline and ROIs on ``frame`` and put ``aligned_frame`` beside it.

    Parameters
    ----------
    frame : ndarray, H×W×3 or H×W uint8
        The video frame (not modified).
    landmarks : ndarray, 68×2
        Landmarks (x, y) in frame pixels (green dots).
    box : (x0, y0, x1, y1)
        Detection box in frame pixels (yellow).
    aligned_frame : ndarray, S×S×3 or S×S uint8
        The aligned crop, shown scaled to height H.
    rois : mapping of str to (x0, y0, x1, y1), optional
        Named boxes (magenta, labelled) in frame pixels (``rois_space="frame"``) or aligned pixels
        (``"aligned"``: drawn on the aligned panel, and mapped onto the frame when ``transform`` is given).
    transform : ndarray, 2×3, optional
        Frame → aligned pixels; needed for the crop outline (cyan) and for mapping ROIs between the panels.
    aligned_landmarks : ndarray, 68×2, optional
        Landmarks in aligned pixels, drawn on the aligned panel.
    rois_space : {"frame", "aligned"}
        The coordinates of ``rois``.

    Returns
    -------
    ndarray, H×(W + gap + H)×3 uint8 (a square crop)
        The RGB figure: the annotated frame, a white gap, the annotated aligned panel.

    Raises
    ------
    ValueError
        Naming the value of an unknown ``rois_space``, or the dtype or shape of a ``frame``/``aligned_frame`` that
        is not uint8 H×W, H×W×1 or H×W×3.
    """
    import cv2

    if rois_space not in ("frame", "aligned"):
        raise ValueError(f"rois_space must be 'frame' or 'aligned', got {rois_space!r}")
    left = _rgb(frame)
    right = _rgb(aligned_frame)
    h, w = left.shape[:2]
    thick = max(1, int(round(min(h, w) / 320)))
    font = 0.35 * thick
    m = None if transform is None else np.asarray(transform, dtype=np.float64).reshape(2, 3)
    inv = None if m is None else cv2.invertAffineTransform(m)

    _points(left, landmarks, max(1, thick))
    _polygon(left, _box_corners(box), YELLOW, thick)
    if inv is not None:
        s = right.shape[0]
        _polygon(left, _apply(inv, _box_corners((-0.5, -0.5, s - 0.5, s - 0.5))), CYAN, thick)

    scale = h / right.shape[0]
    rw = max(1, int(round(right.shape[1] * scale)))
    panel = cv2.resize(right, (rw, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    to_panel = np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5]])
    if aligned_landmarks is not None:
        _points(panel, _apply(to_panel, np.asarray(aligned_landmarks, dtype=np.float64)), max(1, thick))

    for name, roi in (rois or {}).items():
        corners = _box_corners(roi)
        if rois_space == "frame":
            _polygon(left, corners, MAGENTA, thick)
            _label(left, name, corners[0], font, thick)
            if m is not None:
                _polygon(panel, _apply(to_panel, _apply(m, corners)), MAGENTA, thick)
        else:
            pc = _apply(to_panel, corners)
            _polygon(panel, pc, MAGENTA, thick)
            _label(panel, name, pc[0], font, thick)
            if inv is not None:
                _polygon(left, _apply(inv, corners), MAGENTA, thick)

    gap = np.full((h, max(4, 2 * thick), 3), 255, dtype=np.uint8)
    return np.concatenate([left, gap, panel], axis=1)
