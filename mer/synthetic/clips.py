"""Synthetic micro-expression dataset: real face photos with subtle, AU-shaped motion and exact ground truth.

Each subject is one of the base photos (``photos.PHOTOS``) placed in the frame with its own scale,
rotation, mirroring, brightness, contrast, gamma and colour balance. Each clip moves the subject's base
image with an action-unit displacement field (:mod:`mer.synthetic.motion`) along an onset -> apex -> offset profile,
adds a slight smooth head drift and per-frame sensor noise, and is written in the project's generic folder
layout::

    DIR/README.txt
    DIR/annotations.csv                       subject, clip, onset, apex, offset, action_units, emotion
    DIR/<subject>/<clip>/img00001.jpg ...     frame numbers are 1-based
    DIR/<subject>/<clip>/truth.npz            ground truth (plain arrays, see TRUTH_FIELDS)

The same seed gives identical files (frames, CSV, README and truth are byte-identical).
"""

from __future__ import annotations

import csv
import functools
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer.synthetic import motion as sm
from mer.synthetic.photos import PHOTOS, photo_face

GENERATOR_VERSION = "1"
"""Bumped whenever the same seed would give different files."""

README_MARKER = "mer synthetic micro-expression dataset"
"""First line of README.txt; a folder starting with it may be replaced by a new run."""

REFERENCE_SIZE = (640, 480)
REFERENCE_FACE_WIDTH = 256.0
"""Face width (landmarks 0 to 16, px) in a 640×480 frame; scales with min(W/640, H/480)."""

MAX_PEAK_PX = 2.0
"""Largest displacement on a face REFERENCE_FACE_WIDTH wide (scaled with the face width)."""

JPEG_QUALITY = 95

CLASS_AUS: dict[int, dict[str, tuple[tuple[int, ...], ...]]] = {
    3: {
        "positive": ((12,), (6, 12)),
        "negative": ((4, 15), (4,), (15,)),
        "surprise": ((1, 2, 26), (1, 2)),
    },
    5: {
        "happiness": ((12,), (6, 12)),
        "disgust": ((9,), (10,), (9, 10)),
        "repression": ((14,), (17,), (14, 17)),
        "surprise": ((1, 2, 26), (1, 2)),
        "others": ((7,), (4, 7)),
    },
}
"""Emotion names per class count and the AU combinations a clip of that emotion may show (data)."""

CSV_COLUMNS: tuple[str, ...] = ("subject", "clip", "onset", "apex", "offset", "action_units", "emotion")

TRUTH_FIELDS: dict[str, str] = {
    "onset": "onset frame number (1-based, as in the file names)",
    "apex": "apex frame number",
    "offset": "offset frame number",
    "amplitude": "T float64: motion amplitude per frame, 0 (neutral) .. 1 (apex)",
    "drift": "T×2 float32: head translation of each frame relative to frame 1, px (x, y)",
    "flow_onset_apex": "H×W×2 float32: exact forward flow onset -> apex (u, v) px",
    "face_mask": "H×W bool: face region in frame 1 (jaw, brows and forehead hull)",
    "landmarks": "T×68×2 float32: true dlib-68 landmark positions in every frame",
    "face_box": "4 float32: x0, y0, x1, y1 of the face box in frame 1 (half-open)",
    "face_width": "float64: face width in px (landmarks 0 to 16, frame 1)",
    "peak_px": "float64: largest AU displacement of the clip (at the apex), px",
    "noise_sigma": "float64: std of the per-frame Gaussian sensor noise, grey levels",
    "bump_centres": "K×2 float64: centres of the Gaussian bumps of the AU field, px",
    "bump_vectors": "K×2 float64: displacement vector of each bump at its centre, px at amplitude 1",
    "bump_sigmas": "K float64: bump widths, px (cut off at 4 sigma, shifted to stay continuous)",
    "emotion": "0-d str",
    "action_units": "0-d str, e.g. '1+2+26'",
}


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate_synthetic`` wrote: folder, clip and frame counts, class count, clips per emotion."""

    out: Path
    n_clips: int
    n_frames: int
    classes: int
    emotions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """A subject's base image (float32 RGB 0..255, frame-sized) with its face geometry in that frame."""

    name: str
    photo: str
    mirrored: bool
    base: np.ndarray
    landmarks: np.ndarray
    face_box: np.ndarray
    face_mask: np.ndarray

    @property
    def face_width(self) -> float:
        """Face width in px: distance between landmarks 0 and 16."""
        return float(np.linalg.norm(self.landmarks[16] - self.landmarks[0]))


