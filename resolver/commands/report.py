"""`safe-resolver report` and `safe-resolver purge`: query-log reports and deletion."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from resolver.config import QueryLogConfig, load_config
from resolver.store.backends import open_query_store
from resolver.store.base import QueryStore, StoreUnavailable
from resolver.store.reports import build_report, to_csv, to_json
from resolver.yamlsource import ConfigError


def _open_log(args: argparse.Namespace, command: str) -> tuple[QueryStore, int] | None:
    """The query log (`--db` FILE, else the `querylog` section of `--config`, else the default
    SQLite file) and its retention in days; None, with the reason on stderr, when the config is
    unusable or the log is absent."""
    try:
        section = load_config(args.config).querylog if args.config else QueryLogConfig()
    except (OSError, ConfigError) as exc:
        print(f"safe-resolver {command}: cannot read config: {exc}", file=sys.stderr)
        return None
    if args.db or section.backend == "sqlite":
        db = Path(args.db) if args.db else section.path
        if not db.exists():
            print(f"safe-resolver {command}: no query log at {db}", file=sys.stderr)
            return None
        return open_query_store("sqlite", path=db), section.retention_days
    return open_query_store(section.backend, dsn=section.dsn), section.retention_days


def report_command(args: argparse.Namespace) -> int:
    found = _open_log(args, "report")
    if found is None:
        return 2
    store, _ = found
    try:
        report = build_report(store, args.date_from, args.date_to, args.profile)
    except ValueError as exc:
        print(f"safe-resolver report: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"safe-resolver report: cannot read the query log: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.format == "html":
        from resolver.http.report_html import to_html

        text = to_html(report)
    else:
        text = to_csv(report) if args.format == "csv" else to_json(report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def purge_command(args: argparse.Namespace) -> int:
    if not args.all and args.older_than is not None and args.older_than < 0:
        print("safe-resolver purge: days must be a non-negative integer", file=sys.stderr)
        return 2
    found = _open_log(args, "purge")
    if found is None:
        return 2
    store, retention_days = found
    days = args.older_than if args.older_than is not None else retention_days
    if not args.all and days == 0 and args.older_than is None:
        store.close()
        print(
            "safe-resolver purge: querylog.retention_days is 0 (keep everything):"
            " give --older-than DAYS or --all",
            file=sys.stderr,
        )
        return 2
    before = None if args.all else time.time() - days * 86400  # --all: the raw rows only
    try:
        removed = store.purge(before)
    except StoreUnavailable as exc:
        print(f"safe-resolver purge: cannot reach the query log: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"removed {removed} query-log rows from {store.name}")
    return 0
