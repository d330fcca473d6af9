"""The QC gallery of a dataset: a static, self-contained HTML page (``index.html``), small thumbnails next to
it (``thumbs/``), the scores as ``qc.csv`` and the overview figure ``overview.png``.

The page needs no server and nothing from the network: open it from a file or a shared folder. One row per
clip, worst first (see :mod:`mer.report.qc_scores`): onset, apex and offset frames with landmarks, detection
box and crop outline beside the aligned face; the stored image input (MESTI by default); the landmark-quality
curve with the annotated (blue) and used (orange, dashed) apex; labels, AUs and the measures. Images load
lazily, so thousands of rows stay fast; plain inline JavaScript filters by subject, label and status (and
keeps the filter in the address, ``index.html#status=flagged&subject=s01``). All text from the data is
HTML-escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.pipeline.frames_io import FrameError, read_frame
from mer.report.qc_figures import (
    THUMB_HEIGHT,
    face_panel,
    frame_thumbnail,
    image_thumbnail,
    overview_figure,
    save_jpeg,
    strip,
)
from mer.report.qc_scores import MEASURES, QC_THRESHOLD, QCEntries, qc_table, resolve_entries, write_qc_csv
from mer.store import FeatureStore

PAGE = "index.html"
CSV = "qc.csv"
OVERVIEW = "overview.png"
THUMBS = "thumbs"
CURVE_SIZE = (180, 56)


@dataclass
class QCReport:
    """What ``write_qc_report`` wrote: the table (worst first) and the paths of the page, CSV and overview."""

    table: pd.DataFrame
    page: Path
    csv: Path
    overview: Path

    @property
    def counts(self) -> dict[str, int]:
        return {s: int((self.table.status == s).sum()) for s in ("failed", "missing", "flagged", "ok")}


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included, so it is safe inside attributes too)."""
    return html.escape("" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value), True)


