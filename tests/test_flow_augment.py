"""Flow augmentation (issue 13): an augmented flow image equals the flow image of the flipped / rotated frames.

The frames are a smooth random texture moved by a known field (a translation plus a Gaussian bump); the flow is
Farneback's, the flow images the stage's ``maxabs`` (signed) ones at 28×28. The same comparison with the channels
treated as intensities (the old behaviour) fails, so the tolerances are tight enough to see the difference.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mer.pipeline.flow.image import flow_image, flow_image_channels
from mer.pipeline.flow.optical_flow import farneback
from mer.train.augment import augment_batch, channel_roles, hflip, rotate
from mer.train.channels import declared_channels

N = 192
SIZE = 28
CENTRE = (N - 1) / 2


@pytest.fixture(scope="module")
def frames() -> tuple[np.ndarray, np.ndarray]:
    """Onset (texture) and apex (texture moved by 1.2–2.7 px right, 0.4 px down minus a bump upwards)."""
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.normal(size=(N, N)).astype(np.float32), (0, 0), 2.5)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float32)
    bump = np.exp(-((xx - CENTRE - 20) ** 2 + (yy - CENTRE + 15) ** 2) / (2 * 25.0**2))
    du, dv = 1.2 + 1.5 * bump, 0.4 - 1.0 * bump
    moved = cv2.remap(tex, xx - du, yy - dv, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return tex.astype(np.uint8), moved.astype(np.uint8)


def _flow_image(a: np.ndarray, b: np.ndarray, normalise: str = "maxabs") -> np.ndarray:
    return flow_image(farneback(a, b), SIZE, normalise=normalise)


def _rotate_frame(img: np.ndarray, degrees: float) -> np.ndarray:
    """Turn the content ``degrees`` clockwise on screen (cv2's positive angle is counter-clockwise)."""
    m = cv2.getRotationMatrix2D((CENTRE, CENTRE), -degrees, 1.0)
    return cv2.warpAffine(img, m, (N, N), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img)[None]


CHANNELS = ("u", "v", "strain")


def test_flow_image_declares_signed_channels_and_keeps_the_sign(frames):
    img = _flow_image(*frames)
    assert flow_image_channels("maxabs") == list(CHANNELS)
    assert flow_image_channels("minmax") == ["u_minmax", "v_minmax", "strain"]
    length = np.sqrt(img[0] ** 2 + img[1] ** 2)
    assert length.max() == pytest.approx(1.0, abs=1e-6)  # u and v share one scale: the largest vector length
    assert img[0].min() > 0.2  # the whole face moves right: u positive everywhere, zero kept at zero
    assert img[1].min() < -0.1 < 0.1 < img[1].max()  # v has both signs (bump up, translation down)
    assert img[2].min() >= 0.0 and img[2].max() == pytest.approx(1.0)


def test_flip_of_the_flow_image_is_the_flow_image_of_the_flipped_frames(frames):
    a, b = frames
    expected = _flow_image(a[:, ::-1].copy(), b[:, ::-1].copy())
    augmented = hflip(_t(_flow_image(a, b)), CHANNELS)[0].numpy()
    np.testing.assert_allclose(augmented, expected, atol=0.02)
    naive = hflip(_t(_flow_image(a, b)))[0].numpy()  # u not negated
    assert np.abs(naive[0] - expected[0]).max() > 0.5


@pytest.mark.parametrize("degrees", [10.0, -10.0])
def test_rotation_of_the_flow_image_is_the_flow_image_of_the_rotated_frames(frames, degrees):
    """Inside the central disc (the rotated frames' zero-filled corners give no flow): max error of (u, v) below
    0.12 of the largest vector and median below 0.01 (measured 0.045 / 0.09 and 0.004); without turning the
    vectors the median error is 0.05 and the max 0.17. Strain (a derivative, noisier) median below 0.05."""
    a, b = frames
    expected = _flow_image(_rotate_frame(a, degrees), _rotate_frame(b, degrees))
    source = _t(_flow_image(a, b))
    augmented = rotate(source, torch.tensor([degrees]), CHANNELS)[0].numpy()
    naive = rotate(source, torch.tensor([degrees]))[0].numpy()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    disc = (xx - (SIZE - 1) / 2) ** 2 + (yy - (SIZE - 1) / 2) ** 2 < 9**2
    err = np.abs(augmented - expected)[:2][:, disc]
    naive_err = np.abs(naive - expected)[:2][:, disc]
    assert err.max() < 0.12 and np.median(err) < 0.01, (err.max(), np.median(err))
    assert np.median(naive_err) > 0.03 and naive_err.max() > 0.15
    assert np.median(np.abs(augmented - expected)[2][disc]) < 0.05


def test_minmax_flow_flips_exactly_and_refuses_rotation(frames):
    a, b = frames
    flow = farneback(a, b)
    mirrored = np.stack([-flow[:, ::-1, 0], flow[:, ::-1, 1]], axis=-1)  # the flow of the mirrored frames
    channels = flow_image_channels("minmax")
    augmented = hflip(_t(flow_image(flow, SIZE, normalise="minmax")), channels)[0].numpy()
    np.testing.assert_allclose(augmented, flow_image(mirrored, SIZE, normalise="minmax"), atol=1e-5)
    with pytest.raises(ValueError, match="cannot be rotated exactly"):
        rotate(_t(flow_image(flow, SIZE, normalise="minmax")), torch.tensor([5.0]), channels)


def test_channel_declarations_are_checked():
    assert channel_roles(["strain", "v", "u"]).u == 2 and channel_roles(["strain", "v", "u"]).v == 1
    assert channel_roles(None).u is None and channel_roles(["r", "g", "b"]).u is None
    with pytest.raises(ValueError, match="unknown channel"):
        channel_roles(["u", "v", "w"])
    with pytest.raises(ValueError, match="must come together"):
        channel_roles(["u", "strain"])
    with pytest.raises(ValueError, match="names 3 channels; the input has 2"):
        hflip(torch.zeros(1, 2, 4, 4), CHANNELS)


def test_declared_channels_from_the_entries_provenance():
    entries = {"casme2": {"channels": ["u", "v", "strain"]}, "samm": {"channels": ["u", "v", "strain"]}}
    assert declared_channels({"entries": entries}) == CHANNELS
    assert declared_channels({"entries": {"casme2": {"channels": None}}}) is None
    assert declared_channels(None) is None
    legacy = {"input": "flow-image", "entries": {"casme2": {"params": {"pair": 0, "size": 28, "normalise": "minmax"}}}}
    assert declared_channels(legacy) == ("u_minmax", "v_minmax", "strain")  # flow-image v1: no declaration stored
    with pytest.raises(ValueError, match="different channels"):
        declared_channels({"entries": entries | {"smic": {"channels": ["u_minmax", "v_minmax", "strain"]}}})


def test_augment_batch_negates_u_of_flipped_samples_only():
    x = torch.zeros(64, 3, 8, 8)
    x[:, 0], x[:, 1], x[:, 2] = 0.5, -0.25, 0.75  # uniform field: spatial flip changes nothing else
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(x, gen, flip_prob=0.5, angles=(0.0,), channels=CHANNELS)
    flipped = out[:, 0, 0, 0] < 0
    assert 10 < int(flipped.sum()) < 54
    torch.testing.assert_close(out[flipped, 0], torch.full_like(out[flipped, 0], -0.5))
    torch.testing.assert_close(out[~flipped], x[~flipped])
    torch.testing.assert_close(out[:, 1:], x[:, 1:])
