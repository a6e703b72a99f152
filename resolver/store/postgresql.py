"""PostgreSQL query log for an ISP: many resolver servers, one database, day partitions.

`queries` is range-partitioned on `ts` (unix seconds as double precision: the very value SQLite
stores and the admin API returns) by UTC day, one table `queries_pYYYYMMDD` per day. Why days:
retention is counted in days, so dropping whole days keeps a row less than one day past
`retention_days` (weekly tables would keep it up to a week longer than the privacy notice
promises); a report over some days reads only those days' tables; and 30 days are ~33 tables,
far below where planning slows down. Why UTC days: partition bounds may never overlap, so they
must not move when the server's time zone does; reports still count local days (`_day_bounds`).

Batches go in with one COPY each. The day partitions a batch needs are created ahead by
`maintain()` (today and the next two days) and, as a safety net, before the COPY. Schema
migrations and partition DDL take one advisory lock, so servers sharing the database never race;
DDL waits at most `LOCK_TIMEOUT` behind a long report instead of stalling the writer.

The connection is opened lazily and reopened after a failure: any operation that cannot reach
the server raises `StoreUnavailable` (the query log then backs off and retries). `purge` with a
date drops whole days and deletes the rest of the boundary day, so it is exact. Only this module
imports psycopg, so a school box without it runs SQLite.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from resolver.rollup import Batch
from resolver.store import reportdb
from resolver.store.audit import KEEP_AT_LEAST_DAYS, AuditEntry
from resolver.store.base import Migration, QueryFilter, StoreUnavailable, Summary, pending_steps
from resolver.store.events import QueryEvent
from resolver.store.reportdb import RollupRows, Rows
from resolver.store.sql import COLUMNS, COUNTS, event_row, period_sql, search_sql

log = logging.getLogger(__name__)

DAY = 86400
AHEAD_DAYS = 2  # partitions exist for today and this many days after
LOCK_KEY = 0x5AFE_D115  # pg_advisory_xact_lock key for schema and partition DDL
LOCK_TIMEOUT = "5s"  # how long DDL waits behind readers before giving up until the next try
PARTITION_PREFIX = "queries_p"
COUNT_KEYS = ("queries", "blocked", "rewritten", "mandated", "safesearch")

# libpq settings used unless the DSN gives its own: a dead server is noticed within seconds
# (connecting, or sending to a host that vanished) instead of after TCP's minutes.
CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "tcp_user_timeout": "10000",
    "keepalives_idle": "30",
    "application_name": "safe-resolver",
}

MIGRATIONS: dict[str, tuple[Migration, ...]] = {
    "querylog": (
        (
            """CREATE TABLE queries (
                ts double precision NOT NULL, client text, profile text NOT NULL,
                qname text NOT NULL, qtype text NOT NULL, action text NOT NULL,
                tier text NOT NULL, category text, rcode integer NOT NULL,
                latency_ms double precision NOT NULL, transport text NOT NULL,
                cached boolean NOT NULL
            ) PARTITION BY RANGE (ts)""",
            "CREATE INDEX queries_ts ON queries (ts)",
        ),
    ),
    # Roll-ups and the audit trail (resolver.store.reportdb, resolver.store.audit).
    "reports": (
        (
            """CREATE TABLE rollup_counts (
                day text NOT NULL, profile text NOT NULL, category text NOT NULL,
                tier text NOT NULL, action text NOT NULL, n bigint NOT NULL,
                PRIMARY KEY (day, profile, category, tier, action)
            )""",
            """CREATE TABLE rollup_top (
                day text NOT NULL, domain text NOT NULL, n bigint NOT NULL,
                PRIMARY KEY (day, domain)
            )""",
            """CREATE TABLE rollup_requests (
                day text NOT NULL, kind text NOT NULL, n bigint NOT NULL, PRIMARY KEY (day, kind)
            )""",
            """CREATE TABLE rollup_days (
                day text NOT NULL, server text NOT NULL, tz text NOT NULL,
                first_seen double precision NOT NULL, last_seen double precision NOT NULL,
                up_seconds double precision NOT NULL, PRIMARY KEY (day, server)
            )""",
            """CREATE TABLE audit_log (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                ts double precision NOT NULL, server text NOT NULL, kind text NOT NULL,
                generation integer, cause text, result text, detail text, source text,
                category text, path text, url text, zone text, digest text, serial bigint,
                rules integer, fetched_at text, modified_at text
            )""",
            "CREATE INDEX audit_log_ts ON audit_log (ts)",
            f"""CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    IF OLD.ts <= extract(epoch FROM now()) - {KEEP_AT_LEAST_DAYS * 86400} THEN
                        RETURN OLD;
                    END IF;
                END IF;
                RAISE EXCEPTION 'audit_log is append-only (kept {KEEP_AT_LEAST_DAYS} days)';
            END $$""",
            """CREATE TRIGGER audit_log_rows BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_guard()""",
            """CREATE TRIGGER audit_log_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard()""",
        ),
    ),
}


def check_dsn(dsn: str) -> None:
    """ValueError when `dsn` is not a libpq connection string or URI (never echoes it: it may
    hold a password)."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ValueError("not a PostgreSQL connection string (key=value ...) or URI") from None


