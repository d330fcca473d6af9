"""Motion model of the synthetic micro-expressions: action-unit displacement fields, timing and drift.

A clip's motion is ``x -> x + a(t) * D(x) + drift(t)`` applied to the subject's base image, where ``D`` is
a smooth field made of compactly supported Gaussian bumps centred on facial landmarks (one set of bumps
per action unit), ``a(t)`` is the onset -> apex -> offset profile (0 outside, 1 at the apex) and
``drift(t)`` a smooth head translation. Frames are rendered by inverse warping: the pixel at ``x`` shows
the base image at ``p`` with ``p + a D(p) + drift = x``, found by fixed-point iteration (a contraction:
``|a grad D|`` is far below 1 for displacements of 2 px over bumps ~10 px wide). The same field gives the
exact ground-truth flow and landmark positions. Everything here is a pure function on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CUTOFF_SIGMAS = 4.0
"""Bumps are truncated at this many sigmas (shifted so the field stays continuous)."""

_TAIL = float(np.exp(-0.5 * CUTOFF_SIGMAS**2))


@dataclass(frozen=True)
class BumpSpec:
    """One bump of an action unit, in face units (face width = distance of landmarks 0 and 16).

    ``points``: dlib landmark indices whose mean is the bump centre; ``direction``: (outward, up) in face
    axes (outward = away from the face midline, up = chin towards nose bridge); ``sigma`` and ``shift``
    (outward, up) are in face widths; ``weight`` is relative to the other bumps of the unit.
    """

    points: tuple[int, ...]
    direction: tuple[float, float]
    sigma: float = 0.06
    weight: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)


def _pair(left: int, right: int, direction: tuple[float, float], **kw: object) -> tuple[BumpSpec, ...]:
    return (BumpSpec((left,), direction, **kw), BumpSpec((right,), direction, **kw))  # type: ignore[arg-type]


AU_BUMPS: dict[int, tuple[BumpSpec, ...]] = {
    # AU1 inner brow raiser
    1: _pair(21, 22, (0.0, 1.0)) + _pair(20, 23, (0.0, 1.0), weight=0.6),
    # AU2 outer brow raiser
    2: _pair(18, 25, (0.15, 1.0)) + _pair(17, 26, (0.15, 1.0), weight=0.7),
    # AU4 brow lowerer: brows down and together
    4: _pair(21, 22, (-0.6, -1.0)) + _pair(20, 23, (-0.6, -1.0), weight=0.7),
    # AU6 cheek raiser: cheeks below the eyes move up
    6: (
        BumpSpec((40, 41), (0.3, 1.0), sigma=0.07, shift=(0.0, -0.12)),
        BumpSpec((46, 47), (0.3, 1.0), sigma=0.07, shift=(0.0, -0.12)),
    ),
    # AU7 lid tightener: lower lids up
    7: (
        BumpSpec((40, 41), (0.0, 1.0), sigma=0.035),
        BumpSpec((46, 47), (0.0, 1.0), sigma=0.035),
    ),
    # AU9 nose wrinkler: nose wings up and in
    9: _pair(31, 35, (-0.25, 1.0), sigma=0.045) + (BumpSpec((29,), (0.0, 0.6), sigma=0.04, weight=0.5),),
    # AU10 upper lip raiser
    10: _pair(50, 52, (0.0, 1.0), sigma=0.05) + (BumpSpec((51,), (0.0, 1.0), sigma=0.05, weight=0.7),),
    # AU12 lip corner puller: corners up and out
    12: _pair(48, 54, (0.8, 1.0)),
    # AU14 dimpler: corners pulled sideways
    14: _pair(48, 54, (1.0, 0.1), sigma=0.05),
    # AU15 lip corner depressor: corners down
    15: _pair(48, 54, (0.2, -1.0)),
    # AU17 chin raiser: chin boss and lower lip up
    17: (BumpSpec((57,), (0.0, 1.0), weight=0.8), BumpSpec((8,), (0.0, 1.0), sigma=0.08)),
    # AU26 jaw drop: chin and lower lip down
    26: (
        BumpSpec((57,), (0.0, -1.0), sigma=0.08, weight=0.8),
        BumpSpec((8,), (0.0, -1.0), sigma=0.09),
    )
    + _pair(7, 9, (0.0, -1.0), sigma=0.08, weight=0.7),
}
"""Bumps of each supported action unit (data, not code)."""


@dataclass(frozen=True)
class Bumps:
    """A displacement field as concrete bumps in frame pixels: centres K×2, vectors K×2, sigmas K."""

    centres: np.ndarray
    vectors: np.ndarray
    sigmas: np.ndarray

    def scaled(self, factor: float) -> Bumps:
        """The same bumps with every displacement vector multiplied by ``factor``."""
        return Bumps(self.centres, self.vectors * factor, self.sigmas)


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit 'up' (chin -> nose bridge) and 'right' axes of a face and its width (landmarks 0 to 16)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    up = lm[27] - lm[8]
    up /= np.linalg.norm(up)
    right = np.array([-up[1], up[0]])
    return up, right, float(np.linalg.norm(lm[16] - lm[0]))


def au_bumps(aus: tuple[int, ...], landmarks: np.ndarray, rng: np.random.Generator) -> Bumps:
    """Concrete bumps for action units ``aus`` on a face with ``landmarks``, with small random variation.

    Each unit gets a random strength (0.75..1), each bump a side-asymmetry factor (0.85..1) and a centre
    jitter of ~1 % of the face width; the overall scale is set later (see ``normalise_peak``).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    up, right, fw = face_axes(lm)
    mid = lm[27]
    centres, vectors, sigmas = [], [], []
    for au in aus:
        if au not in AU_BUMPS:
            raise ValueError(f"no motion model for AU{au}; supported: {sorted(AU_BUMPS)}")
        strength = rng.uniform(0.75, 1.0)
        for spec in AU_BUMPS[au]:
            base = lm[list(spec.points)].mean(axis=0)
            side = float(np.sign(np.dot(base - mid, right)))
            out = side * right
            centre = base + fw * (spec.shift[0] * out + spec.shift[1] * up) + rng.normal(0.0, 0.01 * fw, 2)
            direction = spec.direction[0] * out + spec.direction[1] * up
            norm = np.linalg.norm(direction)
            direction = direction / norm if norm > 0 else direction
            vectors.append(direction * spec.weight * strength * rng.uniform(0.85, 1.0))
            centres.append(centre)
            sigmas.append(spec.sigma * fw)
    return Bumps(np.array(centres), np.array(vectors), np.array(sigmas))


