"""A real PostgreSQL server for the store tests (one per session, a fresh database per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.postgres import PostgresServer, PostgresUnavailable, start_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    server.close()


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database."""
    return postgres_server.create_database()