# ------------------------------------------------------------------------------------------------- curve
def quality_svg(
    quality: np.ndarray,
    apex_annotated: int | None,
    apex_used: int | None,
    threshold: float = MEASURES["landmark_quality"].limit,
    size: tuple[int, int] = CURVE_SIZE,
) -> str:
    """Inline SVG of the per-frame landmark quality (0 bottom, 1 top) with the quality limit (grey dashed),
    the annotated apex (blue) and the used apex (orange dashed); the lowest frame is marked red."""
    w, h = size
    q = np.clip(np.nan_to_num(np.asarray(quality, dtype=np.float64), nan=0.0), 0.0, 1.0)
    n = len(q)

    def x(t: float) -> float:
        return 2 + (w - 4) * (t / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return 2 + (h - 4) * (1.0 - v)

    step = max(1, int(np.ceil(n / 200)))  # at most ~200 points per curve
    idx = sorted(set(range(0, n, step)) | {n - 1, int(np.argmin(q))}) if n else []
    points = " ".join(f"{x(t):.1f},{y(q[t]):.1f}" for t in idx)
    parts = [
        f'<svg class="curve" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f"<title>landmark quality per frame (min {q.min():.2f} at frame {int(np.argmin(q))})</title>" if n else "",
        f'<rect x="0.5" y="0.5" width="{w - 1}" height="{h - 1}" fill="#fafafa" stroke="#ccc"/>',
        f'<line x1="2" x2="{w - 2}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="#999" '
        'stroke-dasharray="3,2"/>',
    ]
    if apex_annotated is not None:
        parts.append(
            f'<line x1="{x(apex_annotated):.1f}" x2="{x(apex_annotated):.1f}" y1="2" y2="{h - 2}" '
            'stroke="#2c6fbb" stroke-width="1.5"/>'
        )
    if apex_used is not None:
        parts.append(
            f'<line x1="{x(apex_used):.1f}" x2="{x(apex_used):.1f}" y1="2" y2="{h - 2}" '
            'stroke="#e67e22" stroke-width="1.5" stroke-dasharray="3,2"/>'
        )
    if n:
        parts.append(f'<polyline fill="none" stroke="#222" stroke-width="1.2" points="{points}"/>')
        t_min = int(np.argmin(q))
        parts.append(f'<circle cx="{x(t_min):.1f}" cy="{y(q[t_min]):.1f}" r="2.5" fill="#c0392b"/>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------- thumbnails
def _source_frame(row: Mapping[str, Any], position: int) -> np.ndarray | None:
    paths = row.get("frame_paths") or []
    if not 0 <= position < len(paths):
        return None
    try:
        return read_frame(paths[position])
    except FrameError:
        return None


@dataclass
class ClipPictures:
    """Relative paths of a clip's thumbnails (None when there is nothing to show) and its quality curve."""

    faces: str | None = None
    faces_size: tuple[int, int] = (0, 0)
    image: str | None = None
    curve: str = ""
    positions: tuple[int, ...] = ()


def clip_pictures(
    store: FeatureStore,
    entries: QCEntries,
    row: Mapping[str, Any],
    qc: Mapping[str, Any],
    out_dir: Path,
    stem: str,
    image_done: bool,
) -> ClipPictures:
    """Write one clip's thumbnails under ``out_dir/thumbs`` and draw its quality curve (``image_done``: the image
    input holds this clip)."""
    clip_id = str(row["clip_id"])
    pics = ClipPictures()
    thumbs = out_dir / THUMBS
    apex_annotated = None if pd.isna(qc["apex_annotated"]) else int(qc["apex_annotated"])
    apex_used = None if pd.isna(qc["apex_used"]) else int(qc["apex_used"])
    if qc["status"] in ("ok", "flagged"):
        quality = store.read_entry(entries.landmarks, clip=clip_id, name="quality")
        pics.curve = quality_svg(quality, apex_annotated, apex_used)
        aligned = (  # a scored clip is written in every stage of the chain
            store.read_entry(entries.equalize, clip=clip_id)
            if entries.equalize is not None
            else store.read_entry(entries.align, clip=clip_id, name="frames")
        )
        landmarks = store.read_entry(entries.landmarks, clip=clip_id, name="landmarks")
        aligned_landmarks = store.read_entry(entries.align, clip=clip_id, name="landmarks")
        transforms = store.read_entry(entries.align, clip=clip_id, name="transforms")
        box = store.read_entry(entries.detect, clip=clip_id, name="box")
        n = len(aligned)
        apex = apex_used if apex_used is not None else apex_annotated if apex_annotated is not None else (n - 1) // 2
        pics.positions = (0, min(max(apex, 0), n - 1), n - 1)
        panels = [
            face_panel(_source_frame(row, t), landmarks[t], box, aligned[t], transforms[t], aligned_landmarks[t])
            for t in pics.positions
        ]
        faces = strip(panels)
    else:
        frame = _source_frame(row, 0)
        faces = None if frame is None else frame_thumbnail(frame)
        pics.positions = (0,)
    if faces is not None:
        pics.faces = f"{THUMBS}/{stem}_faces.jpg"
        pics.faces_size = (faces.shape[1], faces.shape[0])
        save_jpeg(faces, thumbs / f"{stem}_faces.jpg")
    if entries.image is not None and image_done:
        pics.image = f"{THUMBS}/{stem}_{entries.image.ref.stage}.jpg"
        save_jpeg(image_thumbnail(store.read_entry(entries.image, clip=clip_id)), out_dir / pics.image)
    return pics


# ------------------------------------------------------------------------------------------------- page
_CSS = """
body{font:13px/1.35 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 6px}
.overview{max-width:100%;border:1px solid #ddd}
.filters{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #ccc;z-index:2}
.filters label{margin-right:14px}
.row{display:grid;grid-template-columns:36px 150px 130px var(--faces,300px) 100px 185px 170px;gap:8px;
align-items:start;padding:6px 4px;margin-bottom:3px;border-left:6px solid #6a9f58;width:max-content}
.head{font-weight:bold;border-left-color:transparent;background:#f4f4f4}
.clip{content-visibility:auto;contain-intrinsic-size:auto 110px}
.clip[hidden]{display:none}
.st-failed{background:#fbd5d5;border-left-color:#c0392b}
.st-missing{background:#e6e6e6;border-left-color:#888}
.st-flagged{background:#fff0c8;border-left-color:#e67e22}
.st-ok{background:#fff}
.badge{font-weight:bold;text-transform:uppercase;font-size:11px}
.error{white-space:pre-wrap;font:11px monospace;margin:4px 0 0;max-height:90px;overflow:auto}
.faces img,.image img{display:block;background:#eee}
.muted{color:#777}
td,th{padding:1px 6px;text-align:left}
"""

_JS = """
(function () {
  var keys = ["subject", "label", "status"];
  var rows = document.querySelectorAll("div.clip");
  var shown = document.getElementById("shown");
  function select(k) { return document.getElementById("f-" + k); }
  function apply() {
    var want = {}, n = 0, hash = [];
    keys.forEach(function (k) {
      want[k] = select(k).value;
      if (want[k]) hash.push(k + "=" + encodeURIComponent(want[k]));
    });
    for (var i = 0; i < rows.length; i++) {
      var ok = keys.every(function (k) { return !want[k] || rows[i].getAttribute("data-" + k) === want[k]; });
      rows[i].hidden = !ok;
      if (ok) n++;
    }
    shown.textContent = n + " of " + rows.length + " clips shown";
    try { history.replaceState(null, "", hash.length ? "#" + hash.join("&") : location.pathname); } catch (e) {}
  }
  location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var kv = part.split("="), k = kv[0], v = decodeURIComponent(kv[1] || "");
    if (keys.indexOf(k) < 0) return;
    var s = select(k);
    for (var i = 0; i < s.options.length; i++) if (s.options[i].value === v) s.value = v;
  });
  keys.forEach(function (k) { select(k).addEventListener("change", apply); });
  apply();
})();
"""


def _options(values: list[str]) -> str:
    return '<option value="">all</option>' + "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)


def _fmt(value: Any, digits: int = 2) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def _img(src: str | None, size: tuple[int, int], alt: str) -> str:
    if src is None:
        return '<span class="muted">no picture</span>'
    w, h = size
    return f'<img loading="lazy" src="{esc(src)}" width="{w}" height="{h}" alt="{esc(alt)}">'


def _row_html(qc: Mapping[str, Any], pics: ClipPictures, image_name: str) -> str:
    status = str(qc["status"])
    rank = int(qc["rank"])
    if status in ("ok", "flagged"):
        state = f"score {_fmt(qc['score'])}<br>weakest: {esc(qc['weakest'])}"
        measures = "".join(f"<div>{esc(name)}: {_fmt(qc[name])}</div>" for name in MEASURES)
    else:
        error = str(qc["error"])
        first, _, rest = error.partition("\n")
        state = f"stage {esc(qc['failed_stage'])}"
        measures = f'<div class="error" title="{esc(error)}">{esc(first)}</div>' + (
            f'<details><summary>details</summary><pre class="error">{esc(rest)}</pre></details>' if rest else ""
        )
    apex = f"apex annotated {esc(_int(qc['apex_annotated']))} · used {esc(_int(qc['apex_used']))}"
    faces_alt = "onset, apex, offset" if len(pics.positions) == 3 else "onset frame"
    image_cell = _img(pics.image, (THUMB_HEIGHT, THUMB_HEIGHT), image_name)
    return (
        f'<div class="row clip st-{esc(status)}" id="clip-{rank}" data-subject="{esc(qc["subject"])}" '
        f'data-label="{esc(qc["label"])}" data-status="{esc(status)}">'
        f'<div class="rank">{rank}</div>'
        f'<div class="id"><b>{esc(qc["clip_id"])}</b><br>subject {esc(qc["subject"])}<br>label {esc(qc["label"])}'
        f"<br>AUs {esc(qc['action_units']) or '–'}<br>{esc(qc['n_frames'])} frames</div>"
        f'<div class="state"><span class="badge">{esc(status)}</span><br>{state}</div>'
        f'<div class="faces">{_img(pics.faces, pics.faces_size, faces_alt)}</div>'
        f'<div class="image">{image_cell}</div>'
        f'<div class="quality">{pics.curve or "<span class=muted>no landmarks</span>"}<br>{apex}</div>'
        f'<div class="measures">{measures}</div>'
        "</div>"
    )


def _int(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else str(int(value))


def _score_doc(threshold: float) -> str:
    rows = "".join(
        f"<tr><td>{esc(m.name)}</td><td>{m.limit:g}</td><td>{'below' if m.higher_is_better else 'above'}</td>"
        f"<td>{esc(m.description)}</td></tr>"
        for m in MEASURES.values()
    )
    return (
        "<details><summary>How clips are scored</summary>"
        "<p>Each measure m with limit L gives a sub-score 0.5<sup>(m/L)²</sup> (lower is better) or "
        "1 − 0.5<sup>(m/L)²</sup> (higher is better): 1 is perfect, 0.5 is the limit. A clip's score is its "
        f"lowest sub-score; it is <b>flagged</b> below {threshold:g}. Failed clips (a face stage raised an "
        "error) come first, then clips not processed yet, then the rest by ascending score.</p>"
        f"<table><tr><th>measure</th><th>limit</th><th>bad when</th><th>meaning</th></tr>{rows}</table>"
        "<p>Faces: onset, apex and offset frame with landmarks (green), detection box (yellow) and crop outline "
        "(cyan), each beside its aligned face. Curve: landmark quality per frame (0–1), quality limit dashed grey, "
        "annotated apex blue, used apex orange dashed, lowest frame red.</p></details>"
    )


def render_page(
    dataset: str,
    table: pd.DataFrame,
    pictures: Mapping[str, ClipPictures],
    image_name: str,
    threshold: float,
    source: str,
) -> str:
    """The gallery page's HTML (rows in ``table`` order)."""
    counts = {s: int((table.status == s).sum()) for s in ("failed", "missing", "flagged", "ok")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    filters = "".join(
        f'<label>{name} <select id="f-{key}">{_options(values)}</select></label>'
        for key, name, values in (
            ("subject", "Subject", sorted(set(map(str, table["subject"])))),
            ("label", "Label", sorted(set(map(str, table["label"])))),
            ("status", "Status", [s for s in ("failed", "missing", "flagged", "ok") if counts[s]]),
        )
    )
    head = (
        '<div class="row head"><div>#</div><div>clip</div><div>status</div><div>onset · apex · offset</div>'
        f"<div>{esc(image_name)}</div><div>landmark quality</div><div>measures / error</div></div>"
    )
    rows = "\n".join(_row_html(qc, pictures[qc["clip_id"]], image_name) for qc in table.to_dict("records"))
    faces_width = max([p.faces_size[0] for p in pictures.values()] + [THUMB_HEIGHT])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>QC {esc(dataset)}</title><style>{_CSS}:root{{--faces:{faces_width}px}}</style></head><body>\n"
        f"<h1>Quality control: {esc(dataset)}</h1>"
        f"<p>{len(table)} clips: {esc(summary)} (flagged: score below {threshold:g}). Store {esc(source)}. "
        f'Scores as a table: <a href="{CSV}">{CSV}</a>.</p>'
        f'<img class="overview" src="{OVERVIEW}" alt="overview of the QC measures">'
        f"{_score_doc(threshold)}"
        f'<div class="filters">{filters}<span id="shown"></span></div>\n'
        f'<div id="clips">{head}\n{rows}\n</div>\n'
        f"<script>{_JS}</script></body></html>\n"
    )


def write_qc_report(
    store: FeatureStore,
    dataset: str,
    out_dir: str | os.PathLike,
    *,
    threshold: float = QC_THRESHOLD,
    keys: Mapping[str, str] | None = None,
    image: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QCReport:
    """Write the gallery (``index.html``, ``thumbs/``), ``qc.csv`` and ``overview.png`` into ``out_dir``.

    ``keys`` picks entries by stage (``{"landmarks": "e15a"}``) when a dataset has several; ``image`` the image
    input to show (default: the first stored of mesti, dynamic, apex-frame, diff, onset; ``"none"`` for none).
    ``progress(done, total)`` is called after each clip.
    """
    out = Path(out_dir)
    (out / THUMBS).mkdir(parents=True, exist_ok=True)
    entries = resolve_entries(store, dataset, keys, image)
    table = qc_table(store, dataset, threshold=threshold, entries=entries)
    manifest = store.manifest(dataset)
    rows = {str(r["clip_id"]): (i, r) for i, r in enumerate(manifest.to_dict("records"))}
    image_done = (
        set()
        if entries.image is None
        else {c for c, done in zip(entries.image.clip_ids, store.done_mask(entries.image), strict=True) if done}
    )
    pictures: dict[str, ClipPictures] = {}
    for done, qc in enumerate(table.to_dict("records"), start=1):
        index, row = rows[qc["clip_id"]]
        pictures[qc["clip_id"]] = clip_pictures(
            store, entries, row, qc, out, f"{index:06d}", qc["clip_id"] in image_done
        )
        if progress is not None:
            progress(done, len(table))
    csv_path = out / CSV
    write_qc_csv(table, csv_path)
    overview = overview_figure(table, out / OVERVIEW, title=f"{dataset}: {len(table)} clips")
    image_name = entries.image.ref.stage if entries.image is not None else "image input"
    page = out / PAGE
    page.write_text(render_page(dataset, table, pictures, image_name, threshold, str(store.location)), encoding="utf-8")
    return QCReport(table, page, csv_path, overview)
