"""Overlay entries in the real build, at times given to it (a fake clock): approvals that end,
the end of a day in Asia/Ho_Chi_Minh, pauses that beat a schedule, entries left out."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from resolver.build.compile import build_snapshot, compile_policy
from resolver.policy.decide import decide
from resolver.store.overlay import add_entry, new_entry, prune_expired, read_overlay, until_from

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = """\
version: 1
timezone: Asia/Ho_Chi_Minh
clients:
  default: 10a1
  networks: {127.0.10.2/32: 10a2}
profiles:
  10a1: {age: 11-14, schedules: [lesson]}
  10a2: {age: 11-14, schedules: [lesson]}
schedules:
  lesson: {windows: ["mon-sun 07:00-17:00"], block: [video]}
devices:
  an-phone: {profile: 10a1, token: an0phone0token0123456}
overlay: overlay.yaml
"""
A1, A2 = "127.0.0.1", "127.0.10.2"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=HCM)  # a Monday, in the lesson


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def action(policy: Path, client: str, name: str, at: float) -> str:
    snap = compile_policy(policy, now=at)
    return decide(snap, client, name, 1, at).action.value


def add(policy: Path, kind: str, profile: str, target_kind: str, target: str, **kw) -> float:
    now = kw.pop("now", T0)
    until = until_from(
        kw.pop("minutes", None), kw.pop("until", None), now, permanent_ok=kind == "allow"
    )
    entry = new_entry(kind, profile, target_kind, target, until=until, now=now.timestamp(), **kw)
    add_entry(policy.parent / "overlay.yaml", entry, HCM)
    return until if until is not None else float("inf")


def test_an_approval_for_one_hour_ends_on_the_second(policy: Path):
    ends = add(policy, "allow", "10a1", "name", "pornhub.com", minutes=60)
    assert ends == T0.timestamp() + 3600
    assert action(policy, A1, "www.pornhub.com", ends - 1) == "allow"
    assert action(policy, A2, "www.pornhub.com", ends - 1) == "block"  # her class only
    assert action(policy, A1, "www.pornhub.com", ends) == "block"
    built = build_snapshot(policy, now=T0.timestamp())
    assert built.overlay_expiry == ends  # the supervisor's timer is armed for it


def test_until_the_end_of_the_day_in_ho_chi_minh(policy: Path):
    late = datetime(2026, 3, 2, 23, 30, tzinfo=HCM)
    ends = add(policy, "allow", "10a1", "name", "pornhub.com", until="today", now=late)
    assert datetime.fromtimestamp(ends, HCM) == datetime(2026, 3, 3, 0, 0, tzinfo=HCM)
    assert datetime.fromtimestamp(ends, ZoneInfo("UTC")).hour == 17  # not UTC's midnight
    assert action(policy, A1, "pornhub.com", ends - 1) == "allow"
    assert action(policy, A1, "pornhub.com", ends) == "block"


def test_until_a_date_permanent_and_refusals():
    assert until_from(None, "2026-03-10", T0) == datetime(2026, 3, 11, tzinfo=HCM).timestamp()
    assert (
        until_from(None, "2026-03-10T12:00", T0)
        == datetime(2026, 3, 10, 12, tzinfo=HCM).timestamp()
    )
    assert until_from(None, None, T0) is None and until_from(None, "permanent", T0) is None
    for minutes, until, why in (
        (0, None, "1 to"),
        ("x", None, "whole"),
        (60, "today", "not both"),
        (None, "tomorrow", "bad"),
        (None, "2026-13-01", "bad date"),
    ):
        with pytest.raises(ValueError, match=why):
            until_from(minutes, until, T0)
    with pytest.raises(ValueError, match="a pause needs"):
        until_from(None, None, T0, permanent_ok=False)
    with pytest.raises(ValueError, match="passed"):
        new_entry("allow", "10a1", "name", "x.example", until=1.0, now=2.0)


def test_a_pause_beats_the_lesson_schedule_for_its_profile_and_ends(policy: Path):
    assert action(policy, A1, "youtube.com", T0.timestamp()) == "block"  # the lesson blocks video
    ends = add(policy, "pause", "10a1", "category", "video", minutes=45, by="lan")
    assert action(policy, A1, "youtube.com", ends - 1) == "allow"
    assert action(policy, A2, "youtube.com", ends - 1) == "block"  # 10a2 is not paused
    snap = compile_policy(policy, now=ends - 1)
    phone = snap.devices["an-phone"]  # her pupils' devices follow the profile
    assert decide(snap, A2, "youtube.com", 1, ends - 1, chosen=phone).action.value == "allow"
    assert action(policy, A1, "youtube.com", ends) == "block"
    assert action(policy, A1, "pornhub.com", ends - 1) == "block"  # only what was paused


def test_a_name_pause_and_the_earliest_end_arms_the_timer(policy: Path):
    first = add(policy, "pause", "10a1", "name", "youtube.com", minutes=10)
    add(policy, "allow", "10a1", "name", "pornhub.com", minutes=120)
    assert action(policy, A1, "youtube.com", first - 1) == "allow"
    assert build_snapshot(policy, now=T0.timestamp()).overlay_expiry == first
    assert build_snapshot(policy, now=first).overlay_expiry == T0.timestamp() + 7200


def test_bad_and_expired_entries_are_left_out_with_a_warning(policy: Path):
    (policy.parent / "overlay.yaml").write_text("""\
