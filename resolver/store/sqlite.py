"""SQLite implementations of the storage Protocols in `resolver.store.base`.

WAL mode lets the dashboard and `safe-resolver report` read while the query log writes. Each
instance holds one connection guarded by a lock, so it may be used from any one thread at a
time (the query log's writer thread, or `asyncio.to_thread` workers for the web apps).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resolver.rollup import Batch
from resolver.store import reportdb
from resolver.store.audit import KEEP_AT_LEAST_DAYS, AuditEntry
from resolver.store.base import SEARCH_LIMIT_MAX, Migration, QueryFilter, Summary, pending_steps
from resolver.store.events import QueryEvent
from resolver.store.reportdb import RollupRows, Rows
from resolver.store.sql import COLUMNS, COUNTS, event_row, period_sql, search_sql

# The schema, one numbered step per version (see `resolver.store.base.Migration`). Version 1
# uses IF NOT EXISTS so a file written before versioning adopts it unchanged.
MIGRATIONS: dict[str, tuple[Migration, ...]] = {
    "querylog": (
        (
            """CREATE TABLE IF NOT EXISTS queries (
                ts REAL NOT NULL, client TEXT, profile TEXT NOT NULL, qname TEXT NOT NULL,
                qtype TEXT NOT NULL, action TEXT NOT NULL, tier TEXT NOT NULL, category TEXT,
                rcode INTEGER NOT NULL, latency_ms REAL NOT NULL, transport TEXT NOT NULL,
                cached INTEGER NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS queries_ts ON queries (ts)",
        ),
    ),
    "requests": (
        (
            """CREATE TABLE IF NOT EXISTS unblock_requests (
                id INTEGER PRIMARY KEY, created REAL NOT NULL, host TEXT NOT NULL,
                profile TEXT NOT NULL, category TEXT, note TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending', decided REAL, decided_by TEXT
            )""",
            """CREATE TABLE IF NOT EXISTS content_reports (
                id INTEGER PRIMARY KEY, created REAL NOT NULL, url TEXT NOT NULL,
                note TEXT NOT NULL
            )""",
        ),
    ),
    # Roll-ups and the audit trail (resolver.store.reportdb, resolver.store.audit).
    "reports": (
        (
            """CREATE TABLE rollup_counts (
                day TEXT NOT NULL, profile TEXT NOT NULL, category TEXT NOT NULL,
                tier TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,
                PRIMARY KEY (day, profile, category, tier, action)
            ) WITHOUT ROWID""",
            """CREATE TABLE rollup_top (
                day TEXT NOT NULL, domain TEXT NOT NULL, n INTEGER NOT NULL,
                PRIMARY KEY (day, domain)
            ) WITHOUT ROWID""",
            """CREATE TABLE rollup_requests (
                day TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
                PRIMARY KEY (day, kind)
            ) WITHOUT ROWID""",
            """CREATE TABLE rollup_days (
                day TEXT NOT NULL, server TEXT NOT NULL, tz TEXT NOT NULL,
                first_seen REAL NOT NULL, last_seen REAL NOT NULL, up_seconds REAL NOT NULL,
                PRIMARY KEY (day, server)
            ) WITHOUT ROWID""",
            """CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, server TEXT NOT NULL,
                kind TEXT NOT NULL, generation INTEGER, cause TEXT, result TEXT, detail TEXT,
                source TEXT, category TEXT, path TEXT, url TEXT, zone TEXT, digest TEXT,
                serial INTEGER, rules INTEGER, fetched_at TEXT, modified_at TEXT
            )""",
            "CREATE INDEX audit_log_ts ON audit_log (ts)",
            """CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
            f"""CREATE TRIGGER audit_log_kept BEFORE DELETE ON audit_log
            WHEN old.ts > CAST(strftime('%s', 'now') AS REAL) - {KEEP_AT_LEAST_DAYS * 86400}
            BEGIN SELECT RAISE(ABORT, 'audit_log rows are kept {KEEP_AT_LEAST_DAYS} days'); END""",
        ),
    ),
}

# Caps so a flood of block-page form posts cannot fill the disk.
MAX_PENDING_UNBLOCK = 1000
MAX_CONTENT_REPORTS = 5000

_DAY = "date(ts, 'unixepoch', 'localtime')"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating the directory) a database in WAL mode."""
    p = Path(path)
    if str(p) != ":memory:":
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=10.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def migrate(conn: sqlite3.Connection, component: str) -> int:
    """Bring `component`'s tables to the newest version in one transaction; that version."""
    steps = MIGRATIONS[component]
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; another waits, then sees it done
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
        for step in pending_steps(component, steps, int(row[0]) if row is not None else 0):
            for statement in step:
                conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
            (component, len(steps)),
        )
    return len(steps)


class _Db:
    def __init__(self, path: str | Path, *components: str) -> None:
        self.path = Path(path)
        self.name = str(path)
        self._lock = threading.Lock()
        self._conn = connect(path)
        with self._lock:
            for component in components:
                migrate(self._conn, component)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SqliteQueryStore(_Db):
    """The query log table, the roll-ups and the audit trail."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "querylog", "reports")

    def write(self, events: Sequence[QueryEvent]) -> int:
        rows = [event_row(e) for e in events]
        with self._lock, self._conn:
            self._conn.executemany(f"INSERT INTO queries ({COLUMNS}) VALUES ({'?,' * 11}?)", rows)
        return len(rows)

    def search(self, flt: QueryFilter) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(*search_sql(flt, "?")).fetchall()
        return [dict(r) | {"cached": bool(r["cached"])} for r in rows]

    def summary(
        self, since: float, until: float, profile: str | None = None, top: int = 20
    ) -> Summary:
        where, params = period_sql(since, until, profile, "?")
        out = Summary()
        with self._lock:
            c = self._conn
            total = c.execute(f"SELECT {COUNTS} FROM queries WHERE {where}", params).fetchone()
            for key in total.keys():  # noqa: SIM118 (sqlite3.Row)
                setattr(out, key, total[key])
            out.per_day = [
                dict(r)
                for r in c.execute(
                    f"SELECT {_DAY} AS day, {COUNTS} FROM queries WHERE {where}"
                    " GROUP BY day ORDER BY day",
                    params,
                )
            ]
            out.per_profile = [
                dict(r)
                for r in c.execute(
                    f"SELECT profile, {COUNTS} FROM queries WHERE {where}"
                    " GROUP BY profile ORDER BY queries DESC, profile",
                    params,
                )
            ]
            out.by_category = [
                {"category": r[0] or "", "blocked": r[1]}
                for r in c.execute(
                    f"SELECT category, COUNT(*) AS n FROM queries WHERE {where}"
                    " AND action = 'blocked' GROUP BY category ORDER BY n DESC, category",
                    params,
                )
            ]
            out.top_blocked = [
                {"qname": r[0], "blocked": r[1]}
                for r in c.execute(
                    f"SELECT qname, COUNT(*) AS n FROM queries WHERE {where}"
                    " AND action = 'blocked' GROUP BY qname ORDER BY n DESC, qname LIMIT ?",
                    [*params, top],
                )
            ]
        return out

    def purge(self, before: float | None) -> int:
        with self._lock, self._conn:
            if before is None:
                cur = self._conn.execute("DELETE FROM queries")
            else:
                cur = self._conn.execute("DELETE FROM queries WHERE ts < ?", (before,))
        return cur.rowcount

    def expire(self, before: float) -> int:
        return self.purge(before)

    def maintain(self, now: float) -> None:
        """No partitions to make ahead; past days' most-blocked tables cut to their top."""
        prune = reportdb.prune_statement("?", "")
        for day, keep in reportdb.prune_plan(self._fetch, "?", now):
            with self._lock, self._conn:
                self._conn.execute(prune, (day, day, keep))

    # -- roll-ups and audit (resolver.store.reportdb) ---------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any]) -> Rows:
        with self._lock:
            return [tuple(row) for row in self._conn.execute(sql, params)]

    def write_rollups(self, batch: Batch, server: str) -> None:
        with self._lock, self._conn:
            reportdb.write_batch(
                lambda sql, rows: self._conn.executemany(sql, rows).close(), "?", batch, server
            )

    def write_audit(self, entries: Sequence[AuditEntry], server: str) -> None:
        with self._lock, self._conn:
            self._conn.executemany(reportdb.audit_insert("?"), reportdb.audit_rows(entries, server))

    def read_rollups(self, first: str, last: str, profile: str | None = None) -> RollupRows:
        return reportdb.read_rollups(self._fetch, "?", first, last, profile)

    def read_audit(
        self, since: float | None = None, until: float | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        return reportdb.read_audit(self._fetch, "?", since, until, kind)

    def lists_in_force(self, since: float, until: float) -> list[dict[str, Any]]:
        return reportdb.lists_in_force(self._fetch, "?", since, until)

    def find_reports(self, digest: str) -> list[dict[str, Any]]:
        return reportdb.find_reports(self._fetch, "?", digest)

    def expire_reports(self, before_day: str, before_ts: float) -> int:
        statements = reportdb.expire_statements("?")
        removed = 0
        with self._lock, self._conn:
            for sql in statements[:-1]:
                removed += self._conn.execute(sql, (before_day,)).rowcount
            removed += self._conn.execute(statements[-1], (before_ts,)).rowcount
        return removed


class SqliteRequestStore(_Db):
    """Unblock requests and content reports from the block page (may share the log's file)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "requests")

    def expire(self, unblock_before: float, reports_before: float) -> int:
        """Retention: decided unblock requests decided before `unblock_before` (pending ones
        wait for an answer) and content reports received before `reports_before`."""
        with self._lock, self._conn:
            c = self._conn
            n = c.execute(
                "DELETE FROM unblock_requests WHERE status <> 'pending' AND decided < ?",
                (unblock_before,),
            ).rowcount
            n += c.execute(
                "DELETE FROM content_reports WHERE created < ?", (reports_before,)
            ).rowcount
        return int(n)

    def add_unblock(self, host: str, profile: str, category: str | None, note: str) -> int | None:
        with self._lock, self._conn:
            c = self._conn
            same = c.execute(
                "SELECT id FROM unblock_requests WHERE status = 'pending' AND host = ?"
                " AND profile = ?",
                (host, profile),
            ).fetchone()
            if same is not None:  # one pending request per site and profile is enough
                return int(same[0])
            (pending,) = c.execute(
                "SELECT COUNT(*) FROM unblock_requests WHERE status = 'pending'"
            ).fetchone()
            if pending >= MAX_PENDING_UNBLOCK:
                return None
            cur = c.execute(
                "INSERT INTO unblock_requests (created, host, profile, category, note)"
                " VALUES (?, ?, ?, ?, ?)",
                (time.time(), host, profile, category, note),
            )
            return int(cur.lastrowid or 0)

    def list_unblock(
        self, status: str | None = "pending", limit: int = 200
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM unblock_requests"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(max(0, min(limit, SEARCH_LIMIT_MAX)))
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params)]

    def get_unblock(self, request_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM unblock_requests WHERE id = ?", (request_id,)
            ).fetchone()
        return dict(row) if row is not None else None

    def set_unblock_status(self, request_id: int, status: str, decided_by: str = "admin") -> bool:
        if status not in ("approved", "rejected"):
            raise ValueError(f"unknown status {status!r}")
        with self._lock, self._conn:
            cur = self._conn.execute(
                "UPDATE unblock_requests SET status = ?, decided = ?, decided_by = ?"
                " WHERE id = ? AND status = 'pending'",
                (status, time.time(), decided_by, request_id),
            )
        return cur.rowcount == 1

    def add_content_report(self, url: str, note: str) -> int | None:
        with self._lock, self._conn:
            (n,) = self._conn.execute("SELECT COUNT(*) FROM content_reports").fetchone()
            if n >= MAX_CONTENT_REPORTS:
                return None
            cur = self._conn.execute(
                "INSERT INTO content_reports (created, url, note) VALUES (?, ?, ?)",
                (time.time(), url, note),
            )
            return int(cur.lastrowid or 0)

    def list_content_reports(self, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self._conn.execute(
                    "SELECT * FROM content_reports ORDER BY id DESC LIMIT ? OFFSET ?",
                    (max(0, min(limit, SEARCH_LIMIT_MAX)), max(0, offset)),
                )
            ]

    def count_content_reports(self) -> int:
        with self._lock:
            (n,) = self._conn.execute("SELECT COUNT(*) FROM content_reports").fetchone()
        return int(n)

    def delete_content_reports(self, ids: Sequence[int]) -> int:
        with self._lock, self._conn:
            cur = self._conn.executemany(
                "DELETE FROM content_reports WHERE id = ?", [(int(i),) for i in ids]
            )
        return int(cur.rowcount)
