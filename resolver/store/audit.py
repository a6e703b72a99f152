"""The audit trail: what the authorities may ask later, recorded when it happens, never changed.

Rows of one append-only table (`audit_log`, beside the roll-ups, kept `report_retention_days`;
both backends refuse UPDATE, and DELETE of a row younger than a year, by trigger):
  - `reload`: every policy reload, its cause (start, sighup, api, overlay, expiry, transfer;
    merged reloads join theirs with "+"), its result (ok / failed and why) and the generation
    serving after it;
  - `list`: every version of a mandated list that goes into force (source id, file or zone,
    SHA-256 of its bytes or the zone serial, rules, fetched and modified times) with the
    generation and time it went into force; `withdrawn` when a reload drops the list;
  - `report`: every report written, with the SHA-256 of its bytes, so a report handed over
    can be checked against the server's record (`safe-resolver audit --verify FILE`);
  - `overlay`: every unblock approved or rejected, pause made, entry revoked or expired
    (`record_overlay`): who did it, what for which profile, until when.

`record_list_version` is the one way a list version is recorded: the reload records the lists
it put in force through it, and a zone transfer may record the serial it installed through it.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

KINDS = ("reload", "list", "report", "overlay")
KEEP_AT_LEAST_DAYS = 365  # no audit row younger than this can be deleted (database triggers)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row; `ts` is Unix time, the server is added when it is written."""

    ts: float
    kind: str  # one of KINDS
    generation: int | None = None  # reload: serving after it; list: in force from it
    cause: str | None = None  # reload: what asked for it; overlay: who (user, token, expiry...)
    # reload: ok | failed; list: in-force | withdrawn | installed;
    # overlay: approved | rejected | paused | revoked | expired
    result: str | None = None
    detail: str | None = None  # reload: the error; report: period and format; overlay: what
    source: str | None = None  # list: the source id in the policy; overlay: the entry id
    category: str | None = None  # list: its category; overlay: the category paused
    path: str | None = None  # list: the file it was read from
    url: str | None = None  # list: where `lists update` fetched it
    zone: str | None = None  # list: the zone a transfer took it from
    digest: str | None = None  # list or report: SHA-256 of the bytes
    serial: int | None = None  # list: the zone's SOA serial
    rules: int | None = None
    fetched_at: str | None = None  # ISO 8601 UTC, as `lists update` and transfers write it
    modified_at: str | None = None  # ISO 8601 UTC: the file's modification time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(AuditEntry))


class AuditSink(Protocol):
    """Where entries go: the query log's writer (`QueryLog.audit`), which keeps them until
    the database takes them."""

    def audit(self, entry: AuditEntry) -> None: ...


def server_name() -> str:
    """This server's name in audit rows and day marks (an ISP's servers share one database)."""
    return platform.node() or "localhost"


def record_list_version(
    sink: AuditSink,
    *,
    source: str,
    category: str,
    rules: int,
    generation: int | None = None,
    at: float | None = None,
    state: str = "in-force",
    path: str | None = None,
    url: str | None = None,
    zone: str | None = None,
    digest: str | None = None,
    serial: int | None = None,
    fetched_at: str | None = None,
    modified_at: str | None = None,
) -> AuditEntry:
    """Record one version of a list: in force from `generation` at `at` (now by default), or
    `installed` by a transfer before the reload that puts it in force, or `withdrawn`."""
    entry = AuditEntry(
        ts=time.time() if at is None else at,
        kind="list",
        generation=generation,
        result=state,
        source=source,
        category=category,
        path=path,
        url=url,
        zone=zone,
        digest=digest,
        serial=serial,
        rules=rules,
        fetched_at=fetched_at,
        modified_at=modified_at,
    )
    sink.audit(entry)
    return entry


def record_overlay(
    sink: AuditSink,
    action: str,
    who: str,
    detail: str,
    *,
    entry_id: str | None = None,
    category: str | None = None,
    at: float | None = None,
) -> AuditEntry:
    """Record one change of the overlay (`action`: approved, paused, revoked, expired; `detail`
    says what: `OverlayEntry.describe`) or a rejected unblock request, and `who` did it."""
    row = AuditEntry(ts=time.time() if at is None else at, kind="overlay", cause=who,
                     result=action, detail=detail, source=entry_id, category=category)  # fmt: skip
    sink.audit(row)
    return row


def list_facts(source: dict[str, Any]) -> dict[str, Any]:
    """What the files say about a list the snapshot names (`sources` entry): where it was
    fetched from and when (`lists update` and zone transfers keep a `.meta.json` beside the
    copy), its zone and serial, and its modification time. Reads files: call in a thread."""
    from resolver.update.meta import read_meta

    path = Path(source["path"])
    meta = read_meta(path)
    try:
        mtime: float | None = os.stat(path).st_mtime
    except OSError:
        mtime = None
    serial = meta.get("serial")
    return {
        "url": meta.get("url") if isinstance(meta.get("url"), str) else None,
        "zone": meta.get("zone") if isinstance(meta.get("zone"), str) else None,
        "serial": serial if isinstance(serial, int) else None,
        "fetched_at": str(meta["fetched_at"]) if meta.get("fetched_at") else None,
        "modified_at": iso_utc(mtime) if mtime is not None else None,
    }


def iso_utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
