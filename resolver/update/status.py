"""Each list source's state for the dashboard: what `lists update` last did, what is serving.

Why not the file time: a list never fetched has no file, and a list copied by hand has a fresh
time but no fetch behind it. Three records say what really happened, and this module joins them:
the policy's sources (catalogue defaults and the operator's `lists.sources`, as `lists update`
resolves them), the sidecar `lists update` and zone transfers keep beside each copy (last
success, last error), and the serving build's summary of each list (rules, `stale`: served from
its last good copy because the file is gone).

States: `ok`; `never-fetched` (a URL or transfer source with no successful fetch: the core list
serves meanwhile); `failing` (the last attempt failed after the last success: the last good
copy serves); `stale` (the file is gone: served from the build's last good copy); `missing` (an
operator's file that is not there and never served); `bundled` (a curated core list shipped
with the program).
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from resolver.lists.catalogue import CatalogueError, Source, load_catalogue, resolve_sources
from resolver.update.meta import meta_path

MANDATED = "mandated"


def list_status(
    policy: Path, used: Sequence[str], served: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per source of the policy's categories `used` (the serving snapshot's), joined
    with the build's summaries `served` (the snapshot's `sources`). Blocking: file reads."""
    rows: dict[str, dict[str, Any]] = {}
    by_id = {str(s["id"]): s for s in served}
    for source in policy_sources(policy, tuple(sorted({*used, MANDATED}))):
        rows[source.id] = _row(source, by_id.get(source.id))
    for sid, summary in by_id.items():  # served but no longer resolvable (the policy changed)
        if sid not in rows:
            rows[sid] = _served_only(summary)
    return sorted(rows.values(), key=lambda r: (r["category"], not r["core"], r["id"]))


def policy_sources(policy: Path, categories: tuple[str, ...]) -> list[Source]:
    """The sources `lists update` and the build use for these categories (mandated ones
    included); [] when the policy or catalogue cannot be read (the page then shows what
    serves)."""
    try:
        stat = policy.stat()
        section = _sections(str(policy), stat.st_mtime_ns, stat.st_size)
        catalogue = load_catalogue()
        wanted = {c for c in categories if c in catalogue.categories}
        return resolve_sources(catalogue, section, policy.parent, wanted)
    except (OSError, CatalogueError, yaml.YAMLError, ValueError):
        return []


@lru_cache(maxsize=4)
def _sections(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    """The `lists:` section with the mandated sources added (as the build's plan does);
    cached per file version: an ISP's policy can be large."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=loader)  # a safe loader (C if built with libyaml)
    data = data if isinstance(data, dict) else {}
    lists: dict[str, Any] = data["lists"] if isinstance(data.get("lists"), dict) else {}
    mandated: dict[str, Any] = data["mandated"] if isinstance(data.get("mandated"), dict) else {}
    extra = [
        {**s, "category": MANDATED} for s in (mandated.get("sources") or []) if isinstance(s, dict)
    ]
    return dict(lists) | {"sources": [*(lists.get("sources") or []), *extra]}


def _kind(source: Source) -> str:
    if source.core:
        return "bundled"
    if source.transfer is not None:
        return "transfer"
    return "url" if source.url is not None else "file"


def _row(source: Source, summary: Mapping[str, Any] | None) -> dict[str, Any]:
    kind = _kind(source)
    path = Path(source.local_path)
    meta = _sidecar(path) if kind in ("url", "transfer") else {}
    success = _when(meta.get("fetched_at"))
    error_at = _when(meta.get("last_error_at"))
    stale = bool(summary and summary.get("stale"))
    if kind == "bundled":
        state = "bundled"
    elif stale:
        state = "stale"
    elif kind in ("url", "transfer") and success is None:
        state = "never-fetched"
    elif error_at is not None and (success is None or error_at > success):
        state = "failing"
    elif summary is None and not path.is_file():
        state = "missing"
    else:
        state = "ok"
    return {
        "id": source.id,
        "category": source.category,
        "kind": kind,
        "core": source.core,
        "url": source.url,
        "path": str(path),
        "state": state,
        "serving": summary is not None,
        "rules": int(summary["rules"]) if summary is not None else None,
        "stale": stale,
        "last_success": success,
        "last_error": meta.get("last_error"),
        "last_error_at": error_at,
        "fetched_rules": meta.get("entries", meta.get("rules")),
        "serial": meta.get("serial"),
        "file_time": _mtime(path) if kind in ("file", "bundled") else None,
    }


def _served_only(summary: Mapping[str, Any]) -> dict[str, Any]:
    path = Path(str(summary.get("path", "")))
    stale = bool(summary.get("stale"))
    return {
        "id": str(summary["id"]), "category": str(summary["category"]), "kind": "file",
        "core": False, "url": None, "path": str(path), "state": "stale" if stale else "ok",
        "serving": True, "rules": int(summary["rules"]), "stale": stale, "last_success": None,
        "last_error": None, "last_error_at": None, "fetched_rules": None, "serial": None,
        "file_time": _mtime(path),
    }  # fmt: skip


def _sidecar(copy: Path) -> dict[str, Any]:
    """The sidecar as written, even without the copy (a first fetch that failed leaves only
    its error)."""
    try:
        data = json.loads(meta_path(copy).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _when(text: Any) -> float | None:
    """`2026-03-02T09:00:00Z` (UTC, as the sidecars write it) -> Unix time."""
    if not isinstance(text, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
