"""Stage declarations: name, inputs, typed parameters, outputs, code version, and the per-clip compute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer.pipeline.context import ClipContext
from mer.store.store import OutputSpec


@dataclass(frozen=True)
class Output:
    """One output array; ``row_shape`` (a function of the params) makes it a dataset array with a clip axis."""

    name: str
    dtype: str | Callable[[Any], str]
    row_shape: Callable[[Any], tuple[int, ...]] | None = None
    dims: tuple[str, ...] = ()  # names of the row axes, e.g. ("channel", "y", "x"); the clip axis comes first

    def dtype_for(self, params: Any) -> str:
        return self.dtype(params) if callable(self.dtype) else self.dtype


@dataclass(frozen=True)
class Stage:
    """A pipeline stage. Bump ``version`` whenever the stored values would change for the same parameters."""

    name: str
    version: str
    params_type: type
    inputs: tuple[str, ...]
    outputs: tuple[Output, ...]
    compute: Callable[[ClipContext, Any], dict[str, np.ndarray]]
    description: str = ""
    attributes: Callable[[Any], dict[str, Any]] | None = None
    """Extra entry attributes derived from the params (e.g. a flow image's channel declaration)."""

    def entry_attributes(self, params: Any) -> dict[str, Any]:
        return self.attributes(params) if self.attributes is not None else {}

    @property
    def primary(self) -> str:
        return self.outputs[0].name

    def output_specs(self, params: Any) -> list[OutputSpec]:
        return [
            OutputSpec(o.name, o.dtype_for(params), o.row_shape is not None,
                       tuple(o.row_shape(params)) if o.row_shape else (), o.dims)
            for o in self.outputs
        ]


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (names are unique)."""
    if stage.name in _REGISTRY and _REGISTRY[stage.name] is not stage:
        raise ValueError(f"stage {stage.name!r} is registered twice")
    _REGISTRY[stage.name] = stage
    return stage


def get_stage(name: str) -> Stage:
    """Look a registered stage up by name (the built-in ones register when :mod:`mer.pipeline.catalog` is imported)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none registered (import mer.pipeline.catalog)"
        raise ValueError(f"unknown stage {name!r}; known: {known}") from None
