"""Versioned correction tables for known errors of official sheets, keyed by (subject, clip), never by row.

Tables live in `mer/datasets/corrections/<adapter>.toml`; the table used (name, version, sha256) is named in
`LoadResult.corrections` so the store can write it into provenance. A fix whose key matches no sheet row is
reported as a warning (the sheet changed, or the table is wrong).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

CORRECTIONS_DIR = Path(__file__).parent / "corrections"
FIXABLE = ("onset", "apex", "offset", "action_units", "emotion")


@dataclass(frozen=True)
class Correction:
    """New values for one clip's annotation cells, with the reason."""

    subject: str
    clip: str
    values: dict[str, object]
    reason: str = ""


@dataclass
class CorrectionTable:
    """A loaded corrections table; `used` collects the keys that matched a sheet row during a load."""

    name: str
    version: object
    path: str
    sha256: str
    fixes: dict[tuple[str, str], Correction]
    used: set[tuple[str, str]] = field(default_factory=set)

    def label(self) -> str:
        """Provenance text: `casme2 v1 (0 fixes, sha256:…)`."""
        return f"{self.name} v{self.version} ({len(self.fixes)} fixes, sha256:{self.sha256[:16]})"

    def lookup(self, subject: str, clip: str) -> Correction | None:
        """The fix for (subject, clip), marking it used, or None."""
        fix = self.fixes.get((subject, clip))
        if fix is not None:
            self.used.add((subject, clip))
        return fix

    def unused(self) -> list[Correction]:
        """Fixes that matched no row so far."""
        return [f for k, f in self.fixes.items() if k not in self.used]


def load_corrections(spec: str | Path | None) -> CorrectionTable | None:
    """Load a built-in table by adapter name (None if there is none) or a user table by path."""
    if spec is None:
        return None
    if isinstance(spec, Path) or str(spec).endswith(".toml"):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"corrections table not found: {path}")
    else:
        path = CORRECTIONS_DIR / f"{spec}.toml"
        if not path.is_file():
            return None
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML corrections table: {exc}") from None
    entries = raw.get("fix", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ValueError(f"{path}: 'fix' must be a list of tables ([[fix]] with subject, clip and the fixed values)")
    fixes: dict[tuple[str, str], Correction] = {}
    for i, entry in enumerate(entries, start=1):
        subject, clip = str(entry.get("subject", "")), str(entry.get("clip", ""))
        if not subject or not clip:
            raise ValueError(f"{path}: fix #{i} needs subject and clip")
        values = {k: v for k, v in entry.items() if k in FIXABLE}
        unknown = set(entry) - set(FIXABLE) - {"subject", "clip", "reason"}
        if unknown or not values:
            raise ValueError(f"{path}: fix #{i} ({subject}/{clip}): set one of {FIXABLE}; unknown keys {unknown}")
        if (subject, clip) in fixes:
            raise ValueError(f"{path}: two fixes for {subject}/{clip}")
        fixes[(subject, clip)] = Correction(subject, clip, values, str(entry.get("reason", "")))
    return CorrectionTable(
        name=str(raw.get("name", path.stem)),
        version=raw.get("version"),
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        fixes=fixes,
    )
