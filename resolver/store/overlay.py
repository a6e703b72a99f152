"""The policy overlay file: what the admin dashboard changes, beside the admin's own policy YAML.

Approving an unblock request or pausing a category must not rewrite the hand-edited policy
(comments, order). These go to a separate overlay file the policy build merges in
(`resolver.policy.schema.apply_overlay`):

    allow:   # approved unblock requests
      - {id: 3f9a2c1b, profile: students, name: example.org, until: "2026-06-01T11:00:00+07:00",
         note: "unblock request #3", by: lan, created: "2026-06-01T10:00:00+07:00", request: 3}
    pause:   # a teacher's pause for a lesson: a category, a service or a name
      - {id: 9c0d1e2f, profile: 10a1, category: video, until: "...", by: lan, created: "..."}

`until` (ISO 8601 with the policy zone's offset) is when the entry stops applying; an allow
without one is permanent, a pause always has one. The build leaves out entries whose `until`
has passed, and the supervisor reloads at the next `until` and then drops expired entries from
the file (`prune_expired`): nothing is ever edited by hand. The `id` is what revoking names.

Every change reads the file, changes the list and replaces the file atomically (temporary file,
fsync, rename): a crash mid-write leaves the previous version and a reload never reads half a
file. Keys an entry has beyond these are kept as they are. Callers run one change at a time.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from resolver.fileio import atomic_write
from resolver.policy.schema import OVERLAY_KINDS, OVERLAY_TARGETS, overlay_until

HEADER = "# Written by safe-resolver (unblock approvals and pauses from the admin dashboard).\n"
MAX_MINUTES = 7 * 24 * 60  # the longest "for N minutes"
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class OverlayEntry:
    """One allow or pause: `target` is the name, category or service (`target_kind`)."""

    id: str
    kind: str  # "allow" (an approved unblock request) or "pause"
    profile: str
    target_kind: str  # "name", "category" or "service"
    target: str
    until: float | None  # Unix time it stops applying; None: permanent
    note: str = ""
    by: str = ""  # who made it (a user name, "token" or "loopback")
    created: float | None = None
    request: int | None = None  # the unblock request it approved

    def expired(self, now: float) -> bool:
        return self.until is not None and self.until <= now

    def as_json(self, tz: ZoneInfo) -> dict[str, Any]:
        """For the API: the fields, plus `until_text` in the policy's zone."""
        out = asdict(self)
        out["until_text"] = iso(self.until, tz) if self.until is not None else None
        return out

    def describe(self, tz: ZoneInfo) -> str:
        """One line for the audit trail: "profile 10a1: pause category video until ..."."""
        until = f"until {iso(self.until, tz)}" if self.until is not None else "permanently"
        text = f"profile {self.profile}: {self.kind} {self.target_kind} {self.target} {until}"
        if self.request is not None:
            text += f" (unblock request #{self.request})"
        return text + (f": {self.note}" if self.note else "")


