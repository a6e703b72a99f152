"""SQLite and PostgreSQL give the same answers: the same synthetic events go into both, and the
admin summary and query-log search results are compared byte for byte; the same week of
roll-ups (`support.traffic`, through the real roll-up path) and audit rows go into both, and
the `report` outputs (JSON, CSV, HTML, through the library and the CLI) and the audit trail are
compared byte for byte.

The PostgreSQL database uses an ICU English collation (where "a" sorts before "B"), and the
days straddle a daylight-saving change in one of the two time zones, so a backend that sorted
with the database's collation or cut days at a fixed UTC offset would differ. Reports cut days
in the policy's zone, whatever the server's: they are the same under both local zones.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.postgres import PostgresServer
from support.traffic import HCM, week, write_week

from resolver.cli import main
from resolver.http.report_html import to_html
from resolver.rollup import Batch
from resolver.store.audit import AuditEntry, record_list_version
from resolver.store.base import QueryFilter, QueryStore
from resolver.store.events import QueryEvent
from resolver.store.postgresql import PostgresQueryStore
from resolver.store.reports import build_report, parse_period, period_between, to_csv, to_json
from resolver.store.sqlite import SqliteQueryStore

PROFILES = ["students", "Staff", "a-team", "B-team", "guests"]
CATEGORIES = [None, "adult", "gambling", "Violence", "mandated-vn", "malware"]
NAMES = [
    "ok.example", "adult.example", "a.adult.example", "Casino.example", "a_b.example",
    "axb.example", "x%y.example", "www.google.com", "banned.example", "xn--bcher-kva.example",
    "deep.sub.adult.example", "notadult.example",
]  # fmt: skip
ACTIONS = ["allowed", "allowed", "allowed", "blocked", "blocked", "rewritten", "nxdomain"]
TIERS = {"blocked": ["category", "mandated"], "rewritten": ["safesearch", "rewrite"]}


def synthetic_events(start: float, count: int, seed: int = 468) -> list[QueryEvent]:
    """Events every ~3.5 minutes from `start` (distinct times), with ties in every ranking."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        action = rng.choice(ACTIONS)
        tier = rng.choice(TIERS.get(action, ["default"]))
        category = rng.choice(CATEGORIES[1:]) if action == "blocked" else None
        events.append(
            QueryEvent(
                ts=start + i * 211.0 + rng.random(),
                client=f"{rng.randrange(16):016x}" if i % 9 else "",
                profile=rng.choice(PROFILES),
                qname=rng.choice(NAMES),
                qtype=rng.choice(["A", "AAAA", "HTTPS", "TYPE65"]),
                action=action,
                tier=tier,
                category=category,
                rcode=rng.choice([0, 0, 0, 2, 3, 5]),
                latency_ms=rng.random() * 80,
                transport=rng.choice(["udp", "tcp"]),
                cached=rng.random() < 0.4,
            )
        )
    # Exact ties: two more names blocked the same number of times, one with no category.
    for n, name in enumerate(["tie-b.example", "tie-a.example"] * 5):
        events.append(events[0]._replace(ts=start + 0.25 + n, qname=name, action="blocked",
                                         tier="category", category=None))  # fmt: skip
    return events


@pytest.fixture(params=["Asia/Ho_Chi_Minh", "America/New_York"])
def local_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server's local time zone (both SQLite and our day bounds read it through libc)."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def both(
    local_zone: str, tmp_path: Path, postgres_server: PostgresServer
) -> Iterator[tuple[SqliteQueryStore, PostgresQueryStore, str]]:
    """The same events in a SQLite file and in a PostgreSQL database (ICU en-US collation)."""
    dsn = postgres_server.create_database(
        "TEMPLATE template0", "LOCALE_PROVIDER icu", "ICU_LOCALE 'en-US'"
    )
    sqlite, pg = SqliteQueryStore(tmp_path / "q.sqlite"), PostgresQueryStore(dsn)
    # 2025-03-07 to 2025-03-12 local: New York moves its clocks on 2025-03-09.
    events = synthetic_events(datetime(2025, 3, 7, 0, 30).timestamp(), 2400)
    for store in (sqlite, pg):
        for i in range(0, len(events), 500):
            assert store.write(events[i : i + 500]) == len(events[i : i + 500])
    yield sqlite, pg, dsn
    sqlite.close()
    pg.close()


