"""Model registry: build any model by name with a uniform signature."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

Builder = Callable[..., nn.Module]
InputsFn = Callable[[dict], dict[str, str]]
_REGISTRY: dict[str, Builder] = {}
_INPUTS: dict[str, InputsFn] = {}


def register(name: str, builder: Builder, inputs: InputsFn | None = None) -> None:
    """Register ``builder(num_classes, in_channels, image_size, **options)`` under ``name``.

    ``inputs(options)`` gives the default store source of each named input of a multi-input model
    (e.g. ``{"onset": "onset-raw", "apex": "apex-frame-raw", "au": "manifest:au_vector"}``).
    """
    _REGISTRY[name.lower()] = builder
    if inputs is not None:
        _INPUTS[name.lower()] = inputs


def default_inputs(name: str, options: dict | None = None) -> dict[str, str] | None:
    """Default sources of a multi-input model's named inputs, or None for a single-input model."""
    fn = _INPUTS.get(name.lower())
    return fn(dict(options or {})) if fn is not None else None


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
    from mer.models.facesleuth import build_facesleuth, facesleuth_inputs
    from mer.models.flow_nets import build_off_apexnet, build_ststnet
    from mer.models.meganet import build_meganet
    from mer.models.mmnet import build_mmnet
    from mer.models.stag import build_stag, stag_inputs

    register("meganet", build_meganet)
    register("ststnet", build_ststnet)
    register("off_apexnet", build_off_apexnet)
    register("mmnet", build_mmnet, lambda options: {"onset": "onset-raw", "apex": "apex-frame-raw"})
    register("facesleuth", build_facesleuth, facesleuth_inputs)
    register("stag", build_stag, stag_inputs)
    for name in TIMM_NAMES:
        register(name, partial(build_timm, name))


_register_builtin()
