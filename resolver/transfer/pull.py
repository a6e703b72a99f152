"""Pull one zone into its last good copy: the job the transfer manager runs in a child process.

`python -m resolver.transfer.pull JOB_JSON` loads the stored copy, brings it up to the primary's
version (IXFR from the stored serial, AXFR when there is none), counts its rules (after an IXFR
from the changed names alone) and replaces the copy only when it is sound: at least one rule, no
fewer than `min_keep_ratio` of the last good copy's rules (an authority's broken export must not
unblock half the mandated list; an operator who expects the shrink lowers `lists.min_keep_ratio`
and reloads), within the size limits. The copy and its sidecar `<id>.meta.json` are replaced
atomically. It prints one JSON line: the outcome, with an IXFR's increment for the server.

A child process, because parsing a million transferred records with dnspython costs over a
minute of CPU that would otherwise hold the server's GIL; it runs at idle priority on the CPUs
the server is not pinned to (`resolver.build.child.run_idle`), and its memory goes when it exits.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resolver.fileio import atomic_write
from resolver.lists.catalogue import TransferSpec, TsigKey
from resolver.lists.model import RuleAction
from resolver.lists.reader import parse_lines
from resolver.transfer.xfr import TransferFailed, keyring, transfer
from resolver.transfer.zone import APEX, CompactZone
from resolver.update.meta import meta_path, read_meta

TRANSFER_LIFETIME = 1800.0  # seconds one transfer may take in all (a 10M-record AXFR included)
INCREMENT_LIMIT = 50_000  # changed names an IXFR may carry and still go live as an increment


@dataclass(slots=True)
class Job:
    """Everything the child needs, passed as JSON on its command line (no secret: a path)."""

    source: str
    spec: TransferSpec
    copy: Path
    max_bytes: int
    min_keep_ratio: float

    def to_json(self) -> str:
        data = asdict(self)
        data["copy"] = str(self.copy)
        if self.spec.tsig is not None:
            data["spec"]["tsig"]["secret_file"] = str(self.spec.tsig.secret_file)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        spec = dict(data["spec"])
        tsig = spec.pop("tsig")
        if tsig is not None:
            tsig = TsigKey(tsig["name"], tsig["algorithm"], Path(tsig["secret_file"]))
        return cls(
            source=data["source"],
            spec=TransferSpec(**spec, tsig=tsig),
            copy=Path(data["copy"]),
            max_bytes=int(data["max_bytes"]),
            min_keep_ratio=float(data["min_keep_ratio"]),
        )


def pull(job: Job, *, lifetime: float = TRANSFER_LIFETIME) -> dict[str, Any]:
    """Transfer, check, commit; the outcome as a JSON-ready dict (status updated, unchanged
    or failed, with reason and error when failed)."""
    started = time.monotonic()
    try:
        keys = keyring(job.spec.tsig)
        zone = CompactZone.load(job.copy, job.spec.zone + ".") or CompactZone(job.spec.zone + ".")
        loaded = time.monotonic()
        received = transfer(job.spec, zone, keys, max_bytes=job.max_bytes, lifetime=lifetime)
        transferred = time.monotonic()
        outcome: dict[str, Any] = {
            "status": "unchanged",
            "style": received.style,
            "bytes": received.bytes,
            "records": received.records,
            "load_seconds": round(loaded - started, 3),
            "transfer_seconds": round(transferred - loaded, 3),
        }
        if received.style != "up-to-date":
            outcome.update(_commit(job, zone, received.style))
        outcome["seconds"] = round(time.monotonic() - started, 3)
        return outcome
    except TransferFailed as exc:
        return {"status": "failed", "reason": exc.reason, "error": str(exc)}


def _commit(job: Job, zone: CompactZone, style: str) -> dict[str, Any]:
    """Check the new version; replace the copy and its sidecar only if it is sound."""
    soa = zone.soa()
    assert soa is not None  # a completed transfer always holds the apex SOA
    last = read_meta(job.copy)
    counted = _increment(zone, last) if style == "ixfr" else None
    if counted is None:
        result = parse_lines(zone.lines(), "rpz")
        counted = len(result.entries), result.reject_counts(), None
    rules, rejects, increment = counted
    if rules == 0:
        raise TransferFailed("empty", f"serial {soa.serial} holds no usable rule {rejects}")
    before = int(last.get("rules", 0))
    if before and rules < job.min_keep_ratio * before:
        raise TransferFailed(
            "shrink",
            f"serial {soa.serial} would shrink the list from {before} to {rules} rules "
            f"(below lists.min_keep_ratio {job.min_keep_ratio:g}); last good copy kept "
            "(to accept it: lower lists.min_keep_ratio and reload)",
        )
    size = _Size(job, int(soa.serial))
    atomic_write(job.copy, size.encode(zone.lines()))
    meta = {
        "zone": job.spec.zone,
        "primary": job.spec.primary,
        "serial": int(soa.serial),
        "refresh": int(soa.refresh),
        "retry": int(soa.retry),
        "expire": int(soa.expire),
        "rules": rules,
        "rejects": rejects,
        "style": style,
        "sha256": size.digest.hexdigest(),
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(meta_path(job.copy), json.dumps(meta, indent=2, sort_keys=True).encode())
    return {"status": "updated", "serial": meta["serial"], "rules": rules, "increment": increment}


def _increment(
    zone: CompactZone, last: dict[str, Any]
) -> tuple[int, dict[str, int], dict[str, Any] | None] | None:
    """(rules, rejects, increment) of an IXFR'd zone from the names it changed alone: the
    last good copy's counts, minus the changed triggers' old rules, plus their new ones.
    None when that cannot be done (no counts stored, too many changes): parse it all.

    The increment names every trigger whose rules changed (`removed`: the old rules at these
    names no longer hold) and their rules now (`added`), for the server to put live before
    the full rebuild (`resolver.transfer.overlay`). None when a change removes an exception
    (`rpz-passthru`), which the overlay cannot express."""
    if zone.before is None or not last.get("rules"):
        return None
    triggers = {owner.removeprefix("*.") for owner in zone.before if owner != APEX}
    if len(triggers) > INCREMENT_LIMIT:
        return None
    before = zone.before
    old = parse_lines(_trigger_lines(zone, triggers, lambda o: before.get(o, zone.owners.get(o))))
    new = parse_lines(_trigger_lines(zone, triggers, zone.owners.get))
    rules = int(last["rules"]) - len(old.entries) + len(new.entries)
    rejects = Counter(last.get("rejects") or {})
    rejects.subtract(old.reject_counts())
    rejects.update(new.reject_counts())
    increment = None
    if not any(e.action is RuleAction.ALLOW for e in old.entries):
        increment = {
            "removed": sorted({e.name for e in (*old.entries, *new.entries)}),
            "added": [[e.name, e.scope.value, e.action.value, e.target] for e in new.entries],
        }
    return rules, {k: v for k, v in rejects.items() if v > 0}, increment


def _trigger_lines(
    zone: CompactZone, triggers: set[str], text: Callable[[str], str | None]
) -> Iterator[str]:
    """The zone-file lines of `triggers` (each name and its `*.` wildcard) as `text` gives them."""
    yield f"$ORIGIN {zone.origin.to_text()}\n"
    for trigger in triggers:
        for owner in (trigger, f"*.{trigger}"):
            records = text(owner)
            if records is not None:
                yield from (f"{owner} {line}\n" for line in records.split("\n"))


class _Size:
    """Encodes the zone on its way to disk, hashing it and refusing it past the size limits
    (an IXFR is small; the zone it makes may not be)."""

    def __init__(self, job: Job, serial: int) -> None:
        self.job = job
        self.serial = serial
        self.digest = hashlib.sha256()

    def encode(self, lines: Iterator[str]) -> Iterator[bytes]:
        size = 0
        limit, max_records = self.job.max_bytes, self.job.spec.max_records
        for records, line in enumerate(lines):  # from 0: the $ORIGIN line is not a record
            data = line.encode("ascii")
            size += len(data)
            if size > limit or records > max_records:
                raise TransferFailed(
                    "oversized",
                    f"serial {self.serial} would make the zone over {size} bytes, "
                    f"{records} records (limits: lists.max_bytes {limit}, "
                    f"max_records {max_records})",
                )
            self.digest.update(data)
            yield data


if __name__ == "__main__":  # the child process
    print(json.dumps(pull(Job.from_json(sys.argv[1]))))
