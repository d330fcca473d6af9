"""The built-in stages: importing this module imports every topic package (each registers its stages on import)
and names the stage groups the CLI accepts (``face``, ``flow``)."""

from mer.pipeline import face, flow, ingest, temporal
from mer.pipeline.face.stages import FACE_STAGES
from mer.pipeline.flow.stages import FLOW_STAGES
from mer.pipeline.stage import registered_versions

TOPICS = (ingest, face, temporal, flow)
"""The topic modules whose stages make up the built-in catalogue, in pipeline order."""

STAGE_GROUPS: dict[str, list[str]] = {
    "face": list(FACE_STAGES),
    "flow": list(FLOW_STAGES),
}


def expand_stages(spec: str) -> list[str]:
    """``face,mesti,flow`` → the stage names, groups expanded, order kept, duplicates dropped."""
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        for name in STAGE_GROUPS.get(item, [item] if item else []):
            if name not in names:
                names.append(name)
    return names


def stage_versions() -> dict[str, str]:
    """Stage name → code version of every built-in stage (registered by importing this module) and any other one
    registered since: what this code computes, e.g. to pick the current entry among an upgrade's older ones."""
    return registered_versions()
