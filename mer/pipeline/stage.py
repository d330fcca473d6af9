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
class BatchCompute:
    """How a stage computes the clips of a group in one call, to fill a device (e.g. ``tvl1-torch`` on a GPU).

    The runner groups clips that lack the stage so that their ``units`` add up to about ``target`` (short clips
    together, a long clip alone), then calls ``compute_many`` once per group. Each clip is still claimed,
    committed, failed and reported on its own. A clip's stored values must not depend on its group (the stage
    key does not name the group size).

    Attributes
    ----------
    compute_many : callable
        ``(ctxs, params) -> results``, one result per context, in order: the clip's output arrays, or the
        exception that its own inputs raised (that clip fails alone). When the call itself raises, the runner
        computes each clip of the group alone with the stage's ``compute``, so that each fails with its own error.
    units : callable
        ``(row, params) -> int``: the work a clip gives from its clips-table row (e.g. frame pairs), without
        reading any data.
    target : callable
        ``(params) -> int``: units per call that fill the device these params run on; ``<= 1`` turns grouping off.
    """

    compute_many: Callable[[list[ClipContext], Any], list[dict[str, np.ndarray] | Exception]]
    units: Callable[[dict[str, Any], Any], int]
    target: Callable[[Any], int]


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
    batch: BatchCompute | None = None
    """Optional: computes a group of clips in one call (see :class:`BatchCompute`); other stages run clip by clip."""

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


def registered_versions() -> dict[str, str]:
    """Stage name → code version of every registered stage (what this code would compute)."""
    return {name: stage.version for name, stage in _REGISTRY.items()}
