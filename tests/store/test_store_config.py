"""The `querylog` config keys for the backend, and `report`/`purge` on a PostgreSQL config."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from resolver.cli import main
from resolver.config import load_config
from resolver.rollup import Batch, DayMark
from resolver.store.events import QueryEvent
from resolver.store.postgresql import PostgresQueryStore
from resolver.yamlsource import ConfigError

DAY = 86400.0


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    ql = load_config(config(tmp_path, "querylog:\n  path: q.sqlite\n")).querylog
    assert (ql.backend, ql.dsn, ql.path) == ("sqlite", None, tmp_path / "q.sqlite")


def test_postgresql_dsn_inline_or_from_a_file(tmp_path: Path) -> None:
    dsn = "host=/run/postgresql dbname=safe user=resolver password=s3cret"
    ql = load_config(
        config(tmp_path, f"querylog:\n  backend: postgresql\n  dsn: '{dsn}'\n")
    ).querylog
    assert (ql.backend, ql.dsn) == ("postgresql", dsn)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "dsn").write_text("postgresql://resolver:s3cret@db.isp.example/safe\n")
    cfg = load_config(
        config(tmp_path, "querylog:\n  backend: postgresql\n  dsn_file: secrets/dsn\n")
    )
    assert cfg.querylog.dsn == "postgresql://resolver:s3cret@db.isp.example/safe"
    assert "s3cret" not in repr(cfg)  # a config dump in a log never shows the password


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backend: postgres", "must be one of sqlite, postgresql"),
        ("backend: postgresql", "backend postgresql needs dsn (or dsn_file)"),
        ("dsn: 'host=db'", "a dsn is only for backend: postgresql"),
        ("backend: postgresql\n  dsn: 'host=db'\n  dsn_file: f", "dsn or dsn_file, not both"),
        ("backend: postgresql\n  dsn_file: missing", "cannot read dsn file"),
        ("backend: postgresql\n  dsn: 'host=db password s3cret'", "not a PostgreSQL connection"),
        ("backend: postgresql\n  dsn: 5432", "must be"),
    ],
)
def test_bad_backend_settings_are_refused_with_their_place(
    tmp_path: Path, text: str, message: str
) -> None:
    shown = problems(config(tmp_path, f"querylog:\n  {text}\n"))
    assert message in shown and "server.yaml:" in shown
    assert "s3cret" not in shown


def test_cli_purge_and_report_on_a_postgresql_config(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    store = PostgresQueryStore(pg_dsn)
    event = QueryEvent(now, "", "p", "x.example", "A", "allowed", "default", None, 0, 1.0, "udp",
                       False)  # fmt: skip
    store.write([event._replace(ts=now - age * DAY) for age in (40, 35, 10, 0)])
    day = time.strftime("%Y-%m-%d", time.gmtime(now + 7 * 3600))  # today in Ho Chi Minh City
    mark = DayMark(now, now, 60.0, "Asia/Ho_Chi_Minh")
    store.write_rollups(Batch({(day, "p", "", "default", "allowed"): 4}, days={day: mark}), "gw")
    store.close()
    path = config(tmp_path, f"querylog:\n  backend: postgresql\n  dsn: '{pg_dsn}'\n")
    assert main(["purge", "--config", str(path)]) == 0  # retention_days: 30 by default
    assert "removed 2 query-log rows from PostgreSQL t" in capsys.readouterr().out
    assert main(["purge", "--config", str(path), "--older-than", "5"]) == 0
    assert "removed 1 " in capsys.readouterr().out
    assert main(["purge", "--config", str(path), "--all"]) == 0
    assert "removed 1 " in capsys.readouterr().out
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM queries").fetchone() == (0,)
    # --all took the raw rows only: the day's roll-ups still report it
    assert main(["report", "--from", day, "--to", day, "--config", str(path)]) == 0
    assert '"queries": 4' in capsys.readouterr().out


def test_cli_on_an_unreachable_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"host={tmp_path} port=5432 dbname=gone user=u password=s3cret"
    path = config(tmp_path, f"querylog:\n  backend: postgresql\n  dsn: '{dsn}'\n")
    assert (
        main(["report", "--from", "2025-01-01", "--to", "2025-01-02", "--config", str(path)]) == 2
    )
    err = capsys.readouterr().err
    assert "cannot read the query log: PostgreSQL gone on" in err and "s3cret" not in err
    assert main(["purge", "--all", "--config", str(path)]) == 2
    assert "cannot reach the query log" in capsys.readouterr().err


def test_cli_purge_with_retention_zero_needs_a_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "q.sqlite"
    path = config(tmp_path, f"querylog:\n  path: {db}\n  retention_days: 0\n")
    assert main(["report", "--from", "2025-01-01", "--to", "2025-01-01", "--db", str(db)]) == 2
    from resolver.store.sqlite import SqliteQueryStore

    SqliteQueryStore(db).close()
    assert main(["purge", "--config", str(path)]) == 2
    assert "keep everything" in capsys.readouterr().err
    assert main(["purge", "--config", str(path), "--older-than", "0"]) == 0


def test_report_retention_and_organisation_keys(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, "querylog: {path: q.sqlite}\n"))
    assert cfg.querylog.report_retention_days == 3 * 365 + 1
    assert cfg.querylog.requests_retention_days == 365
    assert cfg.organisation.name == ""
    cfg = load_config(
        config(
            tmp_path,
            "querylog:\n  report_retention_days: 3650\n  requests_retention_days: 30\n"
            "  content_reports_retention_days: 90\n"
            "organisation:\n  name: ' Trường THCS Nguyễn Du '\n  address: 12 Lê Lợi, Huế\n"
            "  contact: '0234 123 456'\n",
        )
    )
    ql, org = cfg.querylog, cfg.organisation
    assert (ql.report_retention_days, ql.requests_retention_days) == (3650, 30)
    assert ql.content_reports_retention_days == 90
    assert (org.name, org.address, org.contact) == (
        "Trường THCS Nguyễn Du", "12 Lê Lợi, Huế", "0234 123 456",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("querylog:\n  report_retention_days: 30\n", "between 366 and 36500"),
        ("querylog:\n  requests_retention_days: 0\n", "between 1 and 36500"),
        ("organisation:\n  name: 5\n", "must be"),
        ("organisation:\n  phone: '111'\n", "phone"),
        ("organisation:\n  name: " + "x" * 301 + "\n", "at most 300"),
    ],
)
def test_bad_report_keys_are_refused_with_their_place(
    tmp_path: Path, text: str, message: str
) -> None:
    shown = problems(config(tmp_path, text))
    assert message in shown and "server.yaml:" in shown
