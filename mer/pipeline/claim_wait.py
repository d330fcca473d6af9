"""What a run says while it waits on clips another process has claimed: who holds them, since when, for how long.

The claim records are the store's (``{"host", "pid", "time"}``, `FeatureStore.try_claim`). A claim is taken over on
this host as soon as its process is gone, elsewhere once it is older than ``MER_CLAIM_TIMEOUT`` seconds (default
3600): the message says when that is, so that nobody waits an hour in silence.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TIMEOUT_ENV = "MER_CLAIM_TIMEOUT"
DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class ClaimHolder:
    """One process holding claims: where it runs, its oldest claim's time (seconds since the epoch), its clips."""

    host: str
    pid: int
    since: float
    clips: int


def claim_timeout_s() -> float:
    """Seconds after which a claim from another host is taken over (``MER_CLAIM_TIMEOUT``, default 3600)."""
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def claim_holders(records: Iterable[Mapping[str, Any] | None]) -> list[ClaimHolder]:
    """Group claim records by (host, pid), oldest first; unreadable records (None) are skipped (they are taken
    over at once)."""
    groups: dict[tuple[str, int], list[float]] = {}
    for record in records:
        if not record or "host" not in record or "pid" not in record:
            continue
        groups.setdefault((str(record["host"]), int(record["pid"])), []).append(float(record.get("time", 0.0)))
    holders = [ClaimHolder(host, pid, min(times), len(times)) for (host, pid), times in groups.items()]
    return sorted(holders, key=lambda h: (h.since, h.host, h.pid))


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def claim_wait_message(
    records: Iterable[Mapping[str, Any] | None],
    now: float | None = None,
    timeout_s: float | None = None,
    this_host: str | None = None,
) -> str | None:
    """One line such as ``waiting for 3 clips held by host lab2 pid 4242 since 2026-12-01 09:40:07 UTC (5 min ago);
    will take over after 3300 s (MER_CLAIM_TIMEOUT=3600)``, or None when no record is readable.

    ``now`` (seconds since the epoch), ``timeout_s`` and ``this_host`` default to the clock, ``MER_CLAIM_TIMEOUT``
    and this machine's name. The take-over time is that of the oldest claim (the first clips this run gets).
    """
    holders = claim_holders(records)
    if not holders:
        return None
    now = time.time() if now is None else now
    timeout_s = claim_timeout_s() if timeout_s is None else timeout_s
    this_host = socket.gethostname() if this_host is None else this_host
    n_clips = sum(h.clips for h in holders)

    def who(h: ClaimHolder) -> str:
        return f"host {h.host} pid {h.pid} since {_clock(h.since)} ({_ago(now - h.since)})"

    if len(holders) == 1:
        held = f"held by {who(holders[0])}"
    else:
        held = f"held by {len(holders)} runs: " + ", ".join(f"{who(h)}, {h.clips} clip(s)" for h in holders)
    after = max(0.0, holders[0].since + timeout_s - now)
    local = any(h.host == this_host for h in holders)
    when = f"will take over after {after:.0f} s ({TIMEOUT_ENV}={timeout_s:g})"
    if local:
        when += " or as soon as a holder on this host exits"
    return f"waiting for {n_clips} clip(s) {held}; {when}"


class ClaimWaitNotice:
    """Decides when the runner repeats the waiting line: the first time, when the holding processes change, and every
    ``every_s`` seconds in between (a waiting run is never silent, nor chatty)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._last_time: float | None = None
        self._last_holders: list[tuple[str, int]] | None = None

    def due(self, records: Iterable[Mapping[str, Any] | None], now: float | None = None, **kwargs: Any) -> str | None:
        """The message to print now, or None when nothing changed and ``every_s`` has not passed."""
        records = list(records)
        now = time.time() if now is None else now
        holders = sorted((h.host, h.pid) for h in claim_holders(records))
        if not holders:
            self._last_holders = None
            return None
        repeat = self._last_time is None or now - self._last_time >= self.every_s
        if not repeat and holders == self._last_holders:
            return None
        self._last_time, self._last_holders = now, holders
        return claim_wait_message(records, now=now, **kwargs)
