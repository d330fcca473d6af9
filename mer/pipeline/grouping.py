"""Which pending clips the runner computes together: groups whose work units fill a stage's batch target."""

from __future__ import annotations

import math
from collections.abc import Sequence


def group_clips(units: Sequence[tuple[int, int]], target: int, workers: int = 1) -> list[list[int]]:
    """Pack clips into groups of about ``target`` work units, in the given order (next fit).

    A clip that alone reaches the target forms its own group; short clips are added to the open group until one
    more would pass the target. With several workers the target is lowered, where the work is small, so that
    there are at least as many groups as workers (no worker idles while another holds all the work).

    Parameters
    ----------
    units : sequence of (int, int)
        ``(clip index, work units)`` of each clip, in the order to run them (e.g. longest first).
    target : int
        Work units per group (e.g. frame pairs per kernel call); ``<= 1`` puts every clip in a group of its own.
    workers : int, default 1
        Workers the groups are spread over, ``>= 1``.

    Returns
    -------
    list of list of int
        Clip indices per group, every clip once, order kept.
    """
    total = sum(max(1, n) for _, n in units)
    target = min(target, max(1, math.ceil(total / max(1, workers))))
    groups: list[list[int]] = []
    open_group: list[int] = []
    filled = 0
    for index, n in units:
        n = max(1, n)
        if n >= target:
            groups.append([index])  # a long clip fills (or overfills) a batch of its own
            continue
        if open_group and filled + n > target:
            groups.append(open_group)
            open_group, filled = [], 0
        open_group.append(index)
        filled += n
    if open_group:
        groups.append(open_group)
    return groups