@dataclass(frozen=True)
class ClipPlan:
    """Everything random about one clip, drawn before rendering."""

    subject: str
    name: str
    emotion: str
    aus: tuple[int, ...]
    n_frames: int
    onset: int
    apex: int
    offset: int
    amplitude: np.ndarray
    drift: np.ndarray
    bumps: sm.Bumps
    peak_px: float
    noise_sigma: float
    noise_seed: np.random.SeedSequence

    @property
    def au_string(self) -> str:
        """Action units as in the annotation sheets, e.g. '1+2+26'."""
        return "+".join(str(a) for a in self.aus)


def _seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


def subject_names(subjects: int) -> list[str]:
    """Subject folder names: s01, s02, … (wider when there are more than 99)."""
    width = max(2, len(str(subjects)))
    return [f"s{i + 1:0{width}d}" for i in range(subjects)]


def face_scale(frame_size: tuple[int, int]) -> float:
    """Target face width relative to REFERENCE_FACE_WIDTH for a (width, height) frame."""
    return min(frame_size[0] / REFERENCE_SIZE[0], frame_size[1] / REFERENCE_SIZE[1])


def _forehead(landmarks: np.ndarray) -> np.ndarray:
    up, _, fw = sm.face_axes(landmarks)
    return landmarks[17:27] + 0.25 * fw * up


def _affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:2, :2].T + m[:2, 2]


def make_subject(index: int, name: str, frame_size: tuple[int, int], seed: int) -> Subject:
    """Build subject ``index``'s base image and face geometry (photos alternate; half are mirrored)."""
    rng = np.random.default_rng(_seq(seed, index, 0))
    width, height = frame_size
    mirrored = (index + index // 2) % 2 == 1
    photo = photo_face(PHOTOS[index % len(PHOTOS)], mirrored)
    lm = photo.landmarks.astype(np.float64)
    x0, y0, x1, y1 = photo.box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])

    target_fw = REFERENCE_FACE_WIDTH * face_scale(frame_size) * rng.uniform(0.92, 1.08)
    scale = target_fw / float(np.linalg.norm(lm[16] - lm[0]))
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1.0]])
    rot = np.array(
        [
            [scale * np.cos(angle), -scale * np.sin(angle), 0],
            [scale * np.sin(angle), scale * np.cos(angle), 0],
            [0, 0, 1.0],
        ]
    )
    m = rot @ to_origin  # photo -> frame, face centre at the origin
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)
    extent = np.vstack([_affine(lm, m), _affine(_forehead(lm), m), _affine(corners, m)])
    margin = 0.04 * min(width, height)
    lo = margin - extent.min(axis=0)
    hi = np.array([width, height]) - margin - extent.max(axis=0)
    if np.any(lo > hi):
        raise ValueError(f"frame size {frame_size} is too small to hold the face with a margin")
    jitter = 0.06 * np.array([width, height]) * rng.uniform(-1.0, 1.0, 2)
    pos = np.clip(np.array([width, height]) / 2 + jitter, lo, hi)
    m = np.array([[1, 0, pos[0]], [0, 1, pos[1]], [0, 0, 1.0]]) @ m

    base = (
        cv2.warpAffine(
            photo.image, m[:2], (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
        ).astype(np.float32)
        / 255.0
    )
    gains = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-0.08, 0.08)
    gamma = rng.uniform(0.75, 1.35)
    base = np.clip((base * gains - 0.5) * np.float32(contrast) + np.float32(0.5 + brightness), 0.0, 1.0)
    base = (np.power(base, np.float32(gamma)) * 255.0).astype(np.float32)

    landmarks = _affine(lm, m)
    box_pts = _affine(corners, m)
    face_box = np.concatenate([box_pts.min(axis=0), box_pts.max(axis=0)]).astype(np.float32)
    hull_pts = np.vstack([landmarks[:17], _forehead(landmarks)])
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(hull_pts).astype(np.int32)), 1)
    return Subject(
        name=name,
        photo=photo.name,
        mirrored=mirrored,
        base=base,
        landmarks=landmarks.astype(np.float32),
        face_box=face_box,
        face_mask=mask.astype(bool),
    )


