"""`GET /api/v1/history`: the dashboard's history, from the daily roll-ups (`resolver.rollup`).

Why roll-ups and not the raw log: they count every answer (also of `log: false` profiles), are
kept for years and hold no client, so a six-month chart is exact and cheap. The figures are the
reports' own (`resolver.store.reports.build_report`): queries, blocked (by category), mandated,
rewritten, safe search, per local day of the policy's time zone; a day the server was not up is
`covered: false`, never a zero.

`period`: `day` (today), `week` (today and the 6 days before), `6months` (183 days);
`profile` narrows to one profile.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from resolver.http.admin_keys import CONFIG
from resolver.http.i18n import category_label
from resolver.http.params import json_error
from resolver.http.ports import ResolverControl
from resolver.policy.schema import DEFAULT_TIMEZONE
from resolver.store.base import StoreUnavailable
from resolver.store.reports import COUNTS, NotCovered, Period, build_report

API = "/api/v1"
PERIODS = {"day": 1, "week": 7, "6months": 183}
TOP = 20


def setup_history(app: web.Application) -> None:
    app.router.add_get(f"{API}/history", history)


def policy_zone(control: ResolverControl) -> tzinfo:
    """The serving policy's time zone: its days are the roll-ups' days."""
    snapshot = control.policy_snapshot()
    zone: tzinfo = snapshot.timezone if snapshot is not None else ZoneInfo(DEFAULT_TIMEZONE)
    return zone


def category_names(categories: Any) -> dict[str, dict[str, str]]:
    return {c: {lang: category_label(c, lang) for lang in ("vi", "en")} for c in categories}


async def period_report(
    request: web.Request, days: int, profile: str | None, label: str
) -> dict[str, Any]:
    """The roll-ups of the last `days` local days (today included) as the history shows them.
    Raises LookupError when there is no query log (hence no roll-ups), StoreUnavailable."""
    cfg = request.app[CONFIG]
    if cfg.querylog is None:
        raise LookupError("the query log is disabled: no roll-ups are kept")
    now = time.time()
    today = datetime.fromtimestamp(now, policy_zone(cfg.control)).date()
    span = Period(today - timedelta(days=days - 1), today, label)
    try:
        report = await asyncio.to_thread(
            build_report, cfg.querylog.reader, span, profile=profile, top=TOP, now=now
        )
    except NotCovered:
        return _empty(span, profile)
    return {
        "period": label,
        "from": report["from"],
        "to": report["to"],
        "timezone": report["timezone"],
        "profile": profile,
        "coverage": report["coverage"],
        "totals": report["totals"],
        "per_day": report["per_day"],
        "per_profile": report["per_profile"],
        "by_category": report["by_category"],
        "top_blocked": report["top_blocked"],
        "requests": report["requests"],
        "category_names": category_names(c["category"] for c in report["by_category"]),
    }


def _empty(span: Period, profile: str | None) -> dict[str, Any]:
    """No day of the period has data (a new server, or the query log was just turned on)."""
    days = [d.isoformat() for d in span.days]
    return {
        "period": span.label, "from": days[0], "to": days[-1], "timezone": None,
        "profile": profile,
        "coverage": {"days": len(days), "covered": 0, "complete": False, "missing": [],
                     "partial": []},
        "totals": dict.fromkeys(COUNTS, 0),
        "per_day": [{"day": d, "covered": False, "up_hours": None} | dict.fromkeys(COUNTS)
                    for d in days],
        "per_profile": [], "by_category": [], "top_blocked": [], "requests": {},
        "category_names": {},
    }  # fmt: skip


async def history(request: web.Request) -> web.Response:
    period = request.query.get("period", "week")
    if period not in PERIODS:
        return json_error(f"period: one of {', '.join(PERIODS)}")
    profile = request.query.get("profile") or None
    try:
        body = await period_report(request, PERIODS[period], profile, period)
    except LookupError as exc:
        return json_error(str(exc), 404)
    except StoreUnavailable:
        return json_error("the query-log database is unreachable", 503)
    return web.json_response(body)
