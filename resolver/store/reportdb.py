"""The roll-up and audit tables: the SQL both backends share, so SQLite and PostgreSQL store and
read them identically.

Tables (their DDL is each backend's `reports` migration):
  rollup_counts    (day, profile, category, tier, action) -> n   answers per local day
  rollup_top       (day, domain) -> n                            blocked, per registrable domain
  rollup_requests  (day, kind) -> n                              unblock decisions, content reports
  rollup_days      (day, server) -> tz, first_seen, last_seen, up_seconds   "the server was up"
  audit_log        append-only rows (`resolver.store.audit`)

Days are the policy's local calendar days as text (`YYYY-MM-DD`, which sorts as dates). Every
write adds (`ON CONFLICT ... DO UPDATE SET n = n + excluded.n`), so any number of servers may
share one database, and a batch is written in one transaction. Reads return plain rows; the
report sums and sorts them in Python (`resolver.store.reports`), so neither database's
collation or numeric types can make the two backends differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from resolver.rollup import TOP_STORED, Batch
from resolver.store.audit import COLUMNS as AUDIT_COLUMNS
from resolver.store.audit import AuditEntry

RECENT_TOP = 50_000  # domains a day keeps while it may still grow (today and yesterday)
RECENT_DAYS = 2  # days (UTC dates back from now) still pruned only to RECENT_TOP

Rows = list[tuple[Any, ...]]
Fetch = Callable[[str, Sequence[Any]], Rows]  # run a SELECT, its rows
ExecMany = Callable[[str, list[tuple[Any, ...]]], None]  # one statement, many rows


@dataclass(slots=True)
class RollupRows:
    """The roll-up rows of a period, as stored."""

    counts: list[tuple[str, str, str, str, str, int]]  # day, profile, category, tier, action, n
    top: list[tuple[str, int]]  # domain, blocked (summed over the period's days)
    requests: list[tuple[str, str, int]]  # day, kind, n
    days: list[tuple[str, str, str, float, float, float]]  # day, server, tz, first, last, up


def _marks(mark: str, n: int) -> str:
    return ", ".join([mark] * n)


def upserts(mark: str) -> dict[str, str]:
    """The four adding writes, for a placeholder (`?` or `%s`)."""
    later = "CASE WHEN excluded.{0} {1} rollup_days.{0} THEN excluded.{0} ELSE rollup_days.{0} END"
    return {
        "counts": "INSERT INTO rollup_counts (day, profile, category, tier, action, n)"
        f" VALUES ({_marks(mark, 6)}) ON CONFLICT (day, profile, category, tier, action)"
        " DO UPDATE SET n = rollup_counts.n + excluded.n",
        "top": f"INSERT INTO rollup_top (day, domain, n) VALUES ({_marks(mark, 3)})"
        " ON CONFLICT (day, domain) DO UPDATE SET n = rollup_top.n + excluded.n",
        "requests": f"INSERT INTO rollup_requests (day, kind, n) VALUES ({_marks(mark, 3)})"
        " ON CONFLICT (day, kind) DO UPDATE SET n = rollup_requests.n + excluded.n",
        "days": "INSERT INTO rollup_days (day, server, tz, first_seen, last_seen, up_seconds)"
        f" VALUES ({_marks(mark, 6)}) ON CONFLICT (day, server) DO UPDATE SET tz = excluded.tz,"
        f" first_seen = {later.format('first_seen', '<')},"
        f" last_seen = {later.format('last_seen', '>')},"
        " up_seconds = rollup_days.up_seconds + excluded.up_seconds",
    }


def write_batch(many: ExecMany, mark: str, batch: Batch, server: str) -> None:
    """Add `batch` (call inside one transaction)."""
    sql = upserts(mark)
    if batch.counts:
        many(sql["counts"], [(*key, n) for key, n in sorted(batch.counts.items())])
    if batch.top:
        many(sql["top"], [(*key, n) for key, n in sorted(batch.top.items())])
    if batch.requests:
        many(sql["requests"], [(*key, n) for key, n in sorted(batch.requests.items())])
    if batch.days:
        many(
            sql["days"],
            [(day, server, m.tz, m.first_seen, m.last_seen, m.up_seconds)
             for day, m in sorted(batch.days.items())],
        )  # fmt: skip


def audit_insert(mark: str) -> str:
    return (
        f"INSERT INTO audit_log (server, {', '.join(AUDIT_COLUMNS)})"
        f" VALUES ({_marks(mark, len(AUDIT_COLUMNS) + 1)})"
    )


def audit_rows(entries: Sequence[AuditEntry], server: str) -> list[tuple[Any, ...]]:
    return [(server, *(getattr(e, c) for c in AUDIT_COLUMNS)) for e in entries]


def read_rollups(fetch: Fetch, mark: str, first: str, last: str, profile: str | None) -> RollupRows:
    """Every roll-up row of the days [first, last] (one profile's counts if given)."""
    period = f"day >= {mark} AND day <= {mark}"
    span = [first, last]
    where, params = (period, span) if profile is None else (f"{period} AND profile = {mark}",
                                                            [*span, profile])  # fmt: skip
    counts = fetch(
        f"SELECT day, profile, category, tier, action, n FROM rollup_counts WHERE {where}", params
    )
    top = fetch(f"SELECT domain, SUM(n) FROM rollup_top WHERE {period} GROUP BY domain", span)
    requests = fetch(f"SELECT day, kind, n FROM rollup_requests WHERE {period}", span)
    days = fetch(
        "SELECT day, server, tz, first_seen, last_seen, up_seconds FROM rollup_days"
        f" WHERE {period}",
        span,
    )
    return RollupRows(
        counts=[(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in counts],
        top=[(r[0], int(r[1])) for r in top],  # PostgreSQL's SUM(bigint) is numeric
        requests=[(r[0], r[1], int(r[2])) for r in requests],
        days=[(r[0], r[1], r[2], float(r[3]), float(r[4]), float(r[5])) for r in days],
    )


_SELECT_AUDIT = f"SELECT id, server, {', '.join(AUDIT_COLUMNS)} FROM audit_log"
_AUDIT_KEYS = ("id", "server", *AUDIT_COLUMNS)


def _audit_dicts(rows: Rows) -> list[dict[str, Any]]:
    return [dict(zip(_AUDIT_KEYS, row, strict=True)) for row in rows]


def read_audit(
    fetch: Fetch, mark: str, since: float | None, until: float | None, kind: str | None
) -> list[dict[str, Any]]:
    """Audit rows in [since, until) (of one kind), oldest first."""
    where, params = [], []
    for cond, value in (
        (f"ts >= {mark}", since),
        (f"ts < {mark}", until),
        (f"kind = {mark}", kind),
    ):
        if value is not None:
            where.append(cond)
            params.append(value)
    sql = _SELECT_AUDIT + (" WHERE " + " AND ".join(where) if where else "")
    return _audit_dicts(fetch(sql + " ORDER BY ts, id", params))


def lists_in_force(fetch: Fetch, mark: str, since: float, until: float) -> list[dict[str, Any]]:
    """The list versions in force at some time in [since, until): each server's last version
    of each list before `since`, and every version recorded in the period; oldest first."""
    before = fetch(
        f"{_SELECT_AUDIT} WHERE id IN (SELECT MAX(id) FROM audit_log WHERE kind = 'list'"
        f" AND result <> 'installed' AND ts < {mark} GROUP BY server, source)",
        [since],
    )
    during = fetch(
        f"{_SELECT_AUDIT} WHERE kind = 'list' AND result <> 'installed'"
        f" AND ts >= {mark} AND ts < {mark}",
        [since, until],
    )
    rows = [r for r in _audit_dicts(before) if r["result"] != "withdrawn"] + _audit_dicts(during)
    return sorted(rows, key=lambda r: (r["ts"], r["id"]))


def find_reports(fetch: Fetch, mark: str, digest: str) -> list[dict[str, Any]]:
    """The `report` audit rows recording a report with this SHA-256."""
    return _audit_dicts(
        fetch(
            f"{_SELECT_AUDIT} WHERE kind = 'report' AND digest = {mark} ORDER BY ts, id", [digest]
        )
    )


def expire_statements(mark: str) -> list[str]:
    """Retention: roll-up days before a day, audit rows before a time (two parameters)."""
    return [
        *(f"DELETE FROM {table} WHERE day < {mark}"
          for table in ("rollup_counts", "rollup_top", "rollup_requests", "rollup_days")),
        f"DELETE FROM audit_log WHERE ts < {mark}",
    ]  # fmt: skip


def prune_plan(fetch: Fetch, mark: str, now: float) -> list[tuple[str, int]]:
    """The days whose top table holds more than it should: (day, rows to keep).

    Days before the last RECENT_DAYS keep TOP_STORED domains (the "top 1,000 stored"); the
    recent ones keep RECENT_TOP, so a domain that climbs late in the day is still counted.
    """
    recent = (date.fromtimestamp(now) - timedelta(days=RECENT_DAYS)).isoformat()
    rows = fetch(f"SELECT day FROM rollup_top GROUP BY day HAVING COUNT(*) > {mark}", [TOP_STORED])
    plan = []
    for (day,) in sorted(rows):
        plan.append((day, TOP_STORED if day < recent else RECENT_TOP))
    return plan


def prune_statement(mark: str, collate: str) -> str:
    """Delete a day's lighter domains (three parameters: day, day, rows kept)."""
    return (
        f"DELETE FROM rollup_top WHERE day = {mark} AND domain NOT IN (SELECT domain FROM"
        f" rollup_top WHERE day = {mark} ORDER BY n DESC, domain{collate} LIMIT {mark})"
    )
