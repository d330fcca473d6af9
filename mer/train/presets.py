"""Training recipes as data: named TOML presets in ``mer/train/presets/`` (``[model]`` and ``[train]``).

A preset gives the model name and options and the training options; the trainer's config takes the
``[train]`` values (every one then appears in the run's ``config.json``), explicit options override them.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any


def _preset_dir():
    return resources.files("mer.train").joinpath("presets")


def available_presets() -> list[str]:
    """Names of the shipped presets (file stems)."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def load_preset(name: str | Path) -> dict[str, Any]:
    """The preset ``name`` (shipped name or a TOML path) as ``{"name", "description", "model", "train"}``."""
    if isinstance(name, Path) or str(name).endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"preset file {path} does not exist")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        f = _preset_dir().joinpath(f"{name}.toml")
        if not f.is_file():
            raise ValueError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
        text, origin = f.read_text(encoding="utf-8"), str(name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"preset {origin}: {exc}") from None
    unknown = set(data) - {"name", "description", "model", "train"}
    if unknown or "model" not in data or "name" not in data["model"]:
        raise ValueError(f"preset {origin}: needs [model] with a name and [train]; unknown keys {sorted(unknown)}")
    model = dict(data["model"])
    return {
        "name": str(data.get("name", origin)),
        "description": str(data.get("description", "")),
        "model": {"name": str(model.pop("name")), "options": model},
        "train": dict(data.get("train", {})),
    }
