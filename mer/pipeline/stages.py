"""Imports every built-in stage module so that they register themselves; names stage groups for the CLI."""

from mer.pipeline import face_stages, flow_stages, ingest, temporal_stages  # noqa: F401

STAGE_GROUPS: dict[str, list[str]] = {
    "face": list(face_stages.FACE_STAGES),
    "flow": list(flow_stages.FLOW_STAGES),
}


def expand_stages(spec: str) -> list[str]:
    """``face,mesti,flow`` → the stage names, groups expanded, order kept, duplicates dropped."""
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        for name in STAGE_GROUPS.get(item, [item] if item else []):
            if name not in names:
                names.append(name)
    return names
