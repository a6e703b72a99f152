"""The audit trail and the roll-ups' retention on both backends: rows cannot be changed, young
rows cannot be deleted, retention removes what is older than `report_retention_days`, the
most-blocked tables are cut to their top once a day is over, and `safe-resolver audit` prints
the trail."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.postgres import PostgresServer
from support.traffic import HCM

from resolver.cli import main
from resolver.rollup import TOP_STORED, Batch, DayMark
from resolver.store.audit import AuditEntry, list_facts
from resolver.store.base import QueryStore
from resolver.store.postgresql import PostgresQueryStore
from resolver.store.sqlite import SqliteQueryStore

DAY = 86400.0
YEAR = 365 * DAY


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[QueryStore, Any]]:
    """A store and a function running raw SQL on its database (as an operator could)."""
    if request.param == "sqlite":
        path = tmp_path / "q.sqlite"
        sq = SqliteQueryStore(path)

        def run_sqlite(query: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(query)

        yield sq, run_sqlite
        sq.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    dsn = server.create_database()
    pg = PostgresQueryStore(dsn)
    pg.maintain(time.time())  # connects and migrates

    def run_pg(query: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(query.encode())

    yield pg, run_pg
    pg.close()


def test_the_audit_trail_is_append_only(store: tuple[QueryStore, Any]) -> None:
    db, run = store
    now = time.time()
    db.write_audit([AuditEntry(now - 2 * YEAR, "reload", generation=1, cause="start",
                               result="ok"),
                    AuditEntry(now, "reload", generation=2, cause="sighup", result="ok")],
                   "gw-1")  # fmt: skip
    for query in (
        "UPDATE audit_log SET result = 'failed'",
        f"DELETE FROM audit_log WHERE ts > {now - DAY}",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(Exception, match="audit_log"):
            run(query)
    if isinstance(db, PostgresQueryStore):
        with pytest.raises(Exception, match="audit_log"):
            run("TRUNCATE audit_log")
    assert [r["generation"] for r in db.read_audit()] == [1, 2]
    run(f"DELETE FROM audit_log WHERE ts < {now - YEAR - DAY}")  # older than a year: may go
    assert [r["generation"] for r in db.read_audit()] == [2]


def test_retention_removes_old_rollups_and_audit_rows_only(store: tuple[QueryStore, Any]) -> None:
    db, _ = store
    now = time.time()
    old, new = now - 4 * YEAR, now - DAY
    for ts in (old, new):
        day = datetime.fromtimestamp(ts, HCM).date().isoformat()
        db.write_rollups(
            Batch(counts={(day, "p", "", "default", "allowed"): 3}, top={(day, "x.example"): 1},
                  requests={(day, "content_report"): 1},
                  days={day: DayMark(ts, ts, 0.0, "Asia/Ho_Chi_Minh")}),
            "gw-1",
        )  # fmt: skip
        db.write_audit([AuditEntry(ts, "reload", cause="api", result="ok")], "gw-1")
    cutoff = now - (3 * 365 + 1) * DAY
    removed = db.expire_reports(datetime.fromtimestamp(cutoff, HCM).date().isoformat(), cutoff)
    assert removed == 5  # one row in each roll-up table and the audit row
    new_day = datetime.fromtimestamp(new, HCM).date().isoformat()
    rows = db.read_rollups("2000-01-01", "2100-01-01")
    assert [r[0] for r in rows.counts] == [new_day] and [r[0] for r in rows.days] == [new_day]
    assert [r["ts"] for r in db.read_audit()] == [new]


def test_past_days_keep_their_top_domains_only(store: tuple[QueryStore, Any]) -> None:
    db, _ = store
    now = datetime(2025, 3, 10, 12, tzinfo=HCM).timestamp()
    weights = {f"d{i:05d}.example": 1 + i % 7 for i in range(TOP_STORED + 300)}
    for day in ("2025-03-01", "2025-03-10"):
        db.write_rollups(Batch(top={(day, name): n for name, n in weights.items()}), "gw-1")
    db.maintain(now)
    db.maintain(now)  # idempotent
    past = db.read_rollups("2025-03-01", "2025-03-01").top
    heaviest = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_STORED]
    assert sorted(past) == sorted(heaviest)  # the lighter ones went; ties by name
    assert len(db.read_rollups("2025-03-10", "2025-03-10").top) == TOP_STORED + 300  # today


def test_list_facts_read_what_lists_update_and_transfers_keep(tmp_path: Path) -> None:
    copy = tmp_path / "authority.rpz"
    copy.write_text("$ORIGIN rpz.\nbanned.example CNAME .\n")
    (tmp_path / "authority.meta.json").write_text(
        '{"zone": "rpz.gov.vn", "serial": 2026010101, "fetched_at": "2026-01-01T00:00:00Z"}'
    )
    facts = list_facts({"path": str(copy)})
    assert facts["zone"] == "rpz.gov.vn" and facts["serial"] == 2026010101
    assert facts["fetched_at"] == "2026-01-01T00:00:00Z" and facts["url"] is None
    assert facts["modified_at"] is not None and facts["modified_at"].endswith("Z")
    assert list_facts({"path": str(tmp_path / "gone.txt")})["modified_at"] is None


def test_audit_command_prints_the_trail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "q.sqlite"
    db = SqliteQueryStore(path)
    t = datetime(2025, 3, 3, 8, tzinfo=HCM).timestamp()
    db.write_audit(
        [
            AuditEntry(t, "reload", generation=1, cause="start", result="ok"),
            AuditEntry(t, "list", generation=1, result="in-force", source="authority",
                       category="mandated", rules=1234, digest="ab" * 32, path="/l/a.rpz",
                       fetched_at="2025-03-03T00:59:00Z"),
            AuditEntry(t + DAY, "reload", generation=1, cause="sighup+api", result="failed",
                       detail="the mandated list would shrink"),
        ],
        "gw-1",
    )  # fmt: skip
    db.close()
    assert main(["audit", "--db", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# times in Asia/Ho_Chi_Minh"
    assert lines[1] == "2025-03-03T08:00:00+07:00  gw-1  reload  gen 1  start  ok"
    assert lines[2].startswith("2025-03-03T08:00:00+07:00  gw-1  list    gen 1  authority")
    assert "1234 rules" in lines[2] and f"sha256 {'ab' * 32}" in lines[2]
    assert "failed  the mandated list would shrink" in lines[3]
    assert main(["audit", "--db", str(path), "--from", "2025-03-04", "--json"]) == 0
    assert [r["cause"] for r in json.loads(capsys.readouterr().out)] == ["sighup+api"]
    assert main(["audit", "--db", str(path), "--to", "2025-03-03", "--tz", "UTC"]) == 0
    out = capsys.readouterr().out
    assert "# times in UTC" in out and "2025-03-03T01:00:00+00:00" in out and "sighup" not in out
    assert main(["audit", "--db", str(path), "--tz", "Mars/Olympus"]) == 2
