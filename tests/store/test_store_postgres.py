"""The PostgreSQL query log on a real server: COPY batches, day partitions made ahead and dropped
whole by retention, exact purge, pseudonymization, and the writer riding out a lost connection
or a database that is not there."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from calendar import timegm
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from resolver.stats import Stats
from resolver.store.base import QueryFilter, StoreUnavailable
from resolver.store.events import QueryEvent
from resolver.store.postgresql import DAY, PostgresQueryStore, partition_name
from resolver.store.querylog import QueryLog
from resolver.store.sql import event_row


def utc(text: str) -> float:
    return float(timegm(time.strptime(text, "%Y-%m-%dT%H:%M")))


def ev(ts: float, client: str = "192.0.2.10", **fields: Any) -> QueryEvent:
    base = {
        "profile": "students", "qname": "ok.example", "qtype": "A", "action": "allowed",
        "tier": "default", "category": None, "rcode": 0, "latency_ms": 1.5,
        "transport": "udp", "cached": False,
    }  # fmt: skip
    return QueryEvent(ts=ts, client=client, **(base | fields))


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params or None)
        return cur.fetchall() if cur.description is not None else []


def partitions(dsn: str) -> list[str]:
    return [
        name
        for (name,) in sql(
            dsn,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'queries'::regclass ORDER BY 1",
        )
    ]


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_copy_stores_every_field_in_day_partitions(pg_dsn: str) -> None:
    store = PostgresQueryStore(pg_dsn)
    events = [
        ev(utc("2025-03-01T23:59") + 59.75, qname="x.adult.example", qtype="AAAA",
           action="blocked", tier="category", category="adult", rcode=3, latency_ms=0.25,
           transport="tcp", cached=True),
        ev(utc("2025-03-02T00:00"), client=""),
        ev(utc("2025-03-05T12:00") + 1 / 3),
    ]  # fmt: skip
    assert store.write(events) == 3
    store.close()
    stored = sql(pg_dsn, "SELECT * FROM queries ORDER BY ts")
    assert stored == [event_row(e) for e in events]  # floats come back bit for bit
    assert stored[1][1] is None  # no client -> NULL, as in SQLite
    assert partitions(pg_dsn) == ["queries_p20250301", "queries_p20250302", "queries_p20250305"]
    assert sql(pg_dsn, "SELECT count(*) FROM queries_p20250302") == [(1,)]


def test_schema_is_versioned_and_a_newer_schema_is_refused(pg_dsn: str) -> None:
    for _ in range(2):  # the second connection finds the schema current and changes nothing
        store = PostgresQueryStore(pg_dsn)
        store.maintain(time.time())
        store.close()
    assert sql(pg_dsn, "SELECT component, version FROM schema_versions ORDER BY 1") == [
        ("querylog", 1), ("reports", 1),
    ]  # fmt: skip
    sql(pg_dsn, "UPDATE schema_versions SET version = 99")
    store = PostgresQueryStore(pg_dsn)
    with pytest.raises(StoreUnavailable, match="newer than this safe-resolver"):
        store.search(QueryFilter())
    store.close()


def test_maintain_creates_today_and_the_next_two_days_ahead(pg_dsn: str) -> None:
    store = PostgresQueryStore(pg_dsn)
    now = utc("2025-12-31T22:00")
    store.maintain(now)
    store.maintain(now)  # idempotent
    assert partitions(pg_dsn) == ["queries_p20251231", "queries_p20260101", "queries_p20260102"]
    # Another server sharing the database sees them and creates nothing twice.
    other = PostgresQueryStore(pg_dsn)
    other.write([ev(now), ev(now + DAY)])
    other.close()
    store.close()
    assert len(partitions(pg_dsn)) == 3


def test_retention_drops_whole_days_and_deletes_no_row(pg_dsn: str) -> None:
    store = PostgresQueryStore(pg_dsn)
    days = ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04"]
    store.write([ev(utc(f"{d}T{h}")) for d in days for h in ("01:00", "23:00")])
    before = utc("2025-03-03T06:00")
    assert store.expire(before) == 4  # 03-01 and 03-02, two rows each
    assert partitions(pg_dsn) == ["queries_p20250303", "queries_p20250304"]
    # 03-03 01:00 is older than `before` but its day is not over: kept, not deleted row by row.
    assert sql(pg_dsn, "SELECT count(*) FROM queries WHERE ts < %s", before) == [(1,)]
    assert store.expire(before) == 0
    store.close()


def test_purge_is_exact_and_all_removes_raw_rows_only(pg_dsn: str) -> None:
    store = PostgresQueryStore(pg_dsn)
    store.write([ev(utc(f"2025-03-0{d}T{h}:00")) for d in (1, 2, 3) for h in (1, 12, 23)])
    assert store.purge(utc("2025-03-02T12:00")) == 4  # a whole day dropped + one row deleted
    left = [r[0] for r in sql(pg_dsn, "SELECT ts FROM queries ORDER BY ts")]
    assert left == [
        utc(f"2025-03-0{d}T{h}:00") for d, h in [(2, 12), (2, 23), (3, "01"), (3, 12), (3, 23)]
    ]
    assert store.purge(None) == 5
    assert sql(pg_dsn, "SELECT count(*) FROM queries") == [(0,)]
    assert partitions(pg_dsn) == ["queries_p20250302", "queries_p20250303"]  # tables stay
    assert sql(pg_dsn, "SELECT version FROM schema_versions") == [(1,), (1,)]
    store.close()


def test_a_write_for_a_day_dropped_meanwhile_recreates_it(pg_dsn: str) -> None:
    store = PostgresQueryStore(pg_dsn)
    ts = utc("2025-03-01T10:00")
    store.write([ev(ts)])
    sql(pg_dsn, f"DROP TABLE {partition_name(int(ts // DAY))}")  # another server's retention
    assert store.write([ev(ts + 1)]) == 1
    assert sql(pg_dsn, "SELECT count(*) FROM queries") == [(1,)]
    store.close()


async def test_querylog_pseudonymizes_like_sqlite(pg_dsn: str) -> None:
    now = time.time()
    for clients in ("pseudonymized", "none", "full"):
        log = QueryLog(None, backend="postgresql", dsn=pg_dsn, clients=clients, flush_interval=0.05)
        await log.start()
        for i, client in enumerate(["192.0.2.10", "192.0.2.10", "192.0.2.11"]):
            log.submit(ev(now + i, client, profile=clients))
        await log.close()
        assert log.stats.querylog_written == 3 and log.stats.querylog_failed_batches == 0
    stored = dict(
        sql(pg_dsn, "SELECT profile, array_agg(client ORDER BY ts) FROM queries GROUP BY 1")
    )
    a, b, c = stored["pseudonymized"]
    assert a == b != c and len(a) == 16 and int(a, 16) >= 0
    assert stored["none"] == [None, None, None]
    assert stored["full"] == ["192.0.2.10", "192.0.2.10", "192.0.2.11"]
    # searching by device matches under the current key, as with SQLite
    log = QueryLog(None, backend="postgresql", dsn=pg_dsn, clients="full")
    await log.start()
    found = await asyncio.to_thread(log.search, QueryFilter(client="192.0.2.11"))
    assert [r["profile"] for r in found] == ["full"]
    await log.close()


async def test_writer_reconnects_after_losing_its_connection(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="resolver.store.querylog")
    stats = Stats()
    log = QueryLog(
        None, backend="postgresql", dsn=pg_dsn, batch=1, flush_interval=0.02, stats=stats
    )
    await log.start()
    now = time.time()
    log.submit(ev(now))
    await wait_for(lambda: stats.querylog_written == 1, "the first row")
    # The server ends the writer's session (as a restart or a DBA would).
    killed = sql(
        pg_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'safe-resolver' AND datname = current_database()",
    )
    assert killed and all(ok for (ok,) in killed)
    for i in range(1, 6):
        log.submit(ev(now + i))
    await wait_for(lambda: stats.querylog_written == 6, "the writer to reconnect and catch up")
    await log.close()
    # The loss is noticed by the next batch (counted as failed and kept) or by the writer's
    # first housekeeping round, if that was still running: either way nothing is dropped.
    assert stats.querylog_failed_batches <= 1 and stats.querylog_dropped == 0
    assert sql(pg_dsn, "SELECT count(*) FROM queries") == [(6,)]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot write" in m for m in messages) == 1, messages
    assert sum("writing again" in m for m in messages) == 1, messages
    assert not any("password" in m for m in messages)


async def test_database_not_there_never_blocks_counts_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="resolver.store.querylog")
    stats = Stats()
    dsn = f"host={tmp_path} port=5432 user=postgres password=hunter2 dbname=nothing"
    log = QueryLog(None, backend="postgresql", dsn=dsn, queue_size=10, batch=4,
                   flush_interval=0.02, stats=stats)  # fmt: skip
    await log.start()  # a database that is down does not stop the start
    now = time.time()
    started = time.monotonic()
    for i in range(50):
        log.submit(ev(now + i))
    assert time.monotonic() - started < 1.0  # 50 appends, whatever the writer is doing
    await wait_for(lambda: stats.querylog_failed_batches >= 2, "two failed attempts")
    await log.close()  # in an outage: does not wait for the database
    assert stats.querylog_written == 0
    assert stats.querylog_dropped == 50  # every event accounted for
    warnings = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1 and "PostgreSQL nothing on" in warnings[0]
    assert "hunter2" not in caplog.text
    reader = QueryLog(None, backend="postgresql", dsn=dsn)
    await reader.start()
    with pytest.raises(StoreUnavailable):
        await asyncio.to_thread(reader.search, QueryFilter())
    await reader.close()


def test_retention_waits_for_no_long_reader_and_drops_the_day_later(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("resolver.store.postgresql.LOCK_TIMEOUT", "200ms")
    store = PostgresQueryStore(pg_dsn)
    store.write([ev(utc("2025-03-01T10:00")), ev(utc("2025-03-05T10:00"))])
    with psycopg.connect(pg_dsn) as report:  # a long report: a transaction reading the table
        report.execute("SELECT count(*) FROM queries").fetchone()
        assert store.expire(utc("2025-03-04T00:00")) == 0  # gave up after 200 ms, no error
        assert store.purge(utc("2025-03-04T00:00")) == 1  # exact all the same: a row delete
        assert "in use; dropping it later" in caplog.text
        store.maintain(utc("2025-03-05T12:00"))  # cannot create ahead either: logged, no error
        assert "not created ahead" in caplog.text
    assert store.expire(utc("2025-03-04T00:00")) == 0
    assert partitions(pg_dsn) == ["queries_p20250305"]  # the emptied day went this time
    store.maintain(utc("2025-03-05T12:00"))
    assert len(partitions(pg_dsn)) == 3
    store.close()


def test_servers_sharing_a_new_database_never_race(pg_dsn: str) -> None:
    """Four servers start at once on an empty database: one migrates, all create partitions."""
    start = utc("2025-06-01T00:00")
    errors: list[BaseException] = []

    def server(n: int) -> None:
        store = PostgresQueryStore(pg_dsn)
        try:
            for day in range(10):
                store.write([ev(start + day * DAY + n + i / 10) for i in range(5)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=server, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sql(pg_dsn, "SELECT count(*) FROM queries") == [(200,)]
    assert len(partitions(pg_dsn)) == 10
