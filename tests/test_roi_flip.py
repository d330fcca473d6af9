"""ROI-sequence mirror: the permutation derived from the ROI-set tables, checked against recomputed roi-flow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mer.pipeline.flow.optical_flow import compute_flow, to_grey
from mer.pipeline.flow.roi import RoiDef, RoiSet, load_roi_set, roi_boxes, roi_sequence
from mer.synthetic import clips as syn
from mer.synthetic import motion as sm
from mer.train.roi_flip import DLIB68_MIRROR, flip_roi_flow, mirror_landmarks, random_flip, roi_flip_permutation


def test_landmark_mirror_map_matches_dlib_on_a_mirrored_photo():
    from mer.synthetic.photos import photo_face

    a, b = photo_face("astronaut"), photo_face("astronaut", mirrored=True)
    assert np.array_equal(DLIB68_MIRROR[DLIB68_MIRROR], np.arange(68))
    err = np.abs(mirror_landmarks(a.landmarks, a.image.shape[1]) - b.landmarks).max()
    iod = np.linalg.norm(a.landmarks[42] - a.landmarks[39])
    assert err < 0.15 * iod  # dlib's own detection on the mirrored photo (it is not exactly symmetric)
    shifted = np.roll(DLIB68_MIRROR, 1)
    assert np.abs(a.landmarks[shifted] * [-1, 1] + [a.image.shape[1] - 1, 0] - b.landmarks).max() > 0.5 * iod


@pytest.mark.parametrize("name", ["stag6", "stag14", "stag18"])
def test_permutation_maps_each_roi_box_onto_its_mirror(name):
    perm = roi_flip_permutation(name)
    assert np.array_equal(perm[perm], np.arange(len(perm))) and sorted(perm) == list(range(len(perm)))
    subject = syn.make_subject(0, "s01", (320, 240), 0)
    w = 320
    boxes = roi_boxes(subject.landmarks, name)
    mirrored = roi_boxes(mirror_landmarks(subject.landmarks, w), name)
    names = load_roi_set(name).names
    for i, roi in enumerate(names):
        x0, y0, x1, y1 = boxes[roi]
        mx0, my0, mx1, my1 = mirrored[names[perm[i]]]
        assert (my0, my1) == (y0, y1) and abs(mx0 - (w - x1)) <= 1 and abs(mx1 - (w - x0)) <= 1


def test_a_table_without_mirror_partners_is_rejected_by_name():
    lopsided = RoiSet("lopsided", 1, "", (RoiDef("left_brow", (17, 18, 19, 20, 21), (0.1, 0.2, 0.1, 0.15)),))
    with pytest.raises(ValueError, match="ROI 'left_brow' has no mirror partner"):
        roi_flip_permutation(lopsided)


def _one_sided_clip(plan_index: int):
    """A synthetic clip whose motion is on the image-left half only (so a wrong permutation shows)."""
    subject = syn.make_subject(0, "s01", (320, 240), 0)
    plan = syn.plan_clips(0, subject, 3, 3, 0)[plan_index]
    cx = subject.landmarks[[39, 42], 0].mean()
    b = plan.bumps
    keep = b.centres[:, 0] < cx
    plan = dataclasses.replace(plan, bumps=sm.Bumps(b.centres[keep], b.vectors[keep], b.sigmas[keep]))
    frames = np.stack(list(syn.render_frames(subject, plan, noise=False)))
    return plan, frames, syn.clip_truth(subject, plan)["landmarks"]


@pytest.mark.parametrize("plan_index", [1, 2])  # surprise (AU1+2, brows), negative (AU4)
def test_flip_of_a_stored_sequence_equals_roi_flow_of_the_flipped_frames(plan_index):
    plan, frames, landmarks = _one_sided_clip(plan_index)
    on, ap = plan.onset - 1, plan.apex - 1
    idx = [on, (on + ap) // 2, ap]
    w = frames.shape[2]
    grey = [to_grey(f) for f in frames[idx]]
    grey_flipped = [to_grey(np.ascontiguousarray(f[:, ::-1])) for f in frames[idx]]
    flows = np.stack([compute_flow(a, b, "farneback") for a, b in zip(grey[:-1], grey[1:], strict=True)])
    flows_f = np.stack(
        [compute_flow(a, b, "farneback") for a, b in zip(grey_flipped[:-1], grey_flipped[1:], strict=True)]
    )
    src = landmarks[idx[:-1]]
    for name in ("stag6", "stag14", "stag18"):
        seq = roi_sequence(flows, src, name, length=4)
        seq_f = roi_sequence(flows_f, mirror_landmarks(src, w), name, length=4)
        perm = roi_flip_permutation(name)
        scale = np.abs(seq).max()
        assert scale > 0.15  # the clip moves
        assert np.abs(flip_roi_flow(seq, perm) - seq_f).max() < 0.12 * scale  # flow tolerance (1-px box shifts)
        # without the permutation (u negated only) the sequences disagree: the test can fail
        assert np.abs(flip_roi_flow(seq, np.arange(len(perm))) - seq_f).max() > 0.5 * scale
        # the torch path gives the same values
        torch.testing.assert_close(
            flip_roi_flow(torch.from_numpy(seq), perm), torch.from_numpy(flip_roi_flow(seq, perm))
        )


def test_random_flip_flips_the_chosen_rows_only():
    perm = roi_flip_permutation("stag6")
    x = torch.randn(64, 5, 6, 2, generator=torch.Generator().manual_seed(0))
    out = random_flip(x, perm, 0.5, torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.equal(o, flip_roi_flow(xi, perm)) for o, xi in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert torch.all(flipped ^ same) and 16 < int(flipped.sum()) < 48
    assert random_flip(x, perm, 0.0) is x