def plan_timing(rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Draw (n_frames, onset, apex, offset): 30–80 frames, ≥3 neutral frames each side, apex off-centre."""
    n = int(rng.integers(30, 81))
    pre = int(rng.integers(3, n // 5 + 1))
    post = int(rng.integers(3, n // 5 + 1))
    onset, offset = pre + 1, n - post
    rise = int(round(rng.uniform(0.2, 0.6) * (offset - onset)))
    apex = onset + min(max(rise, 1), offset - onset - 1)
    return n, onset, apex, offset


def class_schedule(index: int, clips: int, classes: int, rng: np.random.Generator) -> list[int]:
    """Class index of each clip of subject ``index``: a rotating, shuffled mix (balanced over the dataset)."""
    order = [(index + c) % classes for c in range(clips)]
    return [order[i] for i in rng.permutation(clips)]


def plan_clips(index: int, subject: Subject, clips: int, classes: int, seed: int) -> list[ClipPlan]:
    """Draw the plans of subject ``index``'s clips (emotion, AUs, timing, drift, field, noise)."""
    emotions = list(CLASS_AUS[classes])
    schedule = class_schedule(index, clips, classes, np.random.default_rng(_seq(seed, index, 1)))
    shape = subject.base.shape[:2]
    fw = subject.face_width
    limit = MAX_PEAK_PX * fw / REFERENCE_FACE_WIDTH
    plans = []
    for c, cls in enumerate(schedule):
        clip_seq = _seq(seed, index, 2, c)
        rng = np.random.default_rng(clip_seq)
        emotion = emotions[cls]
        variants = CLASS_AUS[classes][emotion]
        aus = variants[int(rng.integers(len(variants)))]
        n, onset, apex, offset = plan_timing(rng)
        peak = float(rng.uniform(0.6, 0.95) * limit)
        bumps = sm.normalise_peak(sm.au_bumps(aus, subject.landmarks, rng), shape, peak)
        drift = sm.smooth_drift(n, rng.uniform(0.3, 1.0) * fw / REFERENCE_FACE_WIDTH, rng)
        plans.append(
            ClipPlan(
                subject=subject.name,
                name=f"{subject.name}_c{c + 1:02d}",
                emotion=emotion,
                aus=aus,
                n_frames=n,
                onset=onset,
                apex=apex,
                offset=offset,
                amplitude=sm.amplitude_profile(n, onset, apex, offset),
                drift=drift,
                bumps=bumps,
                peak_px=peak,
                noise_sigma=float(rng.uniform(1.0, 2.5)),
                noise_seed=clip_seq.spawn(1)[0],
            )
        )
    return plans


@functools.cache
def _gauss_table() -> np.ndarray:
    from scipy.special import ndtri

    return ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


def render_frames(subject: Subject, plan: ClipPlan, noise: bool = True) -> Iterator[np.ndarray]:
    """Yield the clip's frames (RGB uint8 H×W×3), with per-frame sensor noise unless ``noise`` is False.

    Each frame is the base image translated by the drift (bicubic), re-rendered inside the AU field's
    support with the inverse warp of ``motion.solve_sampling`` (same bicubic sampling, so the two
    agree exactly where the field is zero).
    """
    height, width = shape = subject.base.shape[:2]
    au_field = sm.field_grid(plan.bumps, shape)
    reach = int(np.ceil(plan.peak_px + np.abs(plan.drift).max())) + 2
    x0, y0, x1, y1 = sm.field_support(plan.bumps, shape, pad=reach)
    box_grid = sm.pixel_grid(shape)[y0:y1, x0:x1]
    rng = np.random.default_rng(plan.noise_seed)
    table = _gauss_table() * np.float32(plan.noise_sigma)
    previous = None
    for t in range(plan.n_frames):
        drift = plan.drift[t].astype(np.float32)
        shift = np.array([[1, 0, -drift[0]], [0, 1, -drift[1]]], dtype=np.float64)
        frame = cv2.warpAffine(
            subject.base,
            shift,
            (width, height),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        amplitude = float(plan.amplitude[t])
        previous = None if amplitude == 0 else sm.solve_sampling(box_grid - drift, au_field, amplitude, previous)
        if previous is not None:
            frame[y0:y1, x0:x1] = cv2.remap(
                subject.base, previous, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
            )
        noise_px = table[rng.integers(0, 65536, frame.shape, dtype=np.uint16)] if noise else 0.0
        yield cv2.add(frame, noise_px, dtype=cv2.CV_8U)  # rounds to nearest and saturates


def clip_truth(subject: Subject, plan: ClipPlan) -> dict[str, np.ndarray]:
    """The ground-truth arrays of a clip (see TRUTH_FIELDS)."""
    shape = subject.base.shape[:2]
    on, ap = plan.onset - 1, plan.apex - 1
    flow = sm.exact_flow(plan.bumps, shape, plan.amplitude[on], plan.amplitude[ap], plan.drift[on], plan.drift[ap])
    return {
        "onset": np.int64(plan.onset),
        "apex": np.int64(plan.apex),
        "offset": np.int64(plan.offset),
        "amplitude": plan.amplitude.astype(np.float64),
        "drift": plan.drift.astype(np.float32),
        "flow_onset_apex": flow,
        "face_mask": subject.face_mask,
        "landmarks": sm.moved_points(plan.bumps, subject.landmarks, plan.amplitude, plan.drift),
        "face_box": subject.face_box,
        "face_width": np.float64(subject.face_width),
        "peak_px": np.float64(plan.peak_px),
        "noise_sigma": np.float64(plan.noise_sigma),
        "bump_centres": plan.bumps.centres,
        "bump_vectors": plan.bumps.vectors,
        "bump_sigmas": plan.bumps.sigmas,
        "emotion": np.array(plan.emotion),
        "action_units": np.array(plan.au_string),
    }


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed .npz with fixed timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def write_clip(clip_dir: Path, subject: Subject, plan: ClipPlan) -> None:
    """Render one clip and write its JPEG frames and truth.npz into ``clip_dir`` (created)."""
    clip_dir.mkdir(parents=True)
    for t, frame in enumerate(render_frames(subject, plan), start=1):
        path = clip_dir / f"img{t:05d}.jpg"
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {path}")
    save_npz(clip_dir / "truth.npz", clip_truth(subject, plan))


def _csv_row(plan: ClipPlan) -> tuple[object, ...]:
    return (plan.subject, plan.name, plan.onset, plan.apex, plan.offset, plan.au_string, plan.emotion)


def _worker_count() -> int:
    """Threads for clip rendering: OpenCV and NumPy release the GIL in the heavy calls."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _readme(subjects: int, clips: int, classes: int, seed: int, frame_size: tuple[int, int]) -> str:
    aus = "\n".join(
        f"  {emo}: " + ", ".join("+".join(map(str, v)) for v in variants)
        for emo, variants in CLASS_AUS[classes].items()
    )
    fields = "\n".join(f"  {k}: {v}" for k, v in TRUTH_FIELDS.items())
    return f"""{README_MARKER}
generator version {GENERATOR_VERSION}; seed {seed}; subjects {subjects}; clips per subject {clips};
classes {classes}; frame size {frame_size[0]}x{frame_size[1]} (width x height)

SYNTHETIC DATA for testing and demonstrating micro-expression pipelines; not a research dataset.
Faces come from two public-domain photos (scikit-image's astronaut, Eileen Collins / NASA; matplotlib's
Grace Hopper sample, US Navy), each subject with its own scale, rotation, mirroring, brightness, contrast,
gamma and colour. Each clip warps the subject's image with smooth action-unit-shaped displacements
(Gaussian bumps on facial landmarks, at most {MAX_PEAK_PX:g} px on a {REFERENCE_FACE_WIDTH:g}-px-wide face)
along an onset -> apex -> offset profile, plus a smooth head drift (< ~1 px) and Gaussian sensor noise.

Layout: <subject>/<clip>/img00001.jpg ... (1-based frame numbers, JPEG quality {JPEG_QUALITY});
annotations.csv with columns {", ".join(CSV_COLUMNS)} (frame numbers as in the file names).
Emotions and the action units their clips show:
{aus}

<subject>/<clip>/truth.npz (numpy, load with allow_pickle=False) holds:
{fields}
"""


def _prepare_target(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder")
        readme = out / "README.txt"
        ours = readme.is_file() and readme.read_text(encoding="utf-8").startswith(README_MARKER)
        if any(out.iterdir()) and not ours:
            raise FileExistsError(f"{out} is not empty and is not a synthetic dataset; choose another folder")


def generate_synthetic(
    out: Path,
    subjects: int = 8,
    clips_per_subject: int = 6,
    classes: int = 3,
    seed: int = 0,
    frame_size: tuple[int, int] = (640, 480),
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic micro-expression dataset with exact ground truth to ``out`` (see module docstring).

    The dataset is built in a temporary sibling folder and moved into place at the end, so an interrupted
    run leaves nothing that looks complete; an existing synthetic dataset at ``out`` is replaced.
    ``progress(done, total)`` is called after each clip.
    """
    if classes not in CLASS_AUS:
        raise ValueError(f"classes must be one of {sorted(CLASS_AUS)}, got {classes}")
    if subjects < 1 or clips_per_subject < 1:
        raise ValueError("subjects and clips_per_subject must be at least 1")
    width, height = (int(v) for v in frame_size)
    if width < 64 or height < 64:
        raise ValueError(f"frame_size must be at least 64x64, got {frame_size}")
    out = Path(out)
    _prepare_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
    total = subjects * clips_per_subject
    rows: list[tuple[object, ...]] = []
    n_frames = 0
    try:
        with ThreadPoolExecutor(max_workers=_worker_count()) as pool:
            try:
                jobs = []
                for index, name in enumerate(subject_names(subjects)):
                    subject = make_subject(index, name, (width, height), seed)
                    for plan in plan_clips(index, subject, clips_per_subject, classes, seed):
                        jobs.append((plan, pool.submit(write_clip, tmp / name / plan.name, subject, plan)))
                for done, (plan, job) in enumerate(jobs, start=1):
                    job.result()
                    n_frames += plan.n_frames
                    rows.append(_csv_row(plan))
                    if progress is not None:
                        progress(done, total)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        with open(tmp / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows(rows)
        (tmp / "README.txt").write_text(
            _readme(subjects, clips_per_subject, classes, seed, (width, height)), encoding="utf-8"
        )
        _prepare_target(out)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    emotions = {emo: sum(1 for r in rows if r[-1] == emo) for emo in CLASS_AUS[classes]}
    return SynthSummary(out=out, n_clips=len(rows), n_frames=n_frames, classes=classes, emotions=emotions)
