"""`GET /api/v1/profiles[/{id}]`: what each profile does now, for the dashboard's profile pages.

From the serving snapshot (what the resolver really applies): the categories blocked, safe
search, block mode, each schedule and whether it is active now (and when that changes), the
devices on the profile. From the policy file (as the admin wrote it): description, age mode,
allow and deny entries, client networks. From the roll-ups: today's figures; from the query log
(profiles that log): today's most blocked names. A teacher sees her own profiles only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from resolver.build.policyedit import EditError, model
from resolver.http.admin_keys import CONFIG, PRINCIPAL
from resolver.http.history import category_names, period_report, policy_zone
from resolver.http.params import json_error
from resolver.policy.schedule import Schedule
from resolver.policy.snapshot import PolicySnapshot, Profile
from resolver.store.base import StoreUnavailable

API = "/api/v1"
CHANGE_HORIZON_DAYS = 8  # how far ahead "active until / starts at" looks


def setup_profiles(app: web.Application) -> None:
    app.router.add_get(f"{API}/profiles", profile_list)
    app.router.add_get(f"{API}/profiles/{{id}}", profile_detail)


def next_change(schedule: Schedule, now: float) -> float | None:
    """When the schedule next turns on or off after `now` (None: not within the horizon).

    Its state changes only where a window starts or ends, so only those minutes (and local
    midnights, for holidays) of the coming days are tried.
    """
    state = schedule.active(now)
    today = datetime.fromtimestamp(now, schedule.tz).date()
    edges = {0} | {w.start for w in schedule.windows} | {w.end % 1440 for w in schedule.windows}
    minutes = sorted(edges)
    for offset in range(CHANGE_HORIZON_DAYS + 1):
        day = today + timedelta(days=offset)
        for minute in minutes:
            local = datetime(day.year, day.month, day.day, tzinfo=schedule.tz)
            at = (local + timedelta(minutes=minute)).timestamp()
            if at > now and schedule.active(at) != state:
                return at
    return None


def _schedule(schedule: Schedule, now: float) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "windows": [w.text for w in schedule.windows],
        "block": sorted(schedule.block),
        "safe_search": schedule.safe_search,
        "youtube": schedule.youtube,
        "internet_off": schedule.internet_off,
        "except": sorted(d.isoformat() for d in schedule.except_dates),
        "extra": sorted(d.isoformat() for d in schedule.extra_dates),
        "timezone": str(schedule.tz),
        "active": schedule.active(now),
        "next_change": next_change(schedule, now),
    }


def _devices(snapshot: PolicySnapshot, pid: str) -> list[str]:
    return sorted(name for name, variant in snapshot.devices.items() if variant.id == pid)


def _summary(snapshot: PolicySnapshot, profile: Profile, now: float) -> dict[str, Any]:
    state = profile.compute_state(now)
    return {
        "id": profile.id,
        "block_mode": profile.block_mode.value,
        "categories": len(profile.categories),
        "schedules": [s.name for s in profile.schedules],
        "schedules_active": list(state.active),
        "internet_off": state.internet_off,
        "devices": len(_devices(snapshot, profile.id)),
        "log": profile.log,
    }


def _snapshot(request: web.Request) -> PolicySnapshot:
    snapshot = request.app[CONFIG].control.policy_snapshot()
    if snapshot is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "no policy is loaded"}', content_type="application/json"
        )
    return snapshot


async def profile_list(request: web.Request) -> web.Response:
    snapshot = _snapshot(request)
    now = time.time()
    who = request[PRINCIPAL]
    return web.json_response({
        "now": now,
        "profiles": [_summary(snapshot, p, now) for p in snapshot.profiles.values()
                     if who.may_act_for(p.id)],
    })  # fmt: skip


def _written(policy: str) -> dict[str, Any]:
    """The policy file's own view (blocking: reads the file); {} when it cannot be read."""
    with contextlib.suppress(OSError, EditError, UnicodeDecodeError):
        return model(Path(policy).read_text(encoding="utf-8"))
    return {}


async def profile_detail(request: web.Request) -> web.Response:
    snapshot = _snapshot(request)
    pid = request.match_info["id"]
    profile = snapshot.profiles.get(pid)
    if profile is None:
        return json_error(f"unknown profile {pid[:64]!r}", 404)
    if not request[PRINCIPAL].may_act_for(pid):
        return json_error(f"profile {pid!r} is not one of yours", 403)
    now = time.time()
    state = profile.compute_state(now)
    written = await asyncio.to_thread(_written, snapshot.source)
    spec: dict[str, Any] = next((p for p in written.get("profiles", []) if p["id"] == pid), {})
    now_blocked = sorted(c for c, bit in profile.cat_bits.items() if state.mask & bit)
    body: dict[str, Any] = _summary(snapshot, profile, now) | {
        "now": now,
        "timezone": str(policy_zone(request.app[CONFIG].control)),
        "description": spec.get("description", ""),
        "age": spec.get("age"),
        "categories": sorted(profile.categories),
        "blocked_now": now_blocked,
        "block_ttl": profile.block_ttl,
        "bypass": profile.bypass,
        "safe_search": {"search": profile.search, "youtube": profile.youtube},
        "safe_search_now": {"search": state.search, "youtube": state.youtube},
        "schedules": [_schedule(s, now) for s in profile.schedules],
        "allow": spec.get("allow", []),
        "deny": spec.get("deny", []),
        "block_services": spec.get("block_services", []),
        "allow_services": spec.get("allow_services", []),
        "devices": _devices(snapshot, pid),
        "networks": written.get("networks", {}).get(pid, []),
        "network_count": written.get("network_counts", {}).get(pid, 0),
        "default": written.get("default_profile") == pid,
        "category_names": category_names(set(profile.cat_bits) | set(profile.categories)),
        "today": await _today(request, pid),
    }
    return web.json_response(body)


async def _today(request: web.Request, pid: str) -> dict[str, Any] | None:
    """Today's figures from the roll-ups and, when the profile logs, its most blocked names;
    None without a query log."""
    log = request.app[CONFIG].querylog
    try:
        report = await period_report(request, 1, pid, "day")
    except LookupError:
        return None
    except StoreUnavailable:
        return {"error": "the query-log database is unreachable"}
    start = datetime.fromisoformat(report["from"]).replace(
        tzinfo=policy_zone(request.app[CONFIG].control)
    )
    top: list[dict[str, Any]] = []
    if log is not None:
        with contextlib.suppress(StoreUnavailable):
            summary = await asyncio.to_thread(log.summary, start.timestamp(), time.time(), pid, 10)
            top = summary.top_blocked
    return {
        "totals": report["totals"],
        "by_category": report["by_category"],
        "covered": report["coverage"]["covered"] > 0,
        "top_blocked": top,
    }