def iso(ts: float, tz: ZoneInfo) -> str:
    """A time as ISO 8601 in `tz`, to the second (as the file writes it)."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def new_entry(
    kind: str,
    profile: str,
    target_kind: str,
    target: str,
    *,
    until: float | None,
    now: float,
    note: str = "",
    by: str = "",
    request: int | None = None,
) -> OverlayEntry:
    """A new entry with a fresh id; ValueError for a kind/target combination the file refuses."""
    if kind not in OVERLAY_KINDS or target_kind not in OVERLAY_TARGETS:
        raise ValueError(f"no overlay {kind} of a {target_kind}")
    if kind == "allow" and target_kind != "name":
        raise ValueError("an approval allows a name")
    if kind == "pause" and until is None:
        raise ValueError("a pause needs an end")
    if until is not None and until <= now:
        raise ValueError("that time has passed already")
    return OverlayEntry(secrets.token_hex(4), kind, profile, target_kind, target, until, note,
                        by, now, request)  # fmt: skip


def until_from(
    minutes: Any, until: Any, now: datetime, *, permanent_ok: bool = True
) -> float | None:
    """When an entry asked for in the API ends, as Unix time (None: permanent).

    `minutes`: N minutes from `now` (1 hour is 60). `until`: "today" (the end of today in the
    policy's zone: `now` carries it), "permanent", a date (the end of that day) or an ISO 8601
    time (without an offset: wall-clock time in the policy's zone). ValueError if malformed.
    """
    if minutes is not None and until is not None:
        raise ValueError("give minutes or until, not both")
    if minutes is not None:
        if isinstance(minutes, bool) or not isinstance(minutes, int | str):
            raise ValueError("minutes: a whole number")
        text = str(minutes).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_MINUTES:
            raise ValueError(f"minutes: a whole number from 1 to {MAX_MINUTES}")
        return (now + timedelta(minutes=int(text))).timestamp()
    if until is None or until == "permanent":
        if not permanent_ok:
            raise ValueError("a pause needs minutes or until")
        return None
    if not isinstance(until, str):
        raise ValueError("until: today, permanent, YYYY-MM-DD or an ISO 8601 time")
    if until == "today":
        return _day_end(now.date(), now)
    if len(until) == 10:
        try:
            return _day_end(date.fromisoformat(until), now)
        except ValueError:
            raise ValueError(f"until: bad date {until!r}") from None
    tz = now.tzinfo if isinstance(now.tzinfo, ZoneInfo) else ZoneInfo("UTC")
    found = overlay_until(until, tz)
    if not isinstance(found, float):
        raise ValueError(f"until: {found}")
    return found


def _day_end(day: date, now: datetime) -> float:
    """Midnight after `day`, in `now`'s zone."""
    return datetime.combine(day + timedelta(days=1), clock_time(0), now.tzinfo).timestamp()


# -- the file -----------------------------------------------------------------------------------


def read_overlay(path: str | Path, tz: ZoneInfo) -> list[OverlayEntry]:
    """Every entry of the file, expired ones included ([] when there is no file yet). Rows the
    build would leave out (no profile, no target) are left out here too. ValueError when the
    file is not an overlay at all."""
    return [entry for kind, row in _rows(_load(Path(path))) if (entry := _entry(kind, row, tz))]


def add_entry(path: str | Path, entry: OverlayEntry, tz: ZoneInfo) -> OverlayEntry | None:
    """Add `entry`; it replaces an entry of the same kind, profile and target (so approving
    again for longer, or for less, changes the end). Returns the entry it replaced."""
    data = _load(Path(path))
    rows = data.setdefault(entry.kind, [])
    replaced = None
    for row in list(rows):
        old = _entry(entry.kind, row, tz)
        if old is not None and _same_target(old, entry):
            rows.remove(row)
            replaced = old
    rows.append(_row(entry, tz))
    _write(Path(path), data)
    return replaced


def remove_entry(path: str | Path, entry_id: str, tz: ZoneInfo) -> OverlayEntry | None:
    """Remove the entry with this id; the entry, or None when there is none."""
    return _remove(Path(path), tz, lambda entry: entry.id == entry_id)[0] if entry_id else None


def prune_expired(path: str | Path, now: float, tz: ZoneInfo) -> list[OverlayEntry]:
    """Drop the entries that ended at or before `now`; the entries dropped."""
    if not Path(path).exists():
        return []
    return _remove(Path(path), tz, lambda entry: entry.expired(now), every=True)


def _remove(
    path: Path, tz: ZoneInfo, match: Callable[[OverlayEntry], bool], every: bool = False
) -> list[OverlayEntry]:
    data = _load(path)
    gone: list[OverlayEntry] = []
    for kind, row in list(_rows(data)):
        entry = _entry(kind, row, tz)
        if entry is not None and match(entry):
            data[kind].remove(row)
            gone.append(entry)
            if not every:
                break
    if gone:
        _write(path, data)
    return gone


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or any(
        not isinstance(data.get(kind) or [], list) for kind in OVERLAY_KINDS
    ):
        raise ValueError(f"{path}: expected a mapping with 'allow' and 'pause' lists")
    return data


def _rows(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(kind, row) for kind in OVERLAY_KINDS for row in data.get(kind) or []]


def _write(path: Path, data: dict[str, Any]) -> None:
    kept = {kind: data[kind] for kind in OVERLAY_KINDS if data.get(kind)}
    body = yaml.safe_dump(kept, allow_unicode=True, sort_keys=False) if kept else ""
    atomic_write(path, (HEADER + body).encode("utf-8"))


def _entry(kind: str, row: Any, tz: ZoneInfo) -> OverlayEntry | None:
    if not isinstance(row, dict) or not isinstance(row.get("profile"), str):
        return None
    targets = [key for key in OVERLAY_TARGETS if key in row]
    if len(targets) != 1:
        return None
    until = overlay_until(row.get("until"), tz)
    created = overlay_until(row.get("created") or row.get("approved_at"), tz)
    request = row.get("request")
    return OverlayEntry(
        id=str(row.get("id") or _old_id(kind, row)),
        kind=kind,
        profile=row["profile"],
        target_kind=targets[0],
        target=str(row[targets[0]]),
        until=until if isinstance(until, float) else None if until is None else 0.0,
        note=str(row.get("note") or ""),
        by=str(row.get("by") or ""),
        created=created if isinstance(created, float) else None,
        request=request if isinstance(request, int) and not isinstance(request, bool) else None,
    )


def _old_id(kind: str, row: Row) -> str:
    """A stable id for an entry written before entries had one (so it can be revoked)."""
    target = next(str(row[key]) for key in OVERLAY_TARGETS if key in row)
    return hashlib.sha256(f"{kind}|{row['profile']}|{target}".encode()).hexdigest()[:8]


def _row(entry: OverlayEntry, tz: ZoneInfo) -> Row:
    row: Row = {"id": entry.id, "profile": entry.profile, entry.target_kind: entry.target}
    if entry.until is not None:
        row["until"] = iso(entry.until, tz)
    for key in ("note", "by"):
        if getattr(entry, key):
            row[key] = getattr(entry, key)
    if entry.created is not None:
        row["created"] = iso(entry.created, tz)
    if entry.request is not None:
        row["request"] = entry.request
    return row


def _same_target(a: OverlayEntry, b: OverlayEntry) -> bool:
    return (a.profile, a.target_kind, a.target.lower()) == (b.profile, b.target_kind,
                                                            b.target.lower())  # fmt: skip
