"""Generic folder adapter (`folder`): any dataset laid out as one folder per clip plus one sheet.

Expected layout::

    DIR/
      annotations.csv                    (or annotations.xlsx / .xls / .tsv; or pass annotations=PATH)
      <subject>/<clip>/<frames>          jpg/jpeg/bmp/png, numbered by the last run of digits in the name;
                                         other files (e.g. truth.npz) are ignored

Sheet columns: `subject`, `clip`, `onset`, `offset`, `emotion` (required), `apex`, `action_units`, `n_frames`
(optional). `column_map={"Their header": "subject", …}` maps other headers onto these. The dataset name (the
manifest's `dataset` column, the store's folder) is `dataset_name` if given, else DIR's name plus a short hash of
its resolved path (`dataset_name_for`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from mer.names import validate_component

from .layout import read_sheet_adapter, resolve_subject, safe_join, subdirs
from .manifest import AdapterOutput
from .problems import Problem
from .sheets import Column

NAME = "folder"
SHEET_NAMES = ("annotations.csv", "annotations.xlsx", "annotations.xls", "annotations.tsv")
COLUMNS = [
    Column("subject", ("subject",)),
    Column("clip", ("clip",)),
    Column("onset", ("onset",)),
    Column("apex", ("apex",), required=False),
    Column("offset", ("offset",)),
    Column("action_units", ("action_units", "aus", "au"), required=False),
    Column("emotion", ("emotion",)),
    Column("n_frames", ("n_frames",), required=False),
]


def dataset_name_for(root: Path, dataset_name: str | None = None) -> str:
    """The dataset name: `dataset_name` if given (it must be a safe name, `mer.names`), else DIR's name reduced to
    letters, digits and `._-` plus 8 hex digits of the SHA-256 of DIR's resolved path (`data-1a2b3c4d`), so that two
    different folders never share a name in one store. Pass a name for one that stays when the data moves."""
    if dataset_name:
        return validate_component("dataset", dataset_name)
    resolved = Path(root).resolve()
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name).strip("._")[:64] or NAME
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:8]
    return f"{clean}-{digest}"


def read(
    root: Path,
    annotations: Path | None,
    column_map: dict[str, str] | None,
    problems: list[Problem],
    dataset_name: str | None = None,
    folder_of: Callable[[Path, str, str], Path | None] | None = None,
) -> AdapterOutput:
    """Read a generic folder dataset under `root` into records; `folder_of(root, subject, clip)` places a clip
    (default: the folder `root/subject/clip`; the `video` adapter finds a video file instead)."""
    folders = subdirs(root)
    place = folder_of or safe_join
    return read_sheet_adapter(
        dataset_name_for(root, dataset_name),
        root,
        annotations,
        column_map,
        problems,
        SHEET_NAMES,
        COLUMNS,
        subject_of=lambda v: resolve_subject(v, folders),
        folder_of=lambda subject, clip, values: place(root, subject, clip),
    )
