"""The query log, checked on the SQLite file itself: privacy modes, rotation, retention, queue."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from resolver.stats import Stats
from resolver.store.base import QueryFilter
from resolver.store.events import QueryEvent
from resolver.store.querylog import QueryLog
from resolver.store.sqlite import SqliteQueryStore, SqliteRequestStore

DAY = 86400.0


def ev(ts: float, client: str = "192.0.2.10", **fields) -> QueryEvent:
    base = {
        "profile": "students", "qname": "ok.example", "qtype": "A", "action": "allowed",
        "tier": "default", "category": None, "rcode": 0, "latency_ms": 1.5,
        "transport": "udp", "cached": False,
    }  # fmt: skip
    return QueryEvent(ts=ts, client=client, **(base | fields))


def rows(path: Path, sql: str = "SELECT * FROM queries ORDER BY ts") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def run_log(path: Path, events: list[QueryEvent], **kwargs) -> QueryLog:
    log = QueryLog(path, flush_interval=0.05, **kwargs)
    await log.start()
    for e in events:
        log.submit(e)
    await log.close()
    return log


async def test_pseudonyms_are_keyed_stable_within_a_day_and_unlinkable_across(tmp_path: Path):
    db = tmp_path / "q.sqlite"
    now = time.time()
    events = [
        ev(now - 2 * DAY, "192.0.2.10"),
        ev(now, "192.0.2.10"),
        ev(now + 1, "192.0.2.10"),
        ev(now + 2, "192.0.2.11"),
    ]
    await run_log(db, events)
    clients = [r["client"] for r in rows(db)]
    assert all(len(c) == 16 and int(c, 16) >= 0 for c in clients)
    yesterday, today_a, today_b, other = clients
    assert today_a == today_b  # one device keeps one pseudonym within the period
    assert yesterday != today_a  # the key rotated: days cannot be linked
    assert other != today_a
    # the address appears nowhere in the database files, WAL included
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("q.sqlite"))
    assert b"192.0.2.10" not in raw and b"192.0.2.11" not in raw
    assert (rows(db, "PRAGMA journal_mode")[0][0]).lower() == "wal"


async def test_clients_none_stores_no_client_and_full_stores_the_address(tmp_path: Path):
    now = time.time()
    await run_log(tmp_path / "none.sqlite", [ev(now)], clients="none")
    await run_log(tmp_path / "full.sqlite", [ev(now)], clients="full")
    assert [r["client"] for r in rows(tmp_path / "none.sqlite")] == [None]
    assert [r["client"] for r in rows(tmp_path / "full.sqlite")] == ["192.0.2.10"]


async def test_every_field_is_stored(tmp_path: Path):
    db = tmp_path / "q.sqlite"
    e = ev(time.time(), qname="x.adult.example", qtype="AAAA", action="blocked", tier="category",
           category="adult", rcode=3, latency_ms=0.25, transport="tcp", cached=True)  # fmt: skip
    await run_log(db, [e], clients="full")
    (r,) = rows(db)
    assert tuple(r) == (*e[:11], 1)


async def test_retention_deletes_old_rows_at_start_and_purge_on_demand(tmp_path: Path):
    db = tmp_path / "q.sqlite"
    now = time.time()
    store = SqliteQueryStore(db)
    store.write([ev(now - 40 * DAY), ev(now - 31 * DAY), ev(now - 5 * DAY), ev(now)])
    store.close()
    log = QueryLog(db, retention_days=30, flush_interval=0.05)
    await log.start()
    await log.close()  # the writer sweeps retention on its first round
    assert [round((now - r["ts"]) / DAY) for r in rows(db)] == [5, 0]

    log = QueryLog(db, retention_days=None)
    await log.start()
    assert await asyncio.to_thread(log.purge, 1) == 1
    assert len(rows(db)) == 1
    assert await asyncio.to_thread(log.purge, None) == 1
    await log.close()
    assert rows(db) == []


async def test_full_queue_drops_and_counts_and_close_flushes_the_rest(tmp_path: Path):
    db = tmp_path / "q.sqlite"
    stats = Stats()
    # The writer only wakes for a full batch or after flush_interval: neither happens here.
    log = QueryLog(db, queue_size=10, batch=1000, flush_interval=60.0, stats=stats)
    await log.start()
    now = time.time()
    for i in range(25):
        log.submit(ev(now + i))
    assert log.queued == 10
    assert stats.querylog_dropped == 15
    await log.close()
    assert len(rows(db)) == 10
    assert stats.querylog_written == 10
    log.submit(ev(now))  # after close: dropped and counted, never raises
    assert stats.querylog_dropped == 16


async def test_search_by_client_name_suffix_and_action(tmp_path: Path):
    db = tmp_path / "q.sqlite"
    log = QueryLog(db, batch=1, flush_interval=0.02)
    await log.start()
    now = time.time()
    log.submit(ev(now, "192.0.2.10", qname="a.adult.example", action="blocked"))
    log.submit(ev(now + 1, "192.0.2.10", qname="adult.example", action="blocked"))
    log.submit(ev(now + 2, "192.0.2.99", qname="notadult.example"))
    for _ in range(200):
        if log.stats.querylog_written == 3:
            break
        await asyncio.sleep(0.01)
    found = await asyncio.to_thread(log.search, QueryFilter(qname="adult.example"))
    assert [r["qname"] for r in found] == ["adult.example", "a.adult.example"]
    mine = await asyncio.to_thread(log.search, QueryFilter(client="192.0.2.99"))
    assert [r["qname"] for r in mine] == ["notadult.example"]
    assert mine[0]["client"] != "192.0.2.99"
    blocked = await asyncio.to_thread(log.search, QueryFilter(action="blocked", limit=1))
    assert len(blocked) == 1
    await log.close()


def test_bad_settings_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="clients"):
        QueryLog(tmp_path / "q", clients="some")
    with pytest.raises(ValueError, match="retention"):
        QueryLog(tmp_path / "q", retention_days=0)
    with pytest.raises(ValueError, match="key_rotation"):
        QueryLog(tmp_path / "q", key_rotation="monthly")


async def test_unwritable_path_fails_at_start(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        await QueryLog(blocker / "q.sqlite").start()


def test_a_file_from_before_schema_versions_is_adopted_and_a_newer_one_refused(tmp_path: Path):
    db = tmp_path / "q.sqlite"
    conn = sqlite3.connect(db)  # the layout written before migrations were numbered
    conn.executescript(
        "CREATE TABLE queries (ts REAL NOT NULL, client TEXT, profile TEXT NOT NULL,"
        " qname TEXT NOT NULL, qtype TEXT NOT NULL, action TEXT NOT NULL, tier TEXT NOT NULL,"
        " category TEXT, rcode INTEGER NOT NULL, latency_ms REAL NOT NULL,"
        " transport TEXT NOT NULL, cached INTEGER NOT NULL);"
        "INSERT INTO queries VALUES (1.5, NULL, 'p', 'a.example', 'A', 'allowed', 'default',"
        " NULL, 0, 1.0, 'udp', 0);"
    )
    conn.close()
    SqliteQueryStore(db).close()
    SqliteRequestStore(db).close()
    versions = rows(db, "SELECT component, version FROM schema_versions ORDER BY 1")
    assert [tuple(r) for r in versions] == [("querylog", 1), ("reports", 1), ("requests", 1)]
    assert len(rows(db)) == 1  # the old rows are kept
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE schema_versions SET version = 7 WHERE component = 'querylog'")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this safe-resolver"):
        SqliteQueryStore(db)
