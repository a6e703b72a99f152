"""`safe-resolver report`, `purge` and `audit`: reports for the authorities, deleting raw
query-log rows, and the audit trail.

A report written to a file (`-o FILE`) gets a SHA-256 manifest beside it (`FILE.sha256`, the
`sha256sum` format) and every report's SHA-256 is appended to the server's audit trail, so a
report handed over can be checked later against the server's own record:
`sha256sum -c FILE.sha256` (the file is intact) and `safe-resolver audit --verify FILE` (this
server made it, for this period, at this time). Why not a signature: a key on a school box is
one more secret to manage and lose; the append-only audit row does the same job for "did the
server produce this", and the manifest needs no tool beyond coreutils.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from resolver.config import ServerConfig, load_config
from resolver.rollup import day_start
from resolver.store.audit import AuditEntry, server_name
from resolver.store.backends import open_query_store
from resolver.store.base import QueryStore, StoreUnavailable
from resolver.store.reports import (
    NotCovered,
    Period,
    build_report,
    coverage_warning,
    parse_period,
    period_between,
    to_csv,
    to_json,
)
from resolver.yamlsource import ConfigError


def _open_log(args: argparse.Namespace, command: str) -> tuple[QueryStore, ServerConfig] | None:
    """The query log (`--db` FILE, else the `querylog` section of `--config`, else the default
    SQLite file) and the configuration; None, with the reason on stderr, when the config is
    unusable or the log is absent."""
    try:
        cfg = load_config(args.config) if args.config else ServerConfig()
    except (OSError, ConfigError) as exc:
        print(f"safe-resolver {command}: cannot read config: {exc}", file=sys.stderr)
        return None
    section = cfg.querylog
    if args.db or section.backend == "sqlite":
        db = Path(args.db) if args.db else section.path
        if not db.exists():
            print(f"safe-resolver {command}: no query log at {db}", file=sys.stderr)
            return None
        return open_query_store("sqlite", path=db), cfg
    return open_query_store(section.backend, dsn=section.dsn), cfg


def _period(args: argparse.Namespace) -> Period:
    if args.period is not None:
        if args.date_from or args.date_to:
            raise ValueError("give --period or --from/--to, not both")
        return parse_period(args.period)
    if not (args.date_from and args.date_to):
        raise ValueError("give --period (2026-H1, 2026, ...) or both --from and --to")
    return period_between(args.date_from, args.date_to)


def report_command(args: argparse.Namespace) -> int:
    found = _open_log(args, "report")
    if found is None:
        return 2
    store, cfg = found
    org = cfg.organisation
    try:
        report = build_report(
            store,
            _period(args),
            profile=args.profile,
            top=args.top,
            organisation={"name": org.name, "address": org.address, "contact": org.contact},
        )
        if args.format == "html":
            from resolver.http.report_html import to_html

            text = to_html(report)
        else:
            text = to_csv(report) if args.format == "csv" else to_json(report)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        recorded = _record(store, report, args.format, digest, args.output)
    except ValueError as exc:
        print(f"safe-resolver report: {exc}", file=sys.stderr)
        return 2
    except NotCovered as exc:
        print(f"safe-resolver report: REFUSED: {exc}", file=sys.stderr)
        return 3
    except StoreUnavailable as exc:
        print(f"safe-resolver report: cannot read the query log: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    warning = coverage_warning(report)
    if warning:
        print(f"safe-resolver report: {warning}", file=sys.stderr)
    if args.output:
        out = Path(args.output)
        out.write_text(text, encoding="utf-8")
        out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n", encoding="utf-8")
        print(f"wrote {out} (sha256 {digest}); check it later with: sha256sum -c "
              f"{out}.sha256 and safe-resolver audit --verify {out}", file=sys.stderr)  # fmt: skip
    else:
        sys.stdout.write(text)
    if not recorded:
        print("safe-resolver report: WARNING: the report's SHA-256 could not be recorded in the "
              "audit trail (no write access to the database?)", file=sys.stderr)  # fmt: skip
    return 0


def _record(
    store: QueryStore, report: dict[str, Any], fmt: str, digest: str, output: str | None
) -> bool:
    """Append the report's SHA-256 to the audit trail; False when the database refuses."""
    what = {"from": report["from"], "to": report["to"], "period": report["period"],
            "profile": report["profile"], "format": fmt,
            "file": Path(output).name if output else None}  # fmt: skip
    entry = AuditEntry(time.time(), "report", result="written", digest=digest,
                       detail=json.dumps(what, ensure_ascii=False, sort_keys=True))  # fmt: skip
    try:
        store.write_audit([entry], server_name())
    except Exception:  # read-only file, database down: the report itself is still good
        return False
    return True


