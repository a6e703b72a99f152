"""Pull one zone into its last good copy: the job the transfer manager runs in a child process.

`python -m resolver.transfer.pull JOB_JSON` loads the stored copy, brings it up to the primary's
version (IXFR from the stored serial, AXFR when there is none), parses the result as RPZ and
replaces the copy only when it is sound: at least one rule, and no fewer than `min_keep_ratio`
of the last good copy's rules (an authority's broken export must not unblock half the mandated
list; an operator who expects the shrink lowers `lists.min_keep_ratio` and reloads). The copy
and its sidecar `<id>.meta.json` are replaced atomically. It prints one JSON line: the outcome.

A child process, because parsing a million transferred records with dnspython costs over a
minute of CPU that would otherwise hold the server's GIL; it runs at idle priority on the CPUs
the server is not pinned to (`resolver.worker.run_idle`), and its memory goes when it exits.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resolver.fileio import atomic_write
from resolver.lists.catalogue import TransferSpec, TsigKey
from resolver.lists.reader import parse_lines
from resolver.transfer.xfr import TransferFailed, keyring, transfer
from resolver.transfer.zone import CompactZone
from resolver.update.runner import meta_path, read_meta

TRANSFER_LIFETIME = 1800.0  # seconds one transfer may take in all (a 10M-record AXFR included)


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
    """Check the new version as RPZ; replace the copy and its sidecar only if it is sound."""
    soa = zone.soa()
    assert soa is not None  # a completed transfer always holds the apex SOA
    size = _Size()
    result = parse_lines(size.count(zone.lines()), "rpz")
    records = size.lines - 1  # the $ORIGIN line aside
    if size.bytes > job.max_bytes or records > job.spec.max_records:
        raise TransferFailed(
            "oversized",
            f"serial {soa.serial} would make the zone {size.bytes} bytes, {records} records "
            f"(limits: lists.max_bytes {job.max_bytes}, max_records {job.spec.max_records})",
        )
    rules = len(result.entries)
    if rules == 0:
        counts = result.reject_counts()
        raise TransferFailed("empty", f"serial {soa.serial} holds no usable rule {counts}")
    last = int(read_meta(job.copy).get("rules", 0))
    if last and rules < job.min_keep_ratio * last:
        raise TransferFailed(
            "shrink",
            f"serial {soa.serial} would shrink the list from {last} to {rules} rules "
            f"(below lists.min_keep_ratio {job.min_keep_ratio:g}); last good copy kept",
        )
    digest = hashlib.sha256()

    def chunks() -> Any:
        for line in zone.lines():
            data = line.encode("ascii")
            digest.update(data)
            yield data

    atomic_write(job.copy, chunks())
    meta = {
        "zone": job.spec.zone,
        "primary": job.spec.primary,
        "serial": int(soa.serial),
        "refresh": int(soa.refresh),
        "retry": int(soa.retry),
        "expire": int(soa.expire),
        "rules": rules,
        "rejects": result.reject_counts(),
        "style": style,
        "sha256": digest.hexdigest(),
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(meta_path(job.copy), json.dumps(meta, indent=2, sort_keys=True).encode())
    return {"status": "updated", "serial": meta["serial"], "rules": rules}


class _Size:
    """Counts the zone text on its way to the parser (an IXFR is small, its result may not be)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0

    def count(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            self.bytes += len(line)
            self.lines += 1
            yield line


if __name__ == "__main__":  # the child process
    print(json.dumps(pull(Job.from_json(sys.argv[1]))))
