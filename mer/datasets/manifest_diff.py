"""How two versions of a dataset's clips table differ: clips added, removed, changed (which fields), and clips whose
frames changed content under the same file names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mer.config import plain_value
from mer.datasets.content import CONTENT_COLUMN

_COMPARED = ("subject", "clip", "onset", "apex", "offset", "n_frames", "frame_numbers", "action_units", "emotion",
             "label", "label_name")


@dataclass
class ManifestDiff:
    """The differences between a stored clips table and a new one."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    content_changed: list[str] = field(default_factory=list)

    @property
    def table_changed(self) -> bool:
        """True when clips, labels, frame spans or frame files differ (not only frame content)."""
        return bool(self.added or self.removed or self.changed)

    def summary(self, limit: int = 8) -> list[str]:
        """One line per kind of change, naming up to ``limit`` clips each."""

        def some(items: list[str]) -> str:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        lines = []
        if self.added:
            lines.append(f"{len(self.added)} clip(s) added: {some(self.added)}")
        if self.removed:
            lines.append(f"{len(self.removed)} clip(s) removed: {some(self.removed)}")
        if self.changed:
            items = [f"{c} ({', '.join(f)})" for c, f in self.changed.items()]
            lines.append(f"{len(self.changed)} clip(s) changed: {some(items)}")
        if self.content_changed:
            n = len(self.content_changed)
            lines.append(f"{n} clip(s) with changed frame content: {some(self.content_changed)}")
        return lines


def diff_manifests(old: pd.DataFrame, new: pd.DataFrame) -> ManifestDiff:
    """Compare two clips tables clip by clip (by ``clip_id``)."""
    diff = ManifestDiff()
    old_rows = {str(r["clip_id"]): r for r in old.to_dict(orient="records")}
    new_rows = {str(r["clip_id"]): r for r in new.to_dict(orient="records")}
    diff.added = [c for c in new_rows if c not in old_rows]
    diff.removed = [c for c in old_rows if c not in new_rows]
    for clip, row in new_rows.items():
        before = old_rows.get(clip)
        if before is None:
            continue
        fields = [c for c in _COMPARED if c in row and c in before and plain_value(row[c]) != plain_value(before[c])]
        names_now = [Path(p).name for p in row.get("frame_paths", [])]
        names_then = [Path(p).name for p in before.get("frame_paths", [])]
        if names_now != names_then:
            fields.append("frame files")
        if fields:
            diff.changed[clip] = fields
        elif plain_value(row.get(CONTENT_COLUMN)) != plain_value(before.get(CONTENT_COLUMN)):
            diff.content_changed.append(clip)
    return diff
