"""The `video` adapter: a clip stored as a video file preprocesses like its frame-folder twin."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer.datasets import load
from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.store import open_store
from mer.synthetic.clips import generate_synthetic

N_FRAMES = 6
SHEET = "subject,clip,onset,apex,offset,emotion\n"


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> tuple[Path, Path, list[np.ndarray]]:
    """The same few synthetic frames as a frame folder (numbered 1..N) and as an MJPG ``.avi`` (indices 0..N-1)."""
    base = tmp_path_factory.mktemp("video")
    generate_synthetic(base / "synth", subjects=1, clips_per_subject=1, classes=3, seed=3, frame_size=(320, 240))
    source = sorted((base / "synth" / "s01" / "s01_c01").glob("img*.jpg"))[10 : 10 + N_FRAMES]
    folder, video = base / "frames", base / "videos"
    (folder / "s01" / "c01").mkdir(parents=True)
    (video / "s01").mkdir(parents=True)
    frames = []
    for i, path in enumerate(source, start=1):
        shutil.copy(path, folder / "s01" / "c01" / f"img{i:03d}.jpg")
        frames.append(cv2.imread(str(path)))
    writer = cv2.VideoWriter(str(video / "s01" / "c01.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()
    (folder / "annotations.csv").write_text(SHEET + f"s01,c01,1,3,{N_FRAMES},positive\n")
    (video / "annotations.csv").write_text(SHEET + f"s01,c01,0,2,{N_FRAMES - 1},positive\n")
    return folder, video, frames


def _preprocess(store: Path, adapter: str, root: Path, stages: list[str]):
    result = load(adapter, root, dataset_name="twin")
    assert result.errors == []
    st = open_store(str(store), "a")
    write_dataset_manifest(st, "twin", result.manifest, root, adapter, None)
    report = run_plan(st, "twin", build_plan(st, "twin", stages), workers=1)
    return st, result.manifest, report


def test_a_video_clip_gives_the_landmarks_of_its_frame_folder_twin(twins, tmp_path):
    folder, video, frames = twins
    stages = ["ingest", "detect", "landmarks"]
    st_f, _, report_f = _preprocess(tmp_path / "folder-store", "folder", folder, stages)
    st_v, manifest, report_v = _preprocess(tmp_path / "video-store", "video", video, stages)
    assert report_v.failures == [] and report_v.computed == dict.fromkeys(stages, 1)
    assert manifest.iloc[0]["frame_numbers"] == list(range(N_FRAMES))
    assert manifest.iloc[0]["frame_paths"][0].endswith("c01.avi#0")

    decoded = np.asarray(cv2.VideoCapture(str(video / "s01" / "c01.avi")).read()[1], dtype=np.int16)
    codec_error = np.abs(decoded - frames[0].astype(np.int16)).mean()
    assert 0 < codec_error < 3  # MJPG is lossy, but only just

    landmarks_f = st_f.read("twin", "landmarks", clip="s01/c01")
    landmarks_v = st_v.read("twin", "landmarks", clip="s01/c01")
    assert landmarks_v.shape == landmarks_f.shape == (N_FRAMES, 68, 2)
    print(f"MJPG mean abs error {codec_error:.2f} grey levels; landmarks differ by at most "
          f"{np.abs(landmarks_v - landmarks_f).max():.3f} px")
    assert np.abs(landmarks_v - landmarks_f).max() < 1.5  # pixels, at 320×240
    # identity: the video file's bytes and the frame index
    digests = st_v.read("twin", "ingest", clip="s01/c01")
    assert len({bytes(d) for d in digests}) == N_FRAMES
    assert st_v.verify() == []


def test_a_video_with_fewer_frames_than_the_sheet_fails_that_clip(twins, tmp_path):
    _, video, _ = twins
    root = tmp_path / "short"
    shutil.copytree(video, root)
    shutil.copy(root / "s01" / "c01.avi", root / "s01" / "c02.avi")
    broken = root / "s01" / "c03.avi"
    broken.write_bytes(b"not a video at all")
    (root / "annotations.csv").write_text(
        SHEET + f"s01,c01,0,2,{N_FRAMES - 1},positive\ns01,c02,0,2,{N_FRAMES + 3},positive\n"
        "s01,c03,0,1,2,positive\n"
    )
    result = load("video", root, dataset_name="short")
    messages = [p.message for p in result.errors]
    assert any("offset past the last frame" in m for m in messages), messages
    assert any("video file cannot be decoded" in m for m in messages), messages
    assert len(result.manifest) == 1

    # a container that declares more frames than it holds fails at decoding, for that clip only
    manifest = result.manifest.copy()
    short = manifest.iloc[0].copy()
    short["clip_id"], short["clip"] = "s01/c02", "c02"
    c02 = str((root / "s01" / "c02.avi").absolute())
    short["frame_paths"] = [f"{c02}#{i}" for i in range(N_FRAMES + 2)]
    short["frame_numbers"] = list(range(N_FRAMES + 2))
    short["offset"], short["n_frames"] = N_FRAMES + 1, N_FRAMES + 2
    manifest.loc[1] = short
    st = open_store(str(tmp_path / "store"), "a")
    write_dataset_manifest(st, "short", manifest, root, "video", None)
    report = run_plan(st, "short", build_plan(st, "short", ["ingest"]), workers=1)
    assert [o.clip_id for o in report.failures] == ["s01/c02"]
    assert f"video {c02} has only {N_FRAMES} decodable frames" in report.failures[0].error
