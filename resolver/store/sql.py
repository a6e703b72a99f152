"""SQL both query-log backends share, so SQLite and PostgreSQL answer a search identically.

Only the placeholder differs (`?` for sqlite3, `%s` for psycopg); both databases support the
aggregate `FILTER` clause (SQLite since 3.30), so the report counts are one expression.
"""

from __future__ import annotations

from typing import Any

from resolver.store.base import SEARCH_LIMIT_MAX, SEARCH_OFFSET_MAX, QueryFilter
from resolver.store.events import QueryEvent

COLUMNS = (
    "ts, client, profile, qname, qtype, action, tier, category, rcode, latency_ms, transport,"
    " cached"
)

# The figures a report counts, in the order reports show them (`reports.COUNTS`).
COUNTS = (
    "COUNT(*) AS queries,"
    " COUNT(*) FILTER (WHERE action = 'blocked') AS blocked,"
    " COUNT(*) FILTER (WHERE action = 'rewritten') AS rewritten,"
    " COUNT(*) FILTER (WHERE action = 'blocked' AND tier = 'mandated') AS mandated,"
    " COUNT(*) FILTER (WHERE action = 'rewritten' AND tier = 'safesearch') AS safesearch"
)


def event_row(e: QueryEvent) -> tuple[Any, ...]:
    """The row stored for an event, in `COLUMNS` order ("" client -> NULL)."""
    return (
        e.ts,
        e.client or None,
        e.profile,
        e.qname,
        e.qtype,
        e.action,
        e.tier,
        e.category,
        e.rcode,
        e.latency_ms,
        e.transport,
        bool(e.cached),
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_sql(flt: QueryFilter, mark: str) -> tuple[str, list[Any]]:
    """The search as one SELECT (newest first, capped) and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    if flt.since is not None:
        where.append(f"ts >= {mark}")
        params.append(flt.since)
    if flt.until is not None:
        where.append(f"ts < {mark}")
        params.append(flt.until)
    for column in ("client", "profile", "action", "category"):
        value = getattr(flt, column)
        if value is not None:
            where.append(f"{column} = {mark}")
            params.append(value)
    if flt.qname:
        name = flt.qname.lower().rstrip(".")
        where.append(f"(qname = {mark} OR qname LIKE {mark} ESCAPE '\\')")
        params += [name, "%." + _escape_like(name)]
    _search_extras(flt, mark, where, params)
    sql = f"SELECT {COLUMNS} FROM queries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY ts DESC LIMIT {mark}"
    params.append(max(0, min(flt.limit, SEARCH_LIMIT_MAX)))
    if flt.offset:
        sql += f" OFFSET {mark}"
        params.append(max(0, min(flt.offset, SEARCH_OFFSET_MAX)))
    return sql, params


def _search_extras(flt: QueryFilter, mark: str, where: list[str], params: list[Any]) -> None:
    """The dashboard's search filters (a teacher's profiles, query type, a name containing a
    text), kept apart from the API's first ones. Names are stored lower-case without the final
    dot."""
    if flt.profiles is not None:
        marks = ", ".join([mark] * len(flt.profiles))
        where.append(f"profile IN ({marks})" if flt.profiles else "1 = 0")
        params += flt.profiles
    if flt.qtype is not None:
        where.append(f"qtype = {mark}")
        params.append(flt.qtype.upper())
    if flt.name_contains:
        where.append(f"qname LIKE {mark} ESCAPE '\\'")
        params.append("%" + _escape_like(flt.name_contains.lower().strip(".")) + "%")


def period_sql(since: float, until: float, profile: str | None, mark: str) -> tuple[str, list[Any]]:
    """The WHERE condition of a summary over [since, until) (and one profile), its parameters."""
    if profile is None:
        return f"ts >= {mark} AND ts < {mark}", [since, until]
    return f"ts >= {mark} AND ts < {mark} AND profile = {mark}", [since, until, profile]
