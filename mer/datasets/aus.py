"""Action Unit strings from FACS codings.

Examples: `"1+2"`, `"AU4 + R12C"`, `"L14"`, `"R20+"`, `"4+7(k)"`, `"R12 or R15"`. The AU number is the
digits of each token; side prefixes (L/R/B/T/U), intensity letters (A-E) and marks such as `(k)` are kept as
text in `details`. `AU_LIST` is the 21-AU vocabulary of the FaceSleuth AU embedding (FACS has no AU3, so
"AU01-07" is 1, 2, 4, 5, 6, 7); AUs outside it are kept in `numbers` but not in the vector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AU_LIST: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 18, 20, 23, 24, 25, 26, 28, 45)

_TOKEN = re.compile(r"([A-Za-z]*?)\s*(\d+)\s*([A-Za-z]*)\s*(\([^)]*\))?")
_OR = re.compile(r"\s+or\s+|/|\|", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAUs:
    """Result of `parse_aus`: sorted unique AU numbers and a normalised text with side/intensity marks."""

    numbers: tuple[int, ...]
    details: str
    unparsed: tuple[str, ...] = ()


def _token_text(match: re.Match) -> str:
    prefix, digits, suffix, paren = match.groups()
    if prefix.upper().startswith("AU"):
        prefix = prefix[2:]
    return f"{prefix.upper()}{int(digits)}{suffix.upper()}{(paren or '').lower().replace(' ', '')}"


def parse_aus(text: object) -> ParsedAUs:
    """Parse one AU cell; alternatives joined by "or" are all kept (as `a|b` in details)."""
    if text is None:
        return ParsedAUs((), "")
    raw = str(text).strip()
    if raw.lower() in {"", "nan", "none", "/", "-", "?", "n/a"}:
        return ParsedAUs((), "")
    if re.fullmatch(r"\d+\.0", raw):  # a single AU read from Excel as a float
        raw = raw[:-2]
    numbers: set[int] = set()
    parts: list[str] = []
    unparsed: list[str] = []
    for part in re.split(r"[+,;&]", raw):
        if not part.strip():
            continue
        alternatives = []
        for alt in _OR.split(part):
            alt = alt.strip()
            if not alt:
                continue
            found = list(_TOKEN.finditer(alt))
            if not found:
                unparsed.append(alt)
                continue
            for m in found:
                numbers.add(int(m.group(2)))
            alternatives.append("".join(_token_text(m) for m in found))
        if alternatives:
            parts.append("|".join(alternatives))
    return ParsedAUs(tuple(sorted(numbers)), "+".join(parts), tuple(unparsed))


def au_vector(numbers: tuple[int, ...] | list[int], au_list: tuple[int, ...] = AU_LIST) -> list[int]:
    """0/1 list over `au_list` (default `AU_LIST`)."""
    present = set(numbers)
    return [1 if au in present else 0 for au in au_list]
