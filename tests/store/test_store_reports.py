"""Reports from the roll-ups over a real SQLite file, through the library and the CLI: a week of
traffic across local midnights in Ho Chi Minh City, a day the server was down, `purge --all` of
the raw rows, hostile names, the JSON Schema, the SHA-256 manifest and its audit record."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support.traffic import (
    DAYS,
    FIRST_DAY,
    GAP_DAY,
    HCM,
    expected_days,
    expected_totals,
    week,
    write_week,
)

from resolver.cli import main
from resolver.http.i18n import _catalogue_names
from resolver.http.report_html import to_html
from resolver.rollup import Batch, DayMark
from resolver.store.audit import AuditEntry
from resolver.store.reports import (
    NotCovered,
    Period,
    build_report,
    load_schema,
    parse_period,
    period_between,
    to_csv,
    to_json,
)
from resolver.store.sqlite import SqliteQueryStore

LAST_DAY = "2025-03-09"
WEEK = ["--from", FIRST_DAY, "--to", LAST_DAY]


@pytest.fixture(autouse=True)
def bundled_catalogue(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Category names from the repository's own catalogue, whatever the install looks like."""
    blocklists = Path(__file__).resolve().parents[2] / "blocklists"
    monkeypatch.setenv("SAFE_RESOLVER_BLOCKLISTS", str(blocklists))
    _catalogue_names.cache_clear()
    yield
    _catalogue_names.cache_clear()


@pytest.fixture(scope="module")
def answers() -> list[Any]:
    return week()


@pytest.fixture
def db(tmp_path: Path, answers: list[Any]) -> Path:
    path = tmp_path / "var" / "querylog.sqlite"
    store = SqliteQueryStore(path)
    write_week(store, answers)
    store.close()
    return path


def report_of(db: Path, *args: str) -> dict[str, Any]:
    """`safe-resolver report ... --format json` through the CLI, `generated` blanked."""
    out = db.parent / "report.json"
    assert main(["report", *args, "--db", str(db), "-o", str(out)]) == 0
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data | {"generated": "-"}


def test_a_week_across_local_midnights_is_counted_per_local_day(
    db: Path, answers: list[Any]
) -> None:
    store = SqliteQueryStore(db)
    report = build_report(store, period_between(FIRST_DAY, LAST_DAY), now=1e10)
    store.close()
    jsonschema.validate(report, load_schema())
    assert report["timezone"] == "Asia/Ho_Chi_Minh"
    assert report["totals"] == expected_totals(answers)
    days = {row["day"]: row["queries"] for row in report["per_day"] if row["covered"]}
    assert days == expected_days(answers) and len(days) == DAYS - 1
    # the midnight bursts land on both sides of each boundary
    assert all(days[d] > 500 for d in days if d not in (FIRST_DAY, LAST_DAY))
    assert report["mandated"]["by_action"] == {
        "blocked": sum(a.tier == "mandated" and a.action == "blocked" for a in answers),
        "rewritten": sum(a.tier == "mandated" and a.action == "rewritten" for a in answers),
    }
    top = report["top_blocked"]
    assert top[0]["domain"] in ("xvideos.com", "example.net")  # registrable domains
    assert "www.xvideos.com" not in {r["domain"] for r in top}


def test_a_day_without_data_is_reported_missing_never_zero(db: Path, capsys: Any) -> None:
    report = report_of(db, *WEEK)
    assert "NO DATA (2025-03-06)" in capsys.readouterr().err
    cov = report["coverage"]
    assert (cov["days"], cov["covered"], cov["complete"]) == (DAYS, DAYS - 1, False)
    assert cov["missing"] == [{"from": GAP_DAY, "to": GAP_DAY, "days": 1, "reason": "no data"}]
    gap = next(row for row in report["per_day"] if row["day"] == GAP_DAY)
    assert gap == {
        "day": GAP_DAY, "covered": False, "up_hours": None, "queries": None, "blocked": None,
        "rewritten": None, "mandated": None, "safesearch": None,
    }  # fmt: skip
    # days before the server ran are missing too, in one range
    earlier = report_of(db, "--from", "2025-02-26", "--to", LAST_DAY)["coverage"]["missing"]
    assert earlier[0] == {"from": "2025-02-26", "to": "2025-03-02", "days": 5, "reason": "no data"}


def test_a_quiet_day_with_the_server_up_is_zero_not_missing(tmp_path: Path) -> None:
    store = SqliteQueryStore(tmp_path / "q.sqlite")
    ts = datetime(2025, 3, 10, 12, tzinfo=HCM).timestamp()
    mark = DayMark(ts, ts + 600, 600.0, "Asia/Ho_Chi_Minh")
    store.write_rollups(Batch(days={"2025-03-10": mark}), "gw-1")
    report = build_report(store, period_between("2025-03-10", "2025-03-10"), now=1e10)
    store.close()
    assert report["coverage"]["complete"] and report["totals"]["queries"] == 0
    assert report["per_day"][0]["queries"] == 0 and report["coverage"]["partial"] == ["2025-03-10"]