def describe(dsn: str) -> str:
    """The database a DSN names, for messages: `dbname on host:port`, never the password."""
    params = conninfo_to_dict(dsn)
    where = str(params.get("host") or "localhost")
    if params.get("port"):
        where += f":{params['port']}"
    return f"PostgreSQL {params.get('dbname') or params.get('user') or 'database'} on {where}"


def migrate(conn: psycopg.Connection[Any], component: str) -> int:
    """Bring `component`'s tables to the newest version in one transaction; that version."""
    steps = MIGRATIONS[component]
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions"
            " (component text PRIMARY KEY, version integer NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM schema_versions WHERE component = %s", (component,)
        ).fetchone()
        for step in pending_steps(component, steps, int(row[0]) if row is not None else 0):
            for statement in step:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_versions (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            (component, len(steps)),
        )
    return len(steps)


def partition_name(day: int) -> str:
    """`queries_pYYYYMMDD` for a UTC day number (days since 1970-01-01)."""
    return PARTITION_PREFIX + (date(1970, 1, 1) + timedelta(days=day)).strftime("%Y%m%d")


def partition_days(conn: psycopg.Connection[Any]) -> set[int]:
    """The UTC days that have a partition now (tables named otherwise are not ours)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'queries'::regclass"
    ).fetchall()
    days = set()
    for (name,) in rows:
        suffix = name.removeprefix(PARTITION_PREFIX)
        if len(suffix) == 8 and suffix.isdigit():
            days.add((date.fromisoformat(suffix) - date(1970, 1, 1)).days)
    return days


def _day_bounds(since: float, until: float) -> tuple[list[str], list[float]]:
    """The local calendar days [since, until) touches and their midnights (one more than days).

    Reports count the server's local days, as SQLite's `date(ts, 'unixepoch', 'localtime')`
    does; the midnights come from the same C library, so `width_bucket(ts, midnights)` puts
    each row on the same day in both backends, daylight-saving days included.
    """
    first, last = date.fromtimestamp(since), date.fromtimestamp(until)
    days = [first + timedelta(days=i) for i in range((last - first).days + 2)]
    midnights = [datetime.combine(d, datetime.min.time()).timestamp() for d in days]
    return [d.isoformat() for d in days[:-1]], midnights


class PostgresQueryStore:
    """The query log in PostgreSQL; one connection, guarded by a lock (any one thread at a time)."""

    def __init__(self, dsn: str) -> None:
        check_dsn(dsn)
        self.name = describe(dsn)
        params = conninfo_to_dict(dsn)
        self._conninfo = make_conninfo("", **(CONNECT_DEFAULTS | params))
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._days: set[int] = set()  # partitions known to exist, as UTC day numbers

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection (opened and migrated if needed), held under the lock.

        A server that cannot be reached becomes `StoreUnavailable`, and the broken connection
        is dropped so the next call connects afresh.
        """
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                yield self._conn
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._discard()
                first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
                raise StoreUnavailable(f"{self.name}: {first}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True)  # no idle transaction holds locks
        try:
            migrate(conn, "querylog")
            migrate(conn, "reports")
            self._days = partition_days(conn)
        except RuntimeError as exc:  # a newer schema: unusable until upgraded, like a dead server
            conn.close()
            raise psycopg.OperationalError(str(exc)) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._discard()

    # -- partitions -----------------------------------------------------------------------------

    def _ensure(self, conn: psycopg.Connection[Any], days: set[int]) -> None:
        missing = days - self._days
        if not missing:
            return
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            for day in sorted(missing):
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF queries"
                        " FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(partition_name(day)),
                        sql.Literal(day * DAY),
                        sql.Literal((day + 1) * DAY),
                    )
                )
        self._days |= missing

    def _drop_before(self, conn: psycopg.Connection[Any], before: float) -> int:
        """Drop the day partitions that end at or before `before`; the rows they held."""
        self._days = partition_days(conn)
        removed = 0
        for day in sorted(d for d in self._days if (d + 1) * DAY <= before):
            name = partition_name(day)
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                    if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
                        continue  # another server dropped it first
                    table = sql.Identifier(name)
                    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
                    conn.execute(sql.SQL("DROP TABLE {}").format(table))
            except errors.LockNotAvailable:  # a long report reads it: the next round drops it
                log.warning("query log: %s is in use; dropping it later", name)
                break
            removed += int(row[0]) if row is not None else 0
            self._days.discard(day)
        return removed

    def maintain(self, now: float) -> None:
        """Partitions made ahead; past days' most-blocked tables cut to their top."""
        today = int(now // DAY)
        with self._session() as conn:
            self._days = partition_days(conn)  # another server may have created or dropped some
            try:
                self._ensure(conn, set(range(today, today + AHEAD_DAYS + 1)))
            except errors.LockNotAvailable:  # a long report holds the table; the next round or
                # the first batch of the day creates them
                log.warning("query log: partitions not created ahead: the table is in use")
            prune = reportdb.prune_statement("%s", ' COLLATE "C"')
            for day, keep in reportdb.prune_plan(self._rows(conn), "%s", now):
                conn.execute(prune.encode(), (day, day, keep))

    def expire(self, before: float) -> int:
        with self._session() as conn:
            return self._drop_before(conn, before)

    def purge(self, before: float | None) -> int:
        with self._session() as conn:
            if before is None:  # the raw rows only: partitions and other tables stay
                with conn.transaction():
                    conn.execute("LOCK TABLE queries IN ACCESS EXCLUSIVE MODE")
                    row = conn.execute("SELECT count(*) FROM queries").fetchone()
                    conn.execute("TRUNCATE queries")
                return int(row[0]) if row is not None else 0
            removed = self._drop_before(conn, before)
            cur = conn.execute("DELETE FROM queries WHERE ts < %s", (before,))
            return removed + cur.rowcount

    # -- roll-ups and audit (resolver.store.reportdb) ---------------------------------------------

    @staticmethod
    def _rows(conn: psycopg.Connection[Any]) -> reportdb.Fetch:
        def fetch(query: str, params: Sequence[Any]) -> Rows:
            return conn.execute(query.encode(), params).fetchall()

        return fetch

    def _read(self, read: Any, *args: Any) -> Any:
        with self._session() as conn:
            return read(self._rows(conn), "%s", *args)

    def write_rollups(self, batch: Batch, server: str) -> None:
        with self._session() as conn, conn.transaction(), conn.cursor() as cur:
            reportdb.write_batch(
                lambda query, rows: cur.executemany(query.encode(), rows), "%s", batch, server
            )

    def write_audit(self, entries: Sequence[AuditEntry], server: str) -> None:
        with self._session() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                reportdb.audit_insert("%s").encode(), reportdb.audit_rows(entries, server)
            )

    def read_rollups(self, first: str, last: str, profile: str | None = None) -> RollupRows:
        rows: RollupRows = self._read(reportdb.read_rollups, first, last, profile)
        return rows

    def read_audit(
        self, since: float | None = None, until: float | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._read(reportdb.read_audit, since, until, kind)
        return rows

    def lists_in_force(self, since: float, until: float) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._read(reportdb.lists_in_force, since, until)
        return rows

    def find_reports(self, digest: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._read(reportdb.find_reports, digest)
        return rows

    def expire_reports(self, before_day: str, before_ts: float) -> int:
        statements = reportdb.expire_statements("%s")
        removed = 0
        with self._session() as conn, conn.transaction():
            for query in statements[:-1]:
                removed += conn.execute(query.encode(), (before_day,)).rowcount
            removed += conn.execute(statements[-1].encode(), (before_ts,)).rowcount
        return removed

    # -- writing and reading ----------------------------------------------------------------------

    def write(self, events: Sequence[QueryEvent]) -> int:
        rows = [event_row(e) for e in events]
        days = {int(e.ts // DAY) for e in events}
        with self._session() as conn:
            self._ensure(conn, days)
            try:
                self._copy(conn, rows)
            except errors.CheckViolation:  # no partition for a row: a day dropped since we looked
                self._days = partition_days(conn)
                self._ensure(conn, days)
                self._copy(conn, rows)
        return len(rows)

    @staticmethod
    def _copy(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY queries ({COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def search(self, flt: QueryFilter) -> list[dict[str, Any]]:
        query, params = search_sql(flt, "%s")
        with self._session() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    def summary(
        self, since: float, until: float, profile: str | None = None, top: int = 20
    ) -> Summary:
        where, params = period_sql(since, until, profile, "%s")
        days, midnights = _day_bounds(since, until)
        out = Summary()
        with self._session() as conn, conn.cursor(row_factory=dict_row) as cur:

            def rows(query: str, args: list[Any]) -> list[dict[str, Any]]:
                return cur.execute(query, args).fetchall()

            (total,) = rows(f"SELECT {COUNTS} FROM queries WHERE {where}", params)
            for key in COUNT_KEYS:
                setattr(out, key, total[key])
            out.per_day = [
                {"day": days[r["bucket"] - 1]} | {k: r[k] for k in COUNT_KEYS}
                for r in rows(
                    f"SELECT width_bucket(ts, %s::float8[]) AS bucket, {COUNTS} FROM queries"
                    f" WHERE {where} GROUP BY bucket ORDER BY bucket",
                    [midnights, *params],
                )
            ]
            out.per_profile = rows(
                f"SELECT profile, {COUNTS} FROM queries WHERE {where}"
                ' GROUP BY profile ORDER BY queries DESC, profile COLLATE "C"',
                params,
            )
            out.by_category = [
                {"category": r["category"] or "", "blocked": r["n"]}
                for r in rows(
                    f"SELECT category, count(*) AS n FROM queries WHERE {where}"
                    " AND action = 'blocked' GROUP BY category"
                    ' ORDER BY n DESC, category COLLATE "C" NULLS FIRST',
                    params,
                )
            ]
            out.top_blocked = [
                {"qname": r["qname"], "blocked": r["n"]}
                for r in rows(
                    f"SELECT qname, count(*) AS n FROM queries WHERE {where}"
                    " AND action = 'blocked' GROUP BY qname"
                    ' ORDER BY n DESC, qname COLLATE "C" LIMIT %s',
                    [*params, top],
                )
            ]
        return out