allow:
  - {profile: 10a9, name: pornhub.com}
  - {profile: 10a1, name: "bad name!"}
  - {profile: 10a1, name: ok.example, until: "2020-01-01T00:00:00+07:00"}
pause:
  - {profile: 10a1, category: mandated, until: "2030-01-01T00:00:00+07:00"}
  - {profile: 10a1, category: video}
  - {profile: 10a1, service: youtub, until: "2030-01-01T00:00:00+07:00"}
""")
    snap = compile_policy(policy, now=T0.timestamp())
    warned = sorted((w.line, w.message) for w in snap.warnings if w.file.endswith("overlay.yaml"))
    assert [line for line, _ in warned] == [2, 3, 6, 7, 8]
    assert all(message.endswith("(entry left out)") for _, message in warned)
    assert "unknown profile '10a9'" in warned[0][1] and "cannot be paused" in warned[2][1]
    assert "needs an `until`" in warned[3][1] and "unknown service 'youtub'" in warned[4][1]
    assert decide(snap, A1, "ok.example", 1, T0.timestamp()).tier.value != "allow"


def test_expired_entries_are_pruned_from_the_file(policy: Path):
    ends = add(policy, "allow", "10a1", "name", "a.example", minutes=5)
    add(policy, "allow", "10a1", "name", "b.example")
    path = policy.parent / "overlay.yaml"
    assert prune_expired(path, ends - 1, HCM) == []
    (gone,) = prune_expired(path, ends, HCM)
    assert gone.target == "a.example"
    assert [e.target for e in read_overlay(path, HCM)] == ["b.example"]


def test_a_service_pause_lets_that_service_through_for_the_lesson(policy: Path):
    """A teacher allows YouTube for 10A1 for 45 minutes: the service's domains, not its
    category."""
    blocking = "10a1: {age: 11-14, block_services: [youtube, tiktok]}"
    policy.write_text(POLICY.replace("10a1: {age: 11-14, schedules: [lesson]}", blocking))
    at = T0.timestamp()
    assert action(policy, A1, "www.youtube.com", at) == "block"
    ends = add(policy, "pause", "10a1", "service", "youtube", minutes=45, by="lan")
    assert action(policy, A1, "www.youtube.com", ends - 1) == "rewrite"  # restricted mode, open
    assert action(policy, A1, "www.tiktok.com", ends - 1) == "block"  # only what was paused
    assert action(policy, A1, "www.youtube.com", ends) == "block"
