"""Class oversampling of the training rows (drawn again every epoch, seeded).

With ``factor`` f in [0, 1], every class ``c`` with ``n_c`` rows is brought up to
``max(n_c, round(f · n_max))`` rows per epoch (``n_max``: the largest class): all its rows once, plus
``target − n_c`` extra draws: whole copies of the class while they fit, then a random subset without
replacement. ``f = 0`` keeps the rows as they are; ``f = 1`` balances the classes.
"""

from __future__ import annotations

import numpy as np


def oversample_counts(y: np.ndarray, factor: float) -> dict[int, int]:
    """Rows per class after oversampling (``{class: count}``, present classes only)."""
    if not 0 <= factor <= 1:
        raise ValueError(f"oversample factor must be in [0, 1], got {factor}")
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    n_max = int(counts.max()) if len(counts) else 0
    return {int(c): max(int(n), int(round(factor * n_max))) for c, n in zip(classes, counts, strict=True)}


def oversample_rows(rows: np.ndarray, y: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Training rows for one epoch with the minority classes oversampled (``y``: labels of ``rows``)."""
    rows, y = np.asarray(rows), np.asarray(y)
    if len(rows) != len(y):
        raise ValueError(f"{len(rows)} rows but {len(y)} labels")
    if factor <= 0:
        return rows.copy()
    out = [rows]
    for c, target in oversample_counts(y, factor).items():
        members = rows[y == c]
        extra = target - len(members)
        copies, rest = divmod(extra, len(members))
        out += [members] * copies
        if rest:
            out.append(rng.choice(members, size=rest, replace=False))
    return np.concatenate(out)