class _Sink:
    def __init__(self, store: QueryStore) -> None:
        self.store = store

    def audit(self, entry: AuditEntry) -> None:
        self.store.write_audit([entry], "gw-1")


@pytest.fixture
def both_rollups(
    local_zone: str, tmp_path: Path, postgres_server: PostgresServer
) -> Iterator[tuple[SqliteQueryStore, PostgresQueryStore, str]]:
    """The same week of roll-ups, audit rows and top tables in both backends."""
    dsn = postgres_server.create_database(
        "TEMPLATE template0", "LOCALE_PROVIDER icu", "ICU_LOCALE 'en-US'"
    )
    sqlite, pg = SqliteQueryStore(tmp_path / "r.sqlite"), PostgresQueryStore(dsn)
    answers = week()
    t0 = datetime(2025, 3, 3, 8, tzinfo=HCM).timestamp()
    # names that tie, in both cases, so the order cannot come from a collation
    ties = {
        ("2025-03-04", name): 7 for name in ("b.example", "B.example", "a.example", "_.example")
    }
    for store in (sqlite, pg):
        write_week(store, answers)
        store.write_rollups(Batch(top=ties), "gw-1")
        for gen, (digest, at) in enumerate([("a" * 64, t0), ("b" * 64, t0 + 86400 * 2)], 1):
            store.write_audit([AuditEntry(at, "reload", generation=gen, cause="start",
                                          result="ok")], "gw-1")  # fmt: skip
            record_list_version(_Sink(store), source="authority-mandated", category="mandated",
                                rules=100 + gen, generation=gen, at=at, path="/l/m.rpz",
                                digest=digest, fetched_at="2025-03-03T00:00:00Z")  # fmt: skip
    yield sqlite, pg, dsn
    sqlite.close()
    pg.close()


def report_texts(store: QueryStore, *args: Any, **kwargs: Any) -> tuple[str, str, str]:
    report = build_report(store, *args, now=1e10, **kwargs)
    return to_json(report), to_csv(report), to_html(report)


def test_report_json_csv_and_html_are_identical(both_rollups: tuple[Any, Any, str]) -> None:
    sqlite, pg, _ = both_rollups
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((period_between("2025-03-03", "2025-03-09"),), {}),
        ((period_between("2025-03-05", "2025-03-05"),), {}),  # a day alone
        ((period_between("2025-03-04", "2025-03-08"),), {"profile": "standard"}),
        ((parse_period("2025-03"),), {"top": 3}),
        ((parse_period("2025-H1"),), {}),
    ]
    for args, kwargs in cases:
        assert report_texts(pg, *args, **kwargs) == report_texts(sqlite, *args, **kwargs)
    data = json.loads(report_texts(pg, parse_period("2025-03"))[0])
    assert data["totals"]["queries"] == len(week())
    assert [r["domain"] for r in data["top_blocked"] if r["blocked"] == 7] == [
        "B.example", "_.example", "a.example", "b.example"
    ]  # fmt: skip
    assert [v["digest"][0] for v in data["list_versions"]] == ["a", "b"]
    assert data["reloads"] == {"ok": 2, "failed": 0}


