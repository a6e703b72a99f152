"""Schedules against the wall clock: windows written around "now" when the policy is written.

Every `sched-*` profile is unrestricted plus one schedule blocking `games` (see
`schedules_around_now`): only the schedules covering the current minute may block.
"""

from __future__ import annotations

import dns.rcode
import pytest
from policy_e2e_support import (
    ALLOWED_V4,
    BLOCKPAGE,
    CLIENTS,
    EDE_FILTERED,
    Served,
    ask,
    ede,
    explain,
    records,
)

GAME = "game.w.example.org"


@pytest.mark.parametrize("profile", ["sched-now", "sched-paris"])
def test_active_window_blocks(served: Served, profile: str) -> None:
    resp = ask(served.rp, GAME, "A", source=CLIENTS[profile])
    assert records(resp, "A") == [BLOCKPAGE[0]], resp
    assert ede(resp)[0][0] == EDE_FILTERED and "schedule" in ede(resp)[0][1]
    # Only the schedule's categories: other names pass.
    assert records(ask(served.rp, "other.w.example.org", "A", source=CLIENTS[profile]), "A") == [
        ALLOWED_V4
    ]


@pytest.mark.parametrize("profile", ["sched-other-day", "sched-holiday", "sched-utc-hours"])
def test_inactive_window_does_not_block(served: Served, profile: str) -> None:
    resp = ask(served.rp, GAME, "A", source=CLIENTS[profile])
    assert resp.rcode() == dns.rcode.NOERROR and records(resp, "A") == [ALLOWED_V4], resp


def test_explain_agrees_on_schedule_state(served: Served) -> None:
    on = explain(served.policy, CLIENTS["sched-now"], GAME)
    assert on["schedules_active"] == ["now"]
    assert (on["action"], on["tier"], on["category"]) == ("block", "schedule", "games")
    off = explain(served.policy, CLIENTS["sched-holiday"], GAME)
    assert off["schedules_active"] == [] and off["action"] == "allow"
