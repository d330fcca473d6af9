"""Dataset adapters (one generic sheet adapter and its specifications, SMIC, DFME, folder, video), label sets and
the clips table."""

from .aus import AU_LIST, au_vector, parse_aus
from .composite import COMPOSITES, CrossDataset, parse_composite, parse_cross
from .frames import frame_number, natural_key, scan_frames
from .labels import BUILTIN_LABEL_SETS, LabelSet, load_label_set, normalise_emotion
from .loader import ADAPTERS, check, default_dataset_name, load
from .manifest import MANIFEST_COLUMNS, LoadResult, empty_manifest, manifest_hash
from .problems import Problem, format_problems

__all__ = [
    "ADAPTERS",
    "AU_LIST",
    "BUILTIN_LABEL_SETS",
    "COMPOSITES",
    "MANIFEST_COLUMNS",
    "CrossDataset",
    "LabelSet",
    "LoadResult",
    "Problem",
    "au_vector",
    "check",
    "default_dataset_name",
    "empty_manifest",
    "format_problems",
    "frame_number",
    "load",
    "load_label_set",
    "manifest_hash",
    "natural_key",
    "normalise_emotion",
    "parse_aus",
    "parse_composite",
    "parse_cross",
    "scan_frames",
]
