"""The real resolver logging to a real PostgreSQL, which is then stopped and started again.

DNS must not notice the database: while it is down every query is still answered, the writer
keeps what fits in its queue, drops and counts the rest, and when the server is back the writes
resume on their own. At the end every answered query is either in the database or counted as
dropped: nothing is lost without a count, nothing is written twice.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import dns.rcode
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.postgres import PostgresServer, PostgresUnavailable, start_server
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, unique_name
from support.waiting import wait_for

QUEUE = 20  # querylog.queue_size: small, so an outage overflows it quickly


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it gets stopped, which the session's server must not."""
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    server.close()


def counters(admin: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def search(admin: int, qname: str) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{admin}/api/v1/querylog?qname={qname}&limit=1000"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def logged(dsn: str, names: list[str]) -> int:
    """How many of `names` are in the log (0 before the writer has created its table)."""
    with psycopg.connect(dsn) as conn:
        try:
            cur = conn.execute("SELECT count(*) FROM queries WHERE qname = ANY(%s)", (names,))
        except psycopg.errors.UndefinedTable:
            return 0
        row = cur.fetchone()
        return int(row[0]) if row is not None else 0


def ask(rp: ResolverProc, names: list[str]) -> None:
    for name in names:
        assert rp.query(name, "A").rcode() == dns.rcode.NOERROR, name


def test_resolver_logs_to_postgresql_and_rides_out_an_outage(
    resolver_proc: ResolverFactory, authority: Authority, own_postgres: PostgresServer
) -> None:
    dsn = own_postgres.dsn()
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        admin={"listen": [f"127.0.0.1:{admin}"]},
        querylog={"backend": "postgresql", "dsn": dsn, "clients": "pseudonymized",
                  "queue_size": QUEUE, "batch": 5, "flush_interval": 1},
    )  # fmt: skip
    before = [unique_name("pg-before") for _ in range(5)]
    ask(rp, before)
    wait_for(lambda: logged(dsn, before) == 5, "the first rows in PostgreSQL")
    status, body = search(admin, "w.example.org")
    assert status == 200 and {r["qname"] for r in body["rows"]} >= set(before)
    assert all(r["client"] != "127.0.0.1" and len(r["client"]) == 16 for r in body["rows"])

    own_postgres.stop()
    during = [unique_name("pg-during") for _ in range(3 * QUEUE)]
    ask(rp, during)  # answered while the database is down
    wait_for(lambda: counters(admin)["safe_resolver_querylog_failed_batches_total"] >= 1,
             "a failed batch to be counted")  # fmt: skip
    # Workers hand events to the writer in batches a moment later: wait for them to arrive.
    wait_for(
        lambda: counters(admin)["safe_resolver_querylog_dropped_total"] >= 3 * QUEUE - QUEUE - 5,
        "the events the full queue dropped to be counted",
    )
    assert search(admin, "w.example.org")[0] == 503

    own_postgres.start()  # the writer finds it at its next retry, within its 10 s back-off
    wait_for(lambda: logged(dsn, during) > 0, "the queued part of the outage to be written")
    after = [unique_name("pg-after") for _ in range(5)]
    ask(rp, after)
    wait_for(lambda: logged(dsn, after) == 5, "new queries to be logged again")

    def settled() -> bool:
        c = counters(admin)
        answered = c["safe_resolver_queries_total"]
        return (
            c["safe_resolver_querylog_written_total"] + c["safe_resolver_querylog_dropped_total"]
            == answered
        )

    wait_for(settled, "every answered query to be written or counted as dropped")
    final = counters(admin)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM queries").fetchone()
    assert rows is not None and rows[0] == final["safe_resolver_querylog_written_total"]
    assert logged(dsn, during) < len(during)  # the rest of the outage was dropped, and counted
    assert rp.terminate() == 0
    output = rp.output()  # one warning when the outage began, one when it ended
    assert output.count("query log: cannot write") == 1, output
    assert output.count("query log: writing again") == 1, output
