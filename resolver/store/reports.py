"""Aggregate reports over the query log, for the six-monthly and yearly reports plans require.

Only aggregates leave the database: counts per day, per profile, per category, the most-blocked
domains. No client (address or pseudonym) appears in any report. Days are the server's local
calendar days; `--from` and `--to` are both inclusive.

Names in a report are whatever a client asked for: a pupil who queries `=1+2.xvideos.com` must
not plant a formula in the spreadsheet the authorities open. CSV cells follow OWASP's "CSV
Injection" advice: every text cell is quoted, and one that starts with = + - @ TAB or CR gets a
leading single quote so the spreadsheet shows it as text.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from datetime import date, datetime, timedelta
from typing import Any

from resolver.store.base import QueryStore

COUNTS = ("queries", "blocked", "rewritten", "mandated", "safesearch")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> object:
    """`value` as a spreadsheet will read it as data: numbers stay numbers, text that would
    start a formula gets a leading single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def period(date_from: str, date_to: str) -> tuple[float, float]:
    """[start, end) unix times for inclusive local dates; ValueError with a readable message."""
    try:
        first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError as exc:
        raise ValueError(f"dates must be YYYY-MM-DD: {exc}") from None
    if last < first:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    start = datetime.combine(first, datetime.min.time()).timestamp()
    end = datetime.combine(last + timedelta(days=1), datetime.min.time()).timestamp()
    return start, end


def build_report(
    store: QueryStore, date_from: str, date_to: str, profile: str | None = None, top: int = 20
) -> dict[str, Any]:
    """The report as plain data (what `--format json` prints)."""
    start, end = period(date_from, date_to)
    summary = store.summary(start, end, profile, top)
    data = dataclasses.asdict(summary)
    totals = {key: data.pop(key) for key in COUNTS}
    return {
        "from": date_from,
        "to": date_to,
        "profile": profile,
        "generated": datetime.fromtimestamp(time.time()).astimezone().isoformat(timespec="seconds"),
        "totals": totals,
        **data,
    }


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """One long table `section,key,metric,value`: easy to pivot in a spreadsheet."""
    rows: list[list[Any]] = [["section", "key", "metric", "value"]]
    for metric in COUNTS:
        rows.append(["total", report["profile"] or "all", metric, report["totals"][metric]])
    for section, key in (("per_day", "day"), ("per_profile", "profile")):
        for row in report[section]:
            for metric in COUNTS:
                rows.append([section.removeprefix("per_"), row[key], metric, row[metric]])
    for row in report["by_category"]:
        rows.append(["category", row["category"] or "", "blocked", row["blocked"]])
    for row in report["top_blocked"]:
        rows.append(["top_blocked", row["qname"], "blocked", row["blocked"]])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    w.writerows([spreadsheet_cell(cell) for cell in row] for row in rows)
    return out.getvalue()
