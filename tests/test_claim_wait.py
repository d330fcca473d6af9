"""The line a run prints while it waits on clips another process claimed."""

from __future__ import annotations

import calendar

from mer.pipeline.claim_wait import ClaimWaitNotice, claim_holders, claim_wait_message

T0 = calendar.timegm((2026, 12, 1, 9, 40, 7, 0, 0, 0))


def test_one_holder_elsewhere():
    records = [{"host": "lab2", "pid": 4242, "time": T0 + 5}, {"host": "lab2", "pid": 4242, "time": T0}, None]
    message = claim_wait_message(records, now=T0 + 300, timeout_s=3600, this_host="here")
    assert message == (
        "waiting for 2 clip(s) held by host lab2 pid 4242 since 2026-12-01 09:40:07 UTC (5 min ago); "
        "will take over after 3300 s (MER_CLAIM_TIMEOUT=3600)"
    )


def test_several_holders_oldest_first_and_local_exit_mentioned():
    records = [
        {"host": "here", "pid": 7, "time": T0 + 60},
        {"host": "lab2", "pid": 1, "time": T0},
        {"host": "lab2", "pid": 1, "time": T0 + 1},
    ]
    holders = claim_holders(records)
    assert [(h.host, h.pid, h.clips, h.since) for h in holders] == [("lab2", 1, 2, T0), ("here", 7, 1, T0 + 60)]
    message = claim_wait_message(records, now=T0 + 90, timeout_s=100, this_host="here")
    assert message.startswith("waiting for 3 clip(s) held by 2 runs: host lab2 pid 1 since 2026-12-01 09:40:07 UTC")
    assert "host here pid 7 since 2026-12-01 09:41:07 UTC (30 s ago), 1 clip(s)" in message
    assert message.endswith(
        "will take over after 10 s (MER_CLAIM_TIMEOUT=100) or as soon as a holder on this host exits"
    )


def test_stale_claim_says_zero_and_no_records_say_nothing():
    assert "after 0 s" in claim_wait_message([{"host": "x", "pid": 1, "time": T0}], now=T0 + 7200, timeout_s=3600)
    assert claim_wait_message([None, {}], now=T0) is None


def test_notice_repeats_on_change_or_after_its_period():
    notice = ClaimWaitNotice(every_s=60)
    one = [{"host": "lab2", "pid": 1, "time": T0}]
    assert notice.due(one, now=T0 + 1, timeout_s=3600) is not None
    assert notice.due(one, now=T0 + 30, timeout_s=3600) is None
    two = [*one, {"host": "lab3", "pid": 2, "time": T0 + 2}]
    assert "2 runs" in notice.due(two, now=T0 + 31, timeout_s=3600)
    assert notice.due(two, now=T0 + 40, timeout_s=3600) is None
    assert notice.due(two, now=T0 + 92, timeout_s=3600) is not None
