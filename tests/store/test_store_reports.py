"""Reports over a real query-log file, through the library and the `safe-resolver` CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from resolver.cli import main
from resolver.http.i18n import _catalogue_names
from resolver.http.report_html import to_html
from resolver.store.events import QueryEvent
from resolver.store.reports import build_report, period, to_csv, to_json
from resolver.store.sqlite import SqliteQueryStore

category_names_cache_clear = _catalogue_names.cache_clear


def at(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").timestamp()


def ev(ts: float, profile: str, qname: str, action: str, tier: str, category: str | None):
    return QueryEvent(ts, "192.0.2.7", profile, qname, "A", action, tier, category, 0, 1.0,
                      "udp", False)  # fmt: skip


EVENTS = [
    ev(at("2025-03-01"), "students", "ok.example", "allowed", "default", None),
    ev(at("2025-03-01"), "students", "adult.example", "blocked", "category", "adult"),
    ev(at("2025-03-01", 23), "students", "adult.example", "blocked", "category", "adult"),
    ev(at("2025-03-02", 0), "staff", "casino.example", "blocked", "category", "gambling"),
    ev(at("2025-03-02"), "students", "banned.example", "blocked", "mandated", "mandated-vn"),
    ev(at("2025-03-02"), "students", "www.google.com", "rewritten", "safesearch", None),
    ev(at("2025-03-04"), "students", "late.example", "blocked", "category", "adult"),  # outside
]


@pytest.fixture(autouse=True)
def bundled_catalogue(monkeypatch):
    """Category names from the repository's own catalogue, whatever the install looks like."""
    blocklists = Path(__file__).resolve().parents[2] / "blocklists"
    monkeypatch.setenv("SAFE_RESOLVER_BLOCKLISTS", str(blocklists))
    category_names_cache_clear()
    yield
    category_names_cache_clear()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "querylog.sqlite"
    store = SqliteQueryStore(path)
    store.write(EVENTS)
    store.close()
    return path


def test_report_aggregates_per_day_profile_category(db: Path):
    store = SqliteQueryStore(db)
    report = build_report(store, "2025-03-01", "2025-03-02")
    store.close()
    assert report["totals"] == {
        "queries": 6, "blocked": 4, "rewritten": 1, "mandated": 1, "safesearch": 1,
    }  # fmt: skip
    days = {r["day"]: (r["queries"], r["blocked"]) for r in report["per_day"]}
    assert days == {"2025-03-01": (3, 2), "2025-03-02": (3, 2)}  # 23:00 and 00:00 local
    assert {r["profile"]: r["queries"] for r in report["per_profile"]} == {
        "students": 5, "staff": 1,
    }  # fmt: skip
    assert report["by_category"][0] == {"category": "adult", "blocked": 2}
    assert report["top_blocked"][0] == {"qname": "adult.example", "blocked": 2}
    assert "192.0.2.7" not in json.dumps(report)


def test_profile_filter_and_csv(db: Path):
    store = SqliteQueryStore(db)
    report = build_report(store, "2025-03-01", "2025-03-04", profile="staff")
    store.close()
    assert report["totals"]["queries"] == 1
    table = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {"section": "category", "key": "gambling", "metric": "blocked", "value": "1"} in table
    assert {"section": "total", "key": "staff", "metric": "queries", "value": "1"} in table


def test_period_is_inclusive_and_checked():
    start, end = period("2025-03-01", "2025-03-01")
    assert end - start in (23 * 3600, 24 * 3600, 25 * 3600)
    with pytest.raises(ValueError, match="before"):
        period("2025-03-02", "2025-03-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        period("2025-13-01", "2025-03-01")


def test_cli_report_formats_with_db_from_config(db: Path, tmp_path: Path, capsys):
    config = tmp_path / "server.yaml"
    config.write_text(f"querylog:\n  path: {db}\n")
    out = tmp_path / "r.html"
    assert main(["report", "--from", "2025-03-01", "--to", "2025-03-02", "--format", "html",
                 "--config", str(config), "-o", str(out)]) == 0  # fmt: skip
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "<script" not in page and "http" not in page.split(">", 1)[1]
    assert "Nội dung người lớn" in page and "Adult content" in page  # catalogue names
    assert "adult.example" in page and "192.0.2.7" not in page
    assert main(["report", "--from", "2025-03-01", "--to", "2025-03-02", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["blocked"] == 4
    assert main(["report", "--from", "2025-03-01", "--to", "2025-03-02", "--db", str(db),
                 "--format", "csv"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith('"section","key","metric","value"\n')


def test_cli_report_and_purge_errors(db: Path, tmp_path: Path, capsys):
    assert main(["report", "--from", "2025-03-05", "--to", "2025-03-01", "--db", str(db)]) == 2
    assert "before" in capsys.readouterr().err
    assert main(["report", "--from", "2025-03-01", "--to", "2025-03-02",
                 "--db", str(tmp_path / "missing.sqlite")]) == 2  # fmt: skip
    assert "no query log" in capsys.readouterr().err


def test_cli_purge(db: Path, capsys):
    assert main(["purge", "--db", str(db), "--older-than", "100000"]) == 0
    assert "removed 0" in capsys.readouterr().out
    assert main(["purge", "--db", str(db), "--all"]) == 0
    assert "removed 7" in capsys.readouterr().out


# What pupils can ask for: each would be a formula (or a DDE payload) in a spreadsheet.
HOSTILE = [
    "=1+2.xvideos.com", "@sum(1+1).example", "+x", "-x", "\tcmd.example", "\rcmd.example",
    '=HYPERLINK("http://evil.example","x")', "<script>alert(1)</script>.example",
]  # fmt: skip


@pytest.fixture
def hostile_report(tmp_path: Path) -> dict:
    store = SqliteQueryStore(tmp_path / "hostile.sqlite")
    store.write([ev(at("2025-03-01"), "students", name, "blocked", "category", "adult")
                 for name in HOSTILE])  # fmt: skip
    report = build_report(store, "2025-03-01", "2025-03-01")
    store.close()
    assert {r["qname"] for r in report["top_blocked"]} == set(HOSTILE)
    return report


def test_csv_cells_cannot_start_a_formula(hostile_report: dict):
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
    assert '"top_blocked","\'=HYPERLINK(""http://evil.example"",""x"")","blocked",1\n' in text
    assert '"total","all","blocked",8\n' in text


def test_html_and_json_reports_show_names_as_data(hostile_report: dict):
    page = to_html(hostile_report)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.example" in page
    assert "=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;)" in page
    # Name cells are marked text for a spreadsheet that opens or pastes the table.
    assert '<td class="t">=1+2.xvideos.com</td>' in page
    assert 'td.t { mso-number-format: "\\@"; }' in page
    assert json.loads(to_json(hostile_report))["top_blocked"] == hostile_report["top_blocked"]
