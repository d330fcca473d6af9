"""Training recipes: named presets of :class:`~mer.train.trainer.TrainConfig` values (all written to config.json).

Every recipe is evaluated honestly: a fixed number of epochs, or early stopping on an inner split of the
*training* subjects. The public MMNet/FaceSleuth scripts instead keep, for each test subject, the epoch that
scored best on that subject; no recipe here can do that (see README, "FaceSleuth and MMNet").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mer.train.presets import load_preset
from mer.train.trainer import TrainConfig

# The public code: AdamW, lr 8e-4, weight decay 0.6, exponential decay 0.987 per epoch, 50 epochs, batch 32,
# cross-entropy, horizontal flip, rotation of a few degrees, random crop with 4 px padding. The θ learning
# rate is not published: 1e-2 is our choice (at 8e-4 the angle logit can move by only ~0.3 in 50 epochs).
_PUBLIC = dict(
    epochs=50,
    batch_size=32,
    optimizer="adamw",
    lr=8e-4,
    weight_decay=0.6,
    lr_decay=0.987,
    loss="ce",
    flip_prob=0.5,
    rotation_angles=(-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0),
    crop_padding=4,
)


@dataclass(frozen=True)
class Recipe:
    """A named preset: a description and the :class:`TrainConfig` fields it sets (others keep their defaults)."""

    name: str
    description: str
    values: dict

    def config(self, **overrides) -> TrainConfig:
        """The recipe's TrainConfig, with ``overrides`` (e.g. from the command line) applied last."""
        return dataclasses.replace(TrainConfig(**self.values), **overrides)


def _from_preset(name: str, preset: str) -> Recipe:
    """A recipe whose values are the ``[train]`` table of a TOML preset (``mer/train/presets/``)."""
    data = load_preset(preset)
    return Recipe(name, data["description"], dict(data["train"]))


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("meganet-paper", "MESTI-MEGANet paper: Adam, focal loss, 50 epochs, flip + ±5/±10° rotations", {}),
        Recipe(
            "facesleuth-paper",
            "public FaceSleuth/MMNet recipe, fixed 50 epochs (no per-test-subject epoch choice); θ lr 1e-2",
            _PUBLIC | {"lr_groups": {"theta": 1e-2}},
        ),
        Recipe(
            "facesleuth-early-stop",
            "facesleuth-paper with early stopping on 20 % of the training subjects (patience 10, up to 80 epochs)",
            _PUBLIC | {"lr_groups": {"theta": 1e-2}, "epochs": 80, "val_fraction": 0.2, "early_stopping": True},
        ),
        Recipe("mmnet-paper", "public MMNet recipe, fixed 50 epochs (no per-test-subject epoch choice)", _PUBLIC),
        _from_preset("stag-paper", "stag"),
    )
}


def get_recipe(name: str) -> Recipe:
    """Look a recipe up by name (ValueError naming the known ones)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