def purge_command(args: argparse.Namespace) -> int:
    if not args.all and args.older_than is not None and args.older_than < 0:
        print("safe-resolver purge: days must be a non-negative integer", file=sys.stderr)
        return 2
    found = _open_log(args, "purge")
    if found is None:
        return 2
    store, cfg = found
    retention_days = cfg.querylog.retention_days
    days = args.older_than if args.older_than is not None else retention_days
    if not args.all and days == 0 and args.older_than is None:
        store.close()
        print(
            "safe-resolver purge: querylog.retention_days is 0 (keep everything):"
            " give --older-than DAYS or --all",
            file=sys.stderr,
        )
        return 2
    # The raw query rows only: never the roll-ups or the audit trail the reports are made of.
    before = None if args.all else time.time() - days * 86400
    try:
        removed = store.purge(before)
    except StoreUnavailable as exc:
        print(f"safe-resolver purge: cannot reach the query log: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"removed {removed} query-log rows from {store.name}")
    return 0


def audit_command(args: argparse.Namespace) -> int:
    try:
        zone = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"safe-resolver audit: unknown time zone {args.tz!r}", file=sys.stderr)
        return 2
    found = _open_log(args, "audit")
    if found is None:
        return 2
    store, _ = found
    try:
        if args.verify:
            return _verify(store, Path(args.verify), zone)
        since = _bound(args.date_from, zone, 0)
        until = _bound(args.date_to, zone, 1)
        rows = store.read_audit(since, until)
    except (ValueError, OSError) as exc:
        print(f"safe-resolver audit: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"safe-resolver audit: cannot read the audit trail: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.json:
        out = [row | {"time": _when(row["ts"], zone)} for row in rows]
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    else:
        print(f"# times in {zone.key}")
        for row in rows:
            print(audit_line(row, zone))
    return 0


def _bound(day: str | None, zone: ZoneInfo, after: int) -> float | None:
    """Local midnight starting `day` (after=0) or ending it (after=1); None for no bound."""
    if day is None:
        return None
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"dates must be YYYY-MM-DD, not {day!r}") from None
    return day_start(parsed + timedelta(days=after), zone)


def _when(ts: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def audit_line(row: dict[str, Any], zone: ZoneInfo) -> str:
    """One audit row as a line an operator reads."""
    head = f"{_when(row['ts'], zone)}  {row['server']}  {row['kind']:<6}"
    gen = f"gen {row['generation']}" if row["generation"] is not None else "-"
    if row["kind"] == "reload":
        tail = f"{gen}  {row['cause']}  {row['result']}"
        return head + "  " + tail + (f"  {row['detail']}" if row["detail"] else "")
    if row["kind"] == "list":
        parts = [gen, f"{row['source']} ({row['category']})", str(row["result"])]
        if row["rules"] is not None:
            parts.append(f"{row['rules']} rules")
        for label, key in (("sha256", "digest"), ("serial", "serial"), ("zone", "zone"),
                           ("file", "path"), ("url", "url"), ("fetched", "fetched_at"),
                           ("modified", "modified_at")):  # fmt: skip
            if row[key] is not None:
                parts.append(f"{label} {row[key]}")
        return head + "  " + "  ".join(parts)
    if row["kind"] == "overlay":  # who approved, paused, revoked...; the entry's id
        return head + f"  {row['result']}  by {row['cause']}  {row['detail']}  id {row['source']}"
    return head + f"  sha256 {row['digest']}  {row['detail']}"


def _verify(store: QueryStore, path: Path, zone: ZoneInfo) -> int:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = store.find_reports(digest)
    if not rows:
        print(f"{path}: sha256 {digest} is NOT in the audit trail of {store.name}")
        return 1
    for row in rows:
        print(f"{path}: matches the report recorded at {_when(row['ts'], zone)} on "
              f"{row['server']}: {row['detail']}")  # fmt: skip
    return 0