def test_purge_all_removes_raw_rows_only_and_the_report_is_unchanged(
    db: Path, answers: list[Any], capsys: Any
) -> None:
    before = report_of(db, *WEEK)
    assert main(["purge", "--db", str(db), "--all"]) == 0
    logged = sum(1 for a in answers if a.profile != "standard")
    assert f"removed {logged} query-log rows" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM queries").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM rollup_counts").fetchone()[0] > 0
        assert conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == 1  # the report
    assert report_of(db, *WEEK) == before
    assert before["totals"]["queries"] == len(answers)


def test_log_false_profiles_count_and_so_do_their_mandated_hits(
    db: Path, answers: list[Any]
) -> None:
    with sqlite3.connect(db) as conn:  # no raw row for the `log: false` profile
        standard = "SELECT COUNT(*) FROM queries WHERE profile = 'standard'"
        assert conn.execute(standard).fetchone() == (0,)
    report = report_of(db, *WEEK)
    standard = next(r for r in report["per_profile"] if r["profile"] == "standard")
    mine = [a for a in answers if a.profile == "standard"]
    assert standard["queries"] == len(mine)
    assert standard["mandated"] == sum(a.tier == "mandated" for a in mine) > 0


def test_one_profile_and_csv(db: Path, answers: list[Any]) -> None:
    report = report_of(db, *WEEK, "--profile", "teachers")
    assert report["totals"]["queries"] == sum(a.profile == "teachers" for a in answers)
    assert [r["profile"] for r in report["per_profile"]] == ["teachers"]
    assert report["top_blocked"] == []  # kept for all profiles together only
    out = db.parent / "r.csv"
    assert main(["report", *WEEK, "--db", str(db), "--format", "csv", "-o", str(out)]) == 0
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {"section": "report", "key": "timezone", "metric": "",
            "value": "Asia/Ho_Chi_Minh"} in table  # fmt: skip
    assert {"section": "coverage", "key": f"{GAP_DAY}..{GAP_DAY}", "metric": "no data",
            "value": "1"} in table  # fmt: skip
    queries = next(r for r in table if r["section"] == "total" and r["metric"] == "queries")
    assert int(queries["value"]) == len(answers)


