"""Typed parameter sets and canonical hashing: the basis of every store key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def plain_value(value: Any) -> Any:
    """A table cell as a plain value for comparing and hashing: None for missing (None, pandas NA, NaN), lists for
    arrays and tuples (recursively), everything else as it is."""
    if value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, tuples, paths and NumPy scalars into plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite float {obj!r} cannot be part of canonical parameters")
    return obj


def canonical_json(obj: Any) -> str:
    """Serialise to JSON with sorted keys and no whitespace, so equal values give equal text."""
    return json.dumps(
        to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj``, shortened to ``length`` characters."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]


def params_from_dict(params_type: type, values: dict[str, Any] | None) -> Any:
    """Build a frozen params dataclass from a dict, rejecting unknown names with a clear message."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(params_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for {params_type.__name__}; known: {', '.join(sorted(names))}"
        )
    return params_type(**values)
