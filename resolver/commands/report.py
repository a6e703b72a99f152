"""`safe-resolver report` and `safe-resolver purge`: query-log reports and deletion."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from resolver.store.reports import build_report, to_csv, to_json
from resolver.store.sqlite import SqliteQueryStore

DEFAULT_DB = "var/querylog.sqlite"
DEFAULT_RETENTION_DAYS = 30


def _querylog_config(config: str | None) -> dict[str, Any]:
    """The `querylog:` mapping of the server YAML ({} without --config)."""
    if not config:
        return {}
    with open(config, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    section = data.get("querylog") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def _existing_log(args: argparse.Namespace, command: str) -> tuple[Path, dict[str, Any]] | None:
    """The query-log database (`--db`, else `querylog.path` of `--config`) and that section;
    None, with the reason on stderr, when the config is unreadable or the database is absent."""
    try:
        section = _querylog_config(args.config)
    except (OSError, yaml.YAMLError) as exc:
        print(f"safe-resolver {command}: cannot read config: {exc}", file=sys.stderr)
        return None
    db = Path(args.db or section.get("path") or DEFAULT_DB)
    if not db.exists():
        print(f"safe-resolver {command}: no query log at {db}", file=sys.stderr)
        return None
    return db, section


def report_command(args: argparse.Namespace) -> int:
    found = _existing_log(args, "report")
    if found is None:
        return 2
    db, _ = found
    store = SqliteQueryStore(db)
    try:
        report = build_report(store, args.date_from, args.date_to, args.profile)
    except ValueError as exc:
        print(f"safe-resolver report: {exc}", file=sys.stderr)
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
    found = _existing_log(args, "purge")
    if found is None:
        return 2
    db, section = found
    if args.all:
        before = None
    else:
        days = args.older_than
        if days is None:
            days = section.get("retention_days", DEFAULT_RETENTION_DAYS)
        if not isinstance(days, int) or days < 0:
            print("safe-resolver purge: days must be a non-negative integer", file=sys.stderr)
            return 2
        before = time.time() - days * 86400
    store = SqliteQueryStore(db)
    try:
        removed = store.purge(before)
    finally:
        store.close()
    print(f"removed {removed} query-log rows from {db}")
    return 0