def test_period_names() -> None:
    assert parse_period("2026-H1") == Period(date(2026, 1, 1), date(2026, 6, 30), "2026-H1")
    assert parse_period("2026-H2").last == date(2026, 12, 31)
    assert parse_period("2026") == Period(date(2026, 1, 1), date(2026, 12, 31), "2026")
    assert parse_period("2024-Q1").last == date(2024, 3, 31)
    assert parse_period("2024-02").last == date(2024, 2, 29)
    assert len(parse_period("2026-H1").days) == 181
    for bad in ("2026-H3", "26", "2026-13", "H1"):
        with pytest.raises(ValueError, match="period"):
            parse_period(bad)
    with pytest.raises(ValueError, match="before"):
        period_between("2025-03-02", "2025-03-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        period_between("2025-13-01", "2025-03-01")


def test_cli_period_and_its_checks(db: Path, capsys: Any) -> None:
    report = report_of(db, "--period", "2025-03")
    assert report["period"] == "2025-03" and report["coverage"]["days"] == 31
    assert report["coverage"]["covered"] == DAYS - 1
    assert main(["report", "--period", "2025-03", "--from", FIRST_DAY, "--db", str(db)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["report", "--from", FIRST_DAY, "--db", str(db)]) == 2
    assert "--period" in capsys.readouterr().err


def test_a_period_without_any_data_is_refused(db: Path, tmp_path: Path, capsys: Any) -> None:
    assert main(["report", "--period", "2024-H2", "--db", str(db)]) == 3
    err = capsys.readouterr().err
    assert "REFUSED" in err and "2024-07-01 to 2024-12-31" in err
    assert main(["report", *WEEK, "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no query log" in capsys.readouterr().err


def test_organisation_comes_from_the_config(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        f"querylog:\n  path: {db}\n"
        "organisation:\n  name: Trường THCS Nguyễn Du\n  address: 12 Lê Lợi, Huế\n"
        "  contact: '0234 123 456'\n"
    )
    out = tmp_path / "r.html"
    assert main(["report", *WEEK, "--config", str(config), "--format", "html", "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Trường THCS Nguyễn Du" in page and "12 Lê Lợi, Huế" in page
    assert "Asia/Ho_Chi_Minh (UTC+07:00)" in page
    assert "<script" not in page and "src=" not in page and "@import" not in page
    assert "Nội dung người lớn" in page and "Adult content" in page  # catalogue names
    assert "10.1.2.3" not in page


def test_a_written_report_has_a_manifest_and_is_recorded_for_checking(
    db: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", *WEEK, "--db", str(db), "--format", "html", "-o", str(out)]) == 0
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (tmp_path / "report.html.sha256").read_text() == f"{digest}  report.html\n"
    assert "sha256sum -c" in capsys.readouterr().err
    assert main(["audit", "--db", str(db), "--verify", str(out)]) == 0
    said = capsys.readouterr().out
    assert "matches the report recorded" in said and '"format": "html"' in said
    out.write_text(out.read_text(encoding="utf-8").replace("Asia", "Asla"), encoding="utf-8")
    assert main(["audit", "--db", str(db), "--verify", str(out)]) == 1
    assert "NOT in the audit trail" in capsys.readouterr().out


def test_unblock_decisions_and_content_reports_are_counted(tmp_path: Path) -> None:
    store = SqliteQueryStore(tmp_path / "q.sqlite")
    ts = datetime(2025, 3, 10, 12, tzinfo=HCM).timestamp()
    requests = {("2025-03-10", "unblock_approved"): 2, ("2025-03-10", "content_report"): 3,
                ("2025-03-11", "unblock_rejected"): 1}  # fmt: skip
    mark = DayMark(ts, ts, 0.0, "Asia/Ho_Chi_Minh")
    store.write_rollups(Batch(requests=requests, days={"2025-03-10": mark}), "gw-1")
    report = build_report(store, period_between("2025-03-10", "2025-03-10"), now=1e10)
    store.close()
    assert report["requests"] == {"unblock_approved": 2, "unblock_rejected": 0, "content_report": 3}


# What pupils can ask for: each would be a formula (or a DDE payload) in a spreadsheet.
HOSTILE = [
    "=1+2.example", "@sum(1+1).example", "+x.example", "-x.example", "\tcmd.example",
    "\rcmd.example", '=HYPERLINK("http://evil.example","x").example',
    "<script>alert(1)</script>.example",
]  # fmt: skip


@pytest.fixture
def hostile_report(tmp_path: Path) -> dict[str, Any]:
    store = SqliteQueryStore(tmp_path / "hostile.sqlite")
    ts = datetime(2025, 3, 1, 12, tzinfo=HCM).timestamp()
    batch = Batch(
        counts={("2025-03-01", "=cmd|' /C calc'!A0", "adult", "category", "blocked"): 8},
        top={("2025-03-01", name): 1 for name in HOSTILE},
        days={"2025-03-01": DayMark(ts, ts, 0.0, "Asia/Ho_Chi_Minh")},
    )
    store.write_rollups(batch, "gw-1")
    entry = AuditEntry(ts, "list", generation=1, result="in-force", source="=evil",
                       category="mandated", rules=3)  # fmt: skip
    store.write_audit([entry], "gw-1")
    report = build_report(store, period_between("2025-03-01", "2025-03-01"), now=1e10)
    store.close()
    assert {r["domain"] for r in report["top_blocked"]} == set(HOSTILE)
    return report


def test_csv_cells_cannot_start_a_formula(hostile_report: dict[str, Any]) -> None:
    text = to_csv(hostile_report)
    rows = list(csv.reader(io.StringIO(text)))
    names = {row[1] for row in rows if row[0] == "top_blocked"}
    # OWASP: a leading single quote makes the spreadsheet show the cell as text.
    for name in HOSTILE:
        expected = "'" + name if name[0] in "=+-@\t\r" else name
        assert expected in names, name
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # Every text cell is quoted (a quote inside is doubled); counts stay bare numbers.
    assert (
        '"top_blocked","\'=HYPERLINK(""http://evil.example"",""x"").example","blocked",1\n' in text
    )
    assert '"profile","\'=cmd|\' /C calc\'!A0","queries",8\n' in text


def test_html_and_json_reports_show_names_as_data(hostile_report: dict[str, Any]) -> None:
    page = to_html(hostile_report)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.example" in page
    assert "=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;).example" in page
    # Name cells are marked text for a spreadsheet that opens or pastes the table.
    assert '<td class="t" data-label="Tên miền / Domain">=1+2.example</td>' in page
    assert 'td.t { mso-number-format: "\\@";' in page
    assert json.loads(to_json(hostile_report))["top_blocked"] == hostile_report["top_blocked"]
    jsonschema.validate(hostile_report, load_schema())


def test_not_covered_is_an_exception_for_library_callers(tmp_path: Path) -> None:
    store = SqliteQueryStore(tmp_path / "empty.sqlite")
    with pytest.raises(NotCovered, match="no data for any day"):
        build_report(store, parse_period("2025"))
    store.close()


def test_a_version_recorded_again_at_a_restart_is_listed_once(tmp_path: Path) -> None:
    store = SqliteQueryStore(tmp_path / "q.sqlite")
    t = datetime(2025, 3, 10, 8, tzinfo=HCM).timestamp()
    store.write_rollups(Batch(days={"2025-03-10": DayMark(t, t, 0.0, "Asia/Ho_Chi_Minh")}), "gw-1")
    rows = [
        (t - 86400, "a" * 64, 1),
        (t, "a" * 64, 1),
        (t + 60, "b" * 64, 2),
        (t + 120, "b" * 64, 1),
    ]
    store.write_audit(
        [AuditEntry(at, "list", generation=gen, result="in-force", source="gov",
                    category="mandated", rules=10, digest=digest) for at, digest, gen in rows],
        "gw-1",
    )  # fmt: skip
    report = build_report(store, period_between("2025-03-10", "2025-03-10"), now=1e10)
    store.close()
    assert [(v["digest"][0], v["generation"]) for v in report["list_versions"]] == [
        ("a", 1), ("b", 2),
    ]  # fmt: skip
