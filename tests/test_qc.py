"""QC gallery: scores rank a deliberately broken clip first, the page works in a real browser and is offline."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.report.qc_page import ClipPictures, render_page, write_qc_report
from mer.report.qc_scores import (
    MEASURES,
    QC_THRESHOLD,
    TABLE_COLUMNS,
    clip_measures,
    combine,
    eye_tilt_deg,
    flagged_clips,
    qc_table,
    summarize_quality,
    tracking_jump,
)
from mer.store import open_store

CHROMIUM = Path("/usr/bin/chromium")
BAD_CLIP = "s01/s01_c02"
SHIFT_PX = (40, 15)


def _shift_second_half(clip_dir: Path) -> None:
    """Move the face by SHIFT_PX from the middle of the clip on (a camera bump / spliced frames)."""
    frames = sorted(clip_dir.glob("img*.jpg"))
    m = np.float32([[1, 0, SHIFT_PX[0]], [0, 1, SHIFT_PX[1]]])
    for f in frames[len(frames) // 2 :]:
        im = cv2.imread(str(f))
        cv2.imwrite(str(f), cv2.warpAffine(im, m, (im.shape[1], im.shape[0]), borderMode=cv2.BORDER_REPLICATE))


def _preprocess(store, name: str, data: Path, stages: str, run: bool = True) -> None:
    from mer.datasets import load
    from mer.datasets.manifest_store import write_dataset_manifest
    from mer.pipeline.catalog import expand_stages
    from mer.pipeline.graph import build_plan
    from mer.pipeline.runner import run_plan

    result = load("folder", data, labels="3class", dataset_name=name)
    write_dataset_manifest(store, name, result.manifest, data, result.adapter, result.label_set.to_dict())
    plan = build_plan(store, name, expand_stages(stages))
    if run:
        run_plan(store, name, plan, workers=1)
    else:  # the entries exist, no clip is computed yet (an interrupted or planned run)
        from mer.pipeline.runner import prepare_entries

        prepare_entries(store, name, plan)


@pytest.fixture(scope="module")
def qc_store(tmp_path_factory) -> Path:
    """Store with ``synth`` (2 subjects × 2 clips, 320×240; BAD_CLIP shifted mid-clip; face stages + MESTI) and
    ``broken`` (one clip of blank frames: face detection fails) and ``pending`` (the same clip, not processed)."""
    from mer.synthetic.clips import generate_synthetic

    base = tmp_path_factory.mktemp("qc_store")
    data = base / "data"
    generate_synthetic(data, subjects=2, clips_per_subject=2, classes=3, seed=11, frame_size=(320, 240))
    _shift_second_half(data / BAD_CLIP)
    blank = base / "blank"
    (blank / "s09" / "s09_c01").mkdir(parents=True)
    for t in range(1, 9):
        cv2.imwrite(str(blank / "s09" / "s09_c01" / f"img{t:05d}.jpg"), np.full((240, 320, 3), 128, np.uint8))
    (blank / "annotations.csv").write_text(
        "subject,clip,onset,apex,offset,action_units,emotion\ns09,s09_c01,1,4,8,12,happiness\n"
    )
    store = open_store(str(base / "store"), "a")
    _preprocess(store, "synth", data, "ingest,face,mesti")
    _preprocess(store, "broken", blank, "ingest,face")
    _preprocess(store, "pending", blank, "ingest,face", run=False)
    return base / "store"


@pytest.fixture(scope="module")
def gallery(qc_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    return write_qc_report(open_store(str(qc_store)), "synth", out)


# ------------------------------------------------------------------------------------------ measures
def _template() -> np.ndarray:
    """68 points with the eye centres (36–41, 42–47) exactly 40 px apart on a horizontal line."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(100, 200, (68, 2))
    pts[36:42] = [130, 120] + rng.normal(0, 3, (6, 2))
    pts[36:42] += [130, 120] - pts[36:42].mean(axis=0)
    pts[42:48] = [170, 120] + rng.normal(0, 3, (6, 2))
    pts[42:48] += [170, 120] - pts[42:48].mean(axis=0)
    return pts


def test_tracking_jump_is_the_largest_move_over_eye_distance():
    track = np.repeat(_template()[None], 10, axis=0)
    track[6:] += [12.0, 16.0]  # a 20 px jump between frames 5 and 6
    track[:, :, 0] += np.arange(10)[:, None] * 0.4  # slow drift, 0.4 px per frame
    assert tracking_jump(track) == pytest.approx(np.hypot(12.4, 16.0) / 40.0)
    assert tracking_jump(track[:1]) == 0.0


