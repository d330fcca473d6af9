"""The channel declaration of a training input, read from the provenance of the store entries it came from."""

from __future__ import annotations

from typing import Any

from mer.pipeline.flow.image import flow_image_channels


def declared_channels(provenance: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The entries' common ``channels`` attribute (e.g. ``("u", "v", "strain")``), or None when none declares one.

    Several datasets must agree: a composite input whose parts declare different channels is an error. A
    ``flow-image`` entry written before declarations existed (stage version 1) gets the one its parameters imply.
    """
    entries = (provenance or {}).get("entries") or {}
    legacy_flow = (provenance or {}).get("input") == "flow-image"
    found = {}
    for name, e in entries.items():
        if e.get("channels"):
            found[name] = tuple(e["channels"])
        elif legacy_flow:  # a flow-image entry of stage version 1 (no declaration): its params say the scaling
            found[name] = tuple(flow_image_channels((e.get("params") or {}).get("normalise", "minmax")))
    if not found:
        return None
    if len(set(found.values())) > 1:
        listing = "; ".join(f"{name}: {list(ch)}" for name, ch in sorted(found.items()))
        raise ValueError(f"the datasets' inputs declare different channels ({listing})")
    if len(found) != len(entries):
        missing = sorted(set(entries) - set(found))
        other = list(next(iter(found.values())))
        raise ValueError(f"the inputs of {', '.join(missing)} declare no channels, the others {other}")
    return next(iter(found.values()))
