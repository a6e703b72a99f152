"""The reports for the authorities (six-monthly and yearly), built from the daily roll-ups only.

Why roll-ups: the raw query log is kept `retention_days` and misses `log: false` profiles, so
a report from it shrinks as retention deletes rows; the roll-ups are kept for years
(`report_retention_days`) and count every answer (`resolver.rollup`). `purge --all` and the raw
log's retention never touch them, so a report gives the same figures before and after.

Coverage is stated, never guessed: a day is covered when the server recorded that it was up
that day (the writer's heartbeat, so a quiet day is 0, not missing) or has counts. A report
lists the days it has no data for (server down, before installation, after the report was
made) and days the server was up less than PARTIAL_BELOW of; a period with no covered day at
all is refused (`NotCovered`). Days are the policy's local calendar days (the time zone the
roll-ups were cut in is stated in the report); `--from` and `--to` are both inclusive.

Only aggregates leave the database: no client appears in any report. Names are whatever a
client asked for: a pupil who queries `=1+2.xvideos.com` must not plant a formula in the
spreadsheet the authorities open. CSV cells follow OWASP's "CSV Injection" advice: every text
cell is quoted, and one that starts with = + - @ TAB or CR gets a leading single quote so the
spreadsheet shows it as text. The JSON follows `report.schema.json` (beside this module),
versioned by `schema_version`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from resolver.policy.schema import DEFAULT_TIMEZONE
from resolver.rollup import FIGURES, figures, local_day
from resolver.rollup import day_start as local_midnight
from resolver.store.base import QueryStore

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
COUNTS = FIGURES  # queries, blocked, rewritten, mandated, safesearch
DEFAULT_TOP = 100
PARTIAL_BELOW = 0.9  # a past day the server was up less than this share of is "partial"
REQUEST_KINDS = ("unblock_approved", "unblock_rejected", "content_report")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PERIOD = re.compile(r"(\d{4})(?:-(H[12]|Q[1-4]|\d{2}))?")


class NotCovered(Exception):
    """No day of the period has any data: there is nothing true to report."""


@dataclass(frozen=True, slots=True)
class Period:
    """Local days [first, last], both inclusive; `label` as asked (`2026-H1`) or None."""

    first: date
    last: date
    label: str | None = None

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def parse_period(text: str) -> Period:
    """`2026` (the year), `2026-H1` / `2026-H2` (half years), `2026-Q1`..`Q4`, `2026-03`."""
    match = _PERIOD.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"--period {text!r}: expected YYYY, YYYY-H1, YYYY-H2, YYYY-Q1..Q4 or YYYY-MM"
        )
    year, part = int(match[1]), match[2]
    first_month, months = 1, 12
    if part is not None and part[0] == "H":
        first_month, months = (1, 6) if part == "H1" else (7, 6)
    elif part is not None and part[0] == "Q":
        first_month, months = 3 * int(part[1]) - 2, 3
    elif part is not None:
        first_month, months = int(part), 1
        if not 1 <= first_month <= 12:
            raise ValueError(f"--period {text!r}: no month {part}")
    end_month = first_month + months  # the month after the period
    after = date(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
    return Period(date(year, first_month, 1), after - timedelta(days=1), text.strip())


def period_between(date_from: str, date_to: str) -> Period:
    """`--from D --to D` (inclusive local dates); ValueError with a readable message."""
    try:
        first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError as exc:
        raise ValueError(f"dates must be YYYY-MM-DD: {exc}") from None
    if last < first:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    return Period(first, last)


def spreadsheet_cell(value: object) -> object:
    """`value` as a spreadsheet will read it as data: numbers stay numbers, text that would
    start a formula gets a leading single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _zero() -> list[int]:
    return [0] * len(COUNTS)


def _add(into: list[int], flags: tuple[int, ...], n: int) -> None:
    for i, flag in enumerate(flags):
        if flag:
            into[i] += n


def _named(counts: list[int]) -> dict[str, int]:
    return dict(zip(COUNTS, counts, strict=True))