def test_eye_tilt_measures_the_rotated_eye_line():
    pts = _template()
    theta = np.radians(-7.0)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    track = np.stack([pts, (pts - 150) @ rot.T + 150])
    assert eye_tilt_deg(track, "eye-centres") == pytest.approx(7.0)
    assert eye_tilt_deg(track[:1], "eye-centres") == pytest.approx(0.0, abs=1e-9)


def test_sub_scores_are_half_at_the_limit_and_the_score_is_the_weakest():
    for m in MEASURES.values():
        assert m.sub_score(m.limit) == pytest.approx(0.5)
    assert MEASURES["tracking_jump"].sub_score(0.0) == 1.0
    assert MEASURES["landmark_quality"].sub_score(0.0) == 0.0
    measures = clip_measures(np.array([0.9, 0.95]), np.repeat(_template()[None], 2, 0), _template()[None], 1.2)
    measures["eye_tilt_deg"] = 10.0  # twice the limit: 0.5 ** 4
    score, weakest = combine(measures)
    assert weakest == "eye_tilt_deg" and score == pytest.approx(0.5**4)


# ------------------------------------------------------------------------------ scores on the store
def test_shifted_clip_ranks_first_below_threshold_and_no_other_is_flagged(qc_store):
    table = qc_table(open_store(str(qc_store)), "synth")
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table.clip_id.iloc[0] == BAD_CLIP
    assert table.score.iloc[0] < QC_THRESHOLD and table.status.iloc[0] == "flagged"
    rest = table.iloc[1:]
    assert len(rest) == 3 and (rest.status == "ok").all() and (rest.score >= QC_THRESHOLD).all()
    assert list(table["rank"]) == [1, 2, 3, 4] and table.score.is_monotonic_increasing
    assert table.tracking_jump.iloc[0] > MEASURES["tracking_jump"].limit  # the shift is seen as a jump
    assert flagged_clips(table) == [BAD_CLIP]
    line = summarize_quality(open_store(str(qc_store)), "synth")
    assert line.startswith("quality: 1 of 4 scored clips below the QC threshold 0.5") and BAD_CLIP in line


def test_failed_clip_is_listed_with_its_stage_and_error(qc_store, tmp_path):
    report = write_qc_report(open_store(str(qc_store)), "broken", tmp_path)
    row = report.table.iloc[0]
    assert (row.status, row.failed_stage, row.clip_id) == ("failed", "detect", "s09/s09_c01")
    first_line = row.error.split("\n")[0]
    assert "face" in first_line.lower()
    page = report.page.read_text()
    assert "st-failed" in page and first_line.split(":")[0] in page
    assert np.isnan(row.score)
    onset = cv2.imread(str(tmp_path / "thumbs" / "000000_faces.jpg"))  # the onset frame as it is: plain grey
    assert onset.shape[0] == 96 and abs(onset.mean() - 128) < 2


def test_unprocessed_clip_is_missing_not_scored(qc_store):
    table = qc_table(open_store(str(qc_store)), "pending")
    assert list(table.status) == ["missing"] and table.failed_stage.iloc[0] == "detect"
    assert np.isnan(table.score.iloc[0]) and flagged_clips(table) == []


def test_csv_has_the_table_worst_first(gallery):
    with open(gallery.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["clip_id"] for r in rows] == list(gallery.table.clip_id)
    assert rows[0]["clip_id"] == BAD_CLIP and rows[0]["status"] == "flagged"
    assert float(rows[0]["score"]) == pytest.approx(gallery.table.score.iloc[0], abs=1e-4)
    assert set(rows[0]) == set(TABLE_COLUMNS)


# --------------------------------------------------------------------------------------------- page
def test_page_is_offline_with_small_lazy_thumbnails(gallery):
    html = gallery.page.read_text()
    out = gallery.page.parent
    assert not re.search(r"https?://|//[a-z0-9]", html, re.I), "the page must not reference the network"
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all((out / r).is_file() for r in refs)
    thumbs = re.findall(r"<img [^>]*>", html)
    rows = [t for t in thumbs if "thumbs/" in t]
    assert len(rows) == 8 and all('loading="lazy"' in t for t in rows)  # faces + MESTI for each of 4 clips
    for name in sorted((out / "thumbs").iterdir()):
        image = cv2.imread(str(name))
        assert image.shape[0] == 96 and name.stat().st_size < 60_000
        assert image.std() > 10  # a picture, not a blank
    overview = cv2.imread(str(gallery.overview))
    assert overview.shape[1] > 800 and overview.std() > 10