def _profile(r2: np.ndarray, sigma: float) -> np.ndarray:
    g = (np.exp(-0.5 * r2 / sigma**2) - _TAIL) / (1.0 - _TAIL)
    return np.where(r2 < (CUTOFF_SIGMAS * sigma) ** 2, g, 0.0)


def field_support(bumps: Bumps, shape: tuple[int, int], pad: int = 0) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), half-open and clipped to ``shape`` (H, W), outside which the field is 0."""
    h, w = shape
    reach = CUTOFF_SIGMAS * bumps.sigmas
    x0 = int(np.floor((bumps.centres[:, 0] - reach).min())) - pad
    y0 = int(np.floor((bumps.centres[:, 1] - reach).min())) - pad
    x1 = int(np.ceil((bumps.centres[:, 0] + reach).max())) + 1 + pad
    y1 = int(np.ceil((bumps.centres[:, 1] + reach).max())) + 1 + pad
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def field_at(bumps: Bumps, points: np.ndarray) -> np.ndarray:
    """The displacement field evaluated exactly at ``points`` (…×2, x/y); float64, same leading shape."""
    pts = np.asarray(points, dtype=np.float64)
    out = np.zeros(pts.shape, dtype=np.float64)
    for c, v, s in zip(bumps.centres, bumps.vectors, bumps.sigmas, strict=True):
        r2 = (pts[..., 0] - c[0]) ** 2 + (pts[..., 1] - c[1]) ** 2
        g = _profile(r2, s)
        out[..., 0] += g * v[0]
        out[..., 1] += g * v[1]
    return out


def field_grid(bumps: Bumps, shape: tuple[int, int]) -> np.ndarray:
    """The field sampled at every pixel of an H×W frame: float32 H×W×2 (zero outside the support)."""
    h, w = shape
    out = np.zeros((h, w, 2), dtype=np.float64)
    for c, v, s in zip(bumps.centres, bumps.vectors, bumps.sigmas, strict=True):
        single = Bumps(c[None], v[None], np.array([s]))
        x0, y0, x1, y1 = field_support(single, shape)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        g = _profile((xx - c[0]) ** 2 + (yy - c[1]) ** 2, s)
        out[y0:y1, x0:x1, 0] += g * v[0]
        out[y0:y1, x0:x1, 1] += g * v[1]
    return out.astype(np.float32)


def normalise_peak(bumps: Bumps, shape: tuple[int, int], peak: float) -> Bumps:
    """Rescale ``bumps`` so that the largest displacement on the pixel grid equals ``peak`` px."""
    current = float(np.linalg.norm(field_grid(bumps, shape), axis=2).max())
    if current <= 0:
        raise ValueError("the displacement field is zero inside the frame")
    return bumps.scaled(peak / current)


def amplitude_profile(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Per-frame motion amplitude (float64, length ``n_frames``) for 1-based onset < apex < offset.

    0 up to the onset frame and from the offset frame on, 1 at the apex; sin² ramps in between (smooth, with
    zero slope at onset, apex and offset).
    """
    if not 1 <= onset < apex < offset <= n_frames:
        raise ValueError(f"need 1 <= onset < apex < offset <= n_frames, got {onset, apex, offset, n_frames}")
    n = np.arange(1, n_frames + 1, dtype=np.float64)
    a = np.zeros(n_frames)
    rise = (n > onset) & (n <= apex)
    a[rise] = np.sin(0.5 * np.pi * (n[rise] - onset) / (apex - onset)) ** 2
    fall = (n > apex) & (n < offset)
    a[fall] = np.sin(0.5 * np.pi * (offset - n[fall]) / (offset - apex)) ** 2
    return a