def build_report(
    store: QueryStore,
    period: Period,
    *,
    profile: str | None = None,
    top: int = DEFAULT_TOP,
    organisation: dict[str, str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The report as plain data (what `--format json` prints; see report.schema.json).
    Raises `NotCovered` when no day of the period has data."""
    now = time.time() if now is None else now
    first, last = period.first.isoformat(), period.last.isoformat()
    rows = store.read_rollups(first, last, profile)
    zones = Counter(row[2] for row in rows.days)
    zone = _zone(zones.most_common(1)[0][0] if zones else DEFAULT_TIMEZONE)
    today = local_day(now, zone)[0]

    per_day: dict[str, list[int]] = {}
    per_profile: dict[str, list[int]] = {}
    by_category: Counter[str] = Counter()
    mandated_by_action: Counter[str] = Counter()
    totals = _zero()
    for day, prof, category, tier, action, n in rows.counts:
        flags = figures(tier, action)
        _add(totals, flags, n)
        _add(per_day.setdefault(day, _zero()), flags, n)
        _add(per_profile.setdefault(prof, _zero()), flags, n)
        if flags[1]:
            by_category[category] += n
        if flags[3]:
            mandated_by_action[action] += n
    up: dict[str, float] = {}
    servers: set[str] = set()
    for day, server, _tz, _first, _last, seconds in rows.days:
        up[day] = max(up.get(day, 0.0), seconds)
        servers.add(server)

    coverage = _coverage(period, set(per_day) | set(up), up, zone, today)
    if not coverage["covered"]:
        raise NotCovered(
            f"no data for any day from {first} to {last}: the resolver did not run in that "
            "period, or ran a version without roll-ups, or the roll-ups were removed by "
            "report_retention_days"
        )
    start = local_midnight(period.first, zone)
    end = min(local_midnight(period.last + timedelta(days=1), zone), now)
    reloads = Counter(row["result"] for row in store.read_audit(start, end, "reload"))
    requests = Counter[str]()
    for _day, kind, n in rows.requests:
        requests[kind] += n
    return {
        "schema_version": SCHEMA_VERSION,
        "from": first,
        "to": last,
        "period": period.label,
        "profile": profile,
        "generated": datetime.fromtimestamp(now, zone).isoformat(timespec="seconds"),
        "timezone": zone.key,
        "organisation": {
            key: (organisation or {}).get(key, "") for key in ("name", "address", "contact")
        },
        "coverage": coverage | {"servers": sorted(servers)},
        "totals": _named(totals),
        "mandated": {
            "hits": totals[3],
            "by_action": dict(sorted(mandated_by_action.items())),
        },
        "per_day": [_day_row(day.isoformat(), per_day, up) for day in period.days],
        "per_profile": [
            {"profile": name} | _named(counts)
            for name, counts in sorted(per_profile.items(), key=lambda kv: (-kv[1][0], kv[0]))
        ],
        "by_category": [
            {"category": name, "blocked": n}
            for name, n in sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "top_blocked": []
        if profile is not None
        else [
            {"domain": domain, "blocked": n}
            for domain, n in sorted(rows.top, key=lambda kv: (-kv[1], kv[0]))[:top]
        ],
        "list_versions": _versions(store.lists_in_force(start, end), zone),
        "reloads": {"ok": reloads.get("ok", 0), "failed": reloads.get("failed", 0)},
        "requests": {kind: requests.get(kind, 0) for kind in REQUEST_KINDS},
    }


def _day_row(day: str, per_day: dict[str, list[int]], up: dict[str, float]) -> dict[str, Any]:
    """One day's figures: counts for a covered day (0 when quiet), None for one without data."""
    covered = day in per_day or day in up
    counts = _named(per_day.get(day, _zero())) if covered else dict.fromkeys(COUNTS)
    hours = round(up[day] / 3600, 2) if day in up else None
    return {"day": day, "covered": covered, "up_hours": hours} | counts


def _coverage(
    period: Period, covered: set[str], up: dict[str, float], zone: ZoneInfo, today: str
) -> dict[str, Any]:
    """Which days have data, which have none (as ranges, with why), which are partial."""
    missing: list[dict[str, Any]] = []
    partial = []
    for day in period.days:
        text = day.isoformat()
        if text in covered:
            length = local_midnight(day + timedelta(days=1), zone) - local_midnight(day, zone)
            if text < today and text in up and up[text] < PARTIAL_BELOW * length:
                partial.append(text)
            continue
        reason = "after the report was made" if text > today else "no data"
        if (
            missing
            and missing[-1]["reason"] == reason
            and missing[-1]["to"] == (day - timedelta(days=1)).isoformat()
        ):
            missing[-1]["to"] = text
            missing[-1]["days"] += 1
        else:
            missing.append({"from": text, "to": text, "days": 1, "reason": reason})
    days = len(period.days)
    count = sum(1 for day in period.days if day.isoformat() in covered)
    return {
        "days": days,
        "covered": count,
        "complete": count == days,
        "missing": missing,
        "partial": partial,
    }


def _versions(rows: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The list versions, each once: a restart records the versions in force again (from
    generation 1), which changes nothing the report needs to say."""
    last: dict[tuple[str, str], tuple[Any, ...]] = {}
    out = []
    for row in rows:
        version = (row["digest"], row["serial"], row["result"])
        if last.get((row["server"], row["source"])) != version:
            out.append(_version(row, zone))
        last[(row["server"], row["source"])] = version
    return out


def _version(row: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    return {
        "source": row["source"],
        "category": row["category"],
        "state": row["result"],
        "in_force_from": datetime.fromtimestamp(row["ts"], zone).isoformat(timespec="seconds"),
        "generation": row["generation"],
        "server": row["server"],
        "rules": row["rules"],
        "digest": row["digest"],
        "serial": row["serial"],
        "path": row["path"],
        "url": row["url"],
        "zone": row["zone"],
        "fetched_at": row["fetched_at"],
        "modified_at": row["modified_at"],
    }


def coverage_warning(report: dict[str, Any]) -> str | None:
    """The loud line for stderr when the period is not fully covered (None when it is)."""
    cov = report["coverage"]
    parts = []
    if cov["missing"]:
        spans = ", ".join(
            m["from"] if m["days"] == 1 else f"{m['from']}..{m['to']}" for m in cov["missing"]
        )
        parts.append(f"{cov['days'] - cov['covered']} of {cov['days']} days have NO DATA ({spans})")
    if cov["partial"]:
        parts.append(f"the server was up only part of {len(cov['partial'])} days")
    if not parts:
        return None
    return "WARNING: the report does not cover the whole period: " + "; ".join(parts)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def load_schema() -> dict[str, Any]:
    """The published JSON Schema of `to_json`'s output."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def to_csv(report: dict[str, Any]) -> str:
    """One long table `section,key,metric,value`: easy to pivot in a spreadsheet."""
    rows: list[list[Any]] = [["section", "key", "metric", "value"]]
    for key in ("schema_version", "from", "to", "period", "timezone", "generated"):
        rows.append(["report", key, "", report[key] if report[key] is not None else ""])
    for key, value in report["organisation"].items():
        rows.append(["organisation", key, "", value])
    cov = report["coverage"]
    rows.append(["coverage", "period", "days", cov["days"]])
    rows.append(["coverage", "period", "covered", cov["covered"]])
    for gap in cov["missing"]:
        rows.append(["coverage", f"{gap['from']}..{gap['to']}", gap["reason"], gap["days"]])
    for day in cov["partial"]:
        rows.append(["coverage", day, "partial", 1])
    for metric in COUNTS:
        rows.append(["total", report["profile"] or "all", metric, report["totals"][metric]])
    for action, n in report["mandated"]["by_action"].items():
        rows.append(["mandated", action, "answers", n])
    for row in report["per_day"]:
        if row["covered"]:
            for metric in COUNTS:
                rows.append(["day", row["day"], metric, row[metric]])
    for row in report["per_profile"]:
        for metric in COUNTS:
            rows.append(["profile", row["profile"], metric, row[metric]])
    for row in report["by_category"]:
        rows.append(["category", row["category"], "blocked", row["blocked"]])
    for row in report["top_blocked"]:
        rows.append(["top_blocked", row["domain"], "blocked", row["blocked"]])
    for v in report["list_versions"]:
        key = f"{v['source']} {v['in_force_from']}"
        for metric in ("state", "rules", "digest", "serial", "generation", "server", "fetched_at"):
            if v[metric] is not None:
                rows.append(["list_version", key, metric, v[metric]])
    for result, n in report["reloads"].items():
        rows.append(["reloads", result, "count", n])
    for kind, n in report["requests"].items():
        rows.append(["requests", kind, "count", n])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    w.writerows([spreadsheet_cell(cell) for cell in row] for row in rows)
    return out.getvalue()
