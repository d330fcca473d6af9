"""Model registry: build any model by name with a uniform signature."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str, builder: Builder) -> None:
    """Register ``builder(num_classes, in_channels, image_size, **options)`` under ``name``."""
    _REGISTRY[name.lower()] = builder


def available() -> list[str]:
    """Sorted names of the registered models."""
    return sorted(_REGISTRY)


def create(name: str, num_classes: int, in_channels: int = 3, image_size: int = 224, **options) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes; ``options`` are model-specific (see each builder)."""
    try:
        builder = _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}") from None
    return builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options)


def _register_builtin() -> None:
    from mer.models.baselines import TIMM_NAMES, build_timm
    from mer.models.flow_nets import build_off_apexnet, build_ststnet
    from mer.models.meganet import build_meganet
    from mer.models.stag import build_stag

    register("meganet", build_meganet)
    register("ststnet", build_ststnet)
    register("off_apexnet", build_off_apexnet)
    register("stag", build_stag)
    for name in TIMM_NAMES:
        register(name, partial(build_timm, name))


_register_builtin()
