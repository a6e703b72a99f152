"""Opening the query-log store the configuration names: SQLite (default) or PostgreSQL.

psycopg is imported only when PostgreSQL is asked for, so a school box without it runs SQLite.
"""

from __future__ import annotations

from pathlib import Path

from resolver.store.base import QueryStore
from resolver.store.sqlite import SqliteQueryStore

BACKENDS = ("sqlite", "postgresql")


def open_query_store(
    backend: str, *, path: str | Path | None = None, dsn: str | None = None
) -> QueryStore:
    """A store on `path` (SQLite: the file is opened and its schema brought up to date now) or
    on `dsn` (PostgreSQL: connects on first use, so a database that is down does not stop the
    caller). ValueError for an unknown backend or a missing or malformed path or DSN."""
    if backend == "postgresql":
        if not dsn:
            raise ValueError("the postgresql query-log backend needs a dsn")
        from resolver.store.postgresql import PostgresQueryStore

        return PostgresQueryStore(dsn)
    if backend != "sqlite":
        raise ValueError(f"query-log backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if path is None:
        raise ValueError("the sqlite query-log backend needs a path")
    return SqliteQueryStore(path)
