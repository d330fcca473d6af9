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


def get_builder(name: str) -> Builder:
    """The builder registered under ``name`` (KeyError naming the known models when there is none)."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def create(name: str, num_classes: int, in_channels: int = 3, image_size: int = 224, **options) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes; ``options`` are model-specific (see each builder)."""
    builder = get_builder(name)
    return builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options)


def _register_builtin() -> None:
    from mer.models.baselines import TIMM_NAMES, build_timm
    from mer.models.flow_nets import build_off_apexnet, build_ststnet
    from mer.models.meganet import build_meganet

    register("meganet", build_meganet)
    register("ststnet", build_ststnet)
    register("off_apexnet", build_off_apexnet)
    for name in TIMM_NAMES:
        register(name, partial(build_timm, name))


_register_builtin()