def test_text_from_data_is_escaped():
    evil = '<img src=x onerror="alert(1)">'
    table = pd.DataFrame(
        [
            {
                "rank": 1,
                "clip_id": f"s1/{evil}",
                "subject": "s1&co",
                "label": evil,
                "action_units": "<b>12</b>",
                "status": "failed",
                "score": np.nan,
                "weakest": "",
                **dict.fromkeys(MEASURES, np.nan),
                "n_frames": 3,
                "apex_annotated": pd.NA,
                "apex_used": pd.NA,
                "failed_stage": "detect",
                "error": f"ValueError: {evil}\nTraceback <script>",
            }
        ]
    )
    page = render_page("ds<x>", table, {f"s1/{evil}": ClipPictures()}, "mesti", 0.5, "/st<ore>")
    assert evil not in page and "<script>" not in page.replace("<script>\n(function", "")
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "s1&amp;co" in page
    assert "ds&lt;x&gt;" in page and "/st&lt;ore&gt;" in page


def _chromium(*args: str, cwd: Path) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={cwd / 'chromium-profile'}", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2], strict=True))


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium; make test tries)",
)
def test_page_in_headless_chromium(gallery, tmp_path):
    url = gallery.page.resolve().as_uri()
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1400,1700", f"--screenshot={shot}", url, cwd=tmp_path)
    image = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB).astype(int)

    def stripe(rgb: tuple[int, int, int]) -> np.ndarray:  # the coloured left border of each row, per screen line
        return (np.abs(image[:, 8:30] - rgb).max(axis=2) <= 3).any(axis=1)

    flagged, ok = _runs(stripe((0xE6, 0x7E, 0x22))), _runs(stripe((0x6A, 0x9F, 0x58)))
    assert len(flagged) == 1 and len(ok) == 3, (flagged, ok)
    assert flagged[0][1] <= ok[0][0]  # worst first
    for start, end in flagged + ok:
        assert end - start > 80  # a row holds 96-pixel thumbnails
        assert image[start:end, 300:900].std() > 30  # and they are drawn (faces), not empty boxes

    filtered = _chromium("--dump-dom", url + "#status=flagged", cwd=tmp_path)
    rows = re.findall(r'<div class="row clip [^"]*"[^>]*>', filtered)  # one per clip, shown or not
    assert len(rows) == 4 and BAD_CLIP in filtered
    assert [("hidden" in r) for r in rows] == [False, True, True, True] and "1 of 4 clips shown" in filtered
    by_subject = _chromium("--dump-dom", url + "#subject=s02", cwd=tmp_path)
    assert "2 of 4 clips shown" in by_subject


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_writes_the_same_gallery_and_reports_bad_input(qc_store, gallery, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["qc", str(qc_store), "synth", "--out", str(tmp_path / "g"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 flagged" in result.output and "3 ok" in result.output
    assert (tmp_path / "g" / "index.html").is_file() and (tmp_path / "g" / "qc.csv").is_file()
    result = runner.invoke(app, ["qc", str(qc_store), "nosuch", "--out", str(tmp_path / "h")])
    assert result.exit_code == 2 and "nosuch" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["qc", str(qc_store), "synth", "--out", str(tmp_path / "h"), "--key", "oops"])
    assert result.exit_code == 2 and "STAGE=KEY" in result.output
    for path in sorted((tmp_path / "g").rglob("*")):  # same store, same gallery bytes
        if path.is_file():
            assert path.read_bytes() == (gallery.page.parent / path.relative_to(tmp_path / "g")).read_bytes(), path


def test_preprocess_summary_line_names_the_flagged_count(qc_store, capsys):
    from mer.cli.qc_cmds import print_quality_summary
    from mer.pipeline.catalog import expand_stages
    from mer.pipeline.graph import build_plan

    store = open_store(str(qc_store))
    print_quality_summary(store, "synth", build_plan(store, "synth", expand_stages("ingest,face")))
    out = capsys.readouterr().out
    assert "1 of 4 scored clips below the QC threshold 0.5" in out and BAD_CLIP in out
    print_quality_summary(store, "nosuch")
    assert capsys.readouterr().out == ""