def test_audit_trail_is_identical(both_rollups: tuple[Any, Any, str]) -> None:
    sqlite, pg, _ = both_rollups
    t0 = datetime(2025, 3, 3, 8, tzinfo=HCM).timestamp()
    assert pg.read_audit() == sqlite.read_audit()
    assert pg.read_audit(t0 + 1, None, "list") == sqlite.read_audit(t0 + 1, None, "list")
    for since in (t0 - 1, t0 + 1, t0 + 86400 * 3):
        assert pg.lists_in_force(since, since + 3600) == sqlite.lists_in_force(since, since + 3600)
    assert [r["digest"][0] for r in pg.lists_in_force(t0 + 86400 * 3, t0 + 86400 * 4)] == ["b"]


def test_admin_summary_over_hours_is_identical(both: tuple[Any, Any, str]) -> None:
    sqlite, pg, _ = both
    until = datetime(2025, 3, 10, 17, 13).timestamp() + 0.5
    for hours, profile, top in [
        (1, None, 10),
        (24, None, 10),
        (36, "Staff", 5),
        (24 * 366, None, 100),
    ]:
        since = until - hours * 3600
        assert pg.summary(since, until, profile, top) == sqlite.summary(since, until, profile, top)


def test_admin_search_results_are_identical(both: tuple[Any, Any, str]) -> None:
    sqlite, pg, _ = both
    start = datetime(2025, 3, 8).timestamp()
    filters = [
        QueryFilter(),
        QueryFilter(limit=1000),
        QueryFilter(qname="adult.example", limit=1000),
        QueryFilter(qname="A_B.example."),  # '_' is not a wildcard; case and dot ignored
        QueryFilter(qname="x%y.example"),
        QueryFilter(client="000000000000000a", since=start, until=start + 86400),
        QueryFilter(profile="a-team", action="blocked", category="gambling"),
        QueryFilter(category="mandated-vn", limit=5),
        QueryFilter(since=start + 3600.5, until=start + 7200.25),
        # The dashboard's search: query type, a name containing a text, pages by offset.
        QueryFilter(qtype="AAAA", limit=50),
        QueryFilter(name_contains="ADULT", limit=20, offset=20),
        QueryFilter(name_contains="_", limit=50),  # '_' is text here too
        QueryFilter(until=start + 86400, limit=7, offset=700),
        # A teacher's search: any of her profiles, or (none assigned) nothing.
        QueryFilter(profiles=("a-team", "guests"), limit=50, offset=10),
        QueryFilter(profiles=()),
    ]
    for flt in filters:
        rows = pg.search(flt)
        assert json.dumps(rows) == json.dumps(sqlite.search(flt)), flt
    assert {r["qname"] for r in pg.search(QueryFilter(qname="a_b.example"))} == {"a_b.example"}
    assert pg.search(QueryFilter(profiles=())) == []
    assert pg.search(QueryFilter(limit=1000))[0]["client"] in (
        None,
        *(f"{i:016x}" for i in range(16)),
    )


def test_cli_report_from_a_postgresql_config_matches_sqlite(
    both_rollups: tuple[Any, Any, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite, _, dsn = both_rollups
    (tmp_path / "dsn").write_text(dsn + "\n")
    config = tmp_path / "server.yaml"
    config.write_text("querylog:\n  backend: postgresql\n  dsn_file: dsn\n")
    period = ["--from", "2025-03-03", "--to", "2025-03-09"]
    outputs = []
    for source in (["--config", str(config)], ["--db", str(sqlite.path)]):
        assert main(["report", *period, "--format", "csv", *source]) == 0
        outputs.append(capsys.readouterr().out.split("\n", 7)[7])  # after "generated"
        assert main(["report", *period, "--profile", "teachers", *source]) == 0
        outputs.append(json.loads(capsys.readouterr().out) | {"generated": "-"})
        assert main(["audit", "--json", "--from", "2025-03-03", *source]) == 0
        outputs.append([r for r in json.loads(capsys.readouterr().out) if r["kind"] != "report"])
    assert outputs[:3] == outputs[3:]
    assert outputs[2] and outputs[1]["totals"]["queries"] > 0