def smooth_drift(n_frames: int, max_px: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth head translation (T×2 float64, px) that starts at 0 and reaches at most ``max_px``."""
    tau = np.linspace(0.0, 1.0, n_frames)
    trend, wobble = rng.normal(size=2), rng.normal(size=2)
    freq, phase = rng.uniform(0.3, 1.2), rng.uniform(0.0, 2 * np.pi)
    d = tau[:, None] * trend + (np.sin(2 * np.pi * freq * tau + phase) - np.sin(phase))[:, None] * wobble
    biggest = float(np.linalg.norm(d, axis=1).max())
    return d * (max_px / biggest) if biggest > 0 else d


def pixel_grid(shape: tuple[int, int]) -> np.ndarray:
    """Pixel centre coordinates of an H×W frame as float32 H×W×2 (x, y)."""
    h, w = shape
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([xx, yy])


def solve_sampling(
    target: np.ndarray,
    field: np.ndarray,
    amplitude: float,
    start: np.ndarray | None = None,
    iterations: int = 12,
    tol: float = 5e-3,
) -> np.ndarray:
    """Solve ``p + amplitude * D(p) = target`` for every position in ``target`` (float32 …×2) by fixed point.

    ``target`` is ``x - drift`` for the pixels to render; ``field`` is ``field_grid``'s output, looked up with
    ``cv2.remap`` (bilinear), which resolves positions to 1/32 px: the iteration stops when the iterates move
    less than ``tol`` px or stop improving, a few thousandths of a pixel from the exact solution (the image
    remap itself is quantised to 1/32 px). ``start`` (e.g. the previous frame's solution) only speeds it up.
    """
    target = np.ascontiguousarray(target, dtype=np.float32)
    p = target.copy() if start is None else start.copy()
    amp = np.float32(amplitude)
    last = np.inf
    for _ in range(iterations):
        d = cv2.remap(field, p, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        d *= amp
        np.subtract(target, d, out=d)
        change = float(np.abs(d - p).max())
        p = d
        if change < tol or change >= last:
            break
        last = change
    return p


def sampling_map(
    grid: np.ndarray,
    field: np.ndarray,
    box: tuple[int, int, int, int],
    amplitude: float,
    drift: np.ndarray,
) -> np.ndarray:
    """Where each pixel of a frame samples the base image (float32 H×W×2, for ``cv2.remap``).

    ``p + amplitude * D(p) + drift = x`` is solved inside ``box`` (the field's support padded by the largest
    displacement, see ``solve_sampling``); outside it ``p = x - drift``.
    """
    out = grid - np.asarray(drift, dtype=np.float32)
    if amplitude != 0:
        x0, y0, x1, y1 = box
        out[y0:y1, x0:x1] = solve_sampling(out[y0:y1, x0:x1], field, amplitude)
    return out


def exact_flow(
    bumps: Bumps,
    shape: tuple[int, int],
    amp_from: float,
    amp_to: float,
    drift_from: np.ndarray,
    drift_to: np.ndarray,
    iterations: int = 50,
    tol: float = 1e-9,
) -> np.ndarray:
    """Exact forward flow (float32 H×W×2, u/v px) from a frame with ``amp_from`` to one with ``amp_to``.

    The first frame shows at ``x`` the base point ``p`` with ``p + amp_from D(p) + drift_from = x``
    (fixed-point iteration on the analytic field); the second frame shows ``p`` at
    ``p + amp_to D(p) + drift_to``; the flow is the difference.
    """
    d_from = np.asarray(drift_from, dtype=np.float64)
    d_to = np.asarray(drift_to, dtype=np.float64)
    flow = np.empty((*shape, 2), dtype=np.float64)
    flow[...] = d_to - d_from
    reach = int(np.ceil(np.abs(d_from).max() + abs(amp_from) * np.abs(bumps.vectors).sum())) + 2
    x0, y0, x1, y1 = field_support(bumps, shape, pad=reach)
    if x1 <= x0 or y1 <= y0:
        return flow.astype(np.float32)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    target = np.dstack([xx, yy]) - d_from
    p = target.copy()
    for _ in range(iterations):
        nxt = target - amp_from * field_at(bumps, p)
        change = float(np.abs(nxt - p).max())
        p = nxt
        if change < tol:
            break
    flow[y0:y1, x0:x1] += (amp_to - amp_from) * field_at(bumps, p)
    return flow.astype(np.float32)


def moved_points(bumps: Bumps, points: np.ndarray, amplitude: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """Positions of base-image ``points`` (N×2) in every frame: T×N×2 float32 (forward mapping)."""
    pts = np.asarray(points, dtype=np.float64)
    d = field_at(bumps, pts)
    amp = np.asarray(amplitude, dtype=np.float64)
    moved = pts[None] + amp[:, None, None] * d[None] + np.asarray(drift, dtype=np.float64)[:, None, :]
    return moved.astype(np.float32)
