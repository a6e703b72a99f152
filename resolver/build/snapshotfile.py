"""The finished policy snapshot on disk: one checksummed file per build that every serving
process maps, never compiles.

Format (version 1): magic b"SRPOLICY" | u32 version | u64 payload length | sha256 of payload
(32 bytes) | payload. The payload is marshal data: the snapshot in plain form
(`resolver.policy.plain`) and the names of the index files it stands on, which live beside it in
the index cache (content-addressed, never changed in place). The file is named by the sha256 of
its payload, so the same build result is one file however often it is made.

A build writes it; the supervisor and each worker call `map_snapshot`, which checks both
checksums (the snapshot's and each index region's) and maps the indexes read-only: N workers
share one copy of the lists in the page cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import struct
import time
from pathlib import Path
from typing import Any

from resolver.build import indexfile
from resolver.build.indexfile import IndexFileError
from resolver.fileio import atomic_write
from resolver.match.index import CategoryIndex
from resolver.policy.plain import snapshot_from_plain, snapshot_to_plain
from resolver.policy.snapshot import PolicySnapshot

MAGIC = b"SRPOLICY"
VERSION = 1
SUFFIX = ".snap"
KEEP = 8  # snapshot files kept in the cache (the newest); older ones are removed
STALE_AFTER = 600.0  # seconds an unreferenced index file is kept (a build may be writing it)
_HEADER = struct.Struct("<8sIQ32s")


class SnapshotFileError(Exception):
    """The snapshot file, or an index file it names, is missing, truncated or corrupt."""


def write_snapshot(snap: PolicySnapshot, folder: Path, indexes: dict[str, Path | None]) -> Path:
    """Write `snap` (whose indexes are saved at `indexes`: index, mandated, own) into `folder`;
    returns its path."""
    names = {role: None if path is None else path.name for role, path in indexes.items()}
    # Version 2: no back-references, whose use depends on reference counts, so the same
    # snapshot always gives the same bytes (and the same file name).
    payload = marshal.dumps({"plain": snapshot_to_plain(snap), "indexes": names}, 2)
    digest = hashlib.sha256(payload).digest()
    path = folder / f"{digest.hex()}{SUFFIX}"
    if path.exists():
        path.touch()  # the newest build again: keep it from `prune`
    else:
        atomic_write(path, [_HEADER.pack(MAGIC, VERSION, len(payload), digest), payload])
    return path


def map_snapshot(path: Path | str, generation: int = 0) -> PolicySnapshot:
    """The snapshot at `path`, its indexes mapped read-only; SnapshotFileError on anything
    that is not exactly what a build wrote."""
    path = Path(path)
    data = _read(path)
    try:
        indexes = {role: _index(path.parent, name) for role, name in data["indexes"].items()}
        index = indexes.get("index")
        if index is None:
            raise SnapshotFileError(f"{path}: no category index")
        return snapshot_from_plain(
            data["plain"],
            index=index,
            mandated=indexes.get("mandated"),
            own=indexes.get("own"),
            generation=generation,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotFileError(f"{path}: malformed snapshot: {exc!r}") from exc


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SnapshotFileError(f"{path}: cannot read snapshot: {exc}") from exc
    if len(raw) < _HEADER.size:
        raise SnapshotFileError(f"{path}: truncated header")
    magic, version, length, digest = _HEADER.unpack_from(raw)
    payload = raw[_HEADER.size :]
    if magic != MAGIC:
        raise SnapshotFileError(f"{path}: not a policy snapshot (bad magic)")
    if version != VERSION:
        raise SnapshotFileError(f"{path}: snapshot version {version}, expected {VERSION}")
    if len(payload) != length or hashlib.sha256(payload).digest() != digest:
        raise SnapshotFileError(f"{path}: checksum mismatch")
    try:
        data = marshal.loads(payload)
    except (ValueError, EOFError, TypeError) as exc:
        raise SnapshotFileError(f"{path}: undecodable payload: {exc}") from exc
    if not isinstance(data, dict):
        raise SnapshotFileError(f"{path}: malformed payload")
    return data


def _index(folder: Path, name: str | None) -> CategoryIndex | None:
    if name is None:
        return None
    if "/" in name or not name.endswith(".idx"):
        raise SnapshotFileError(f"{folder}: bad index file name {name!r}")
    try:
        return indexfile.load(folder / name)
    except IndexFileError as exc:
        raise SnapshotFileError(str(exc)) from exc


def referenced(path: Path) -> set[str]:
    """The index file names a snapshot file stands on (empty if it cannot be read)."""
    try:
        return {name for name in _read(path)["indexes"].values() if name}
    except (SnapshotFileError, KeyError, AttributeError):
        return set()


def prune(folder: Path, keep: Path) -> None:
    """Remove all but the KEEP newest snapshot files (never `keep`) and the index files none
    of those stands on. A process that maps a removed file keeps its mapping."""
    snaps = sorted(folder.glob(f"*{SUFFIX}"), key=_mtime, reverse=True)
    kept = snaps[:KEEP] + ([keep] if keep not in snaps[:KEEP] else [])
    for old in snaps[KEEP:]:
        if old != keep:
            with contextlib.suppress(OSError):
                old.unlink()
    live = set().union(*(referenced(p) for p in kept))
    now = time.time()
    for index in folder.glob("*.idx"):
        if index.name not in live and now - _mtime(index) > STALE_AFTER:
            with contextlib.suppress(OSError):
                index.unlink()
                index.with_suffix(".lists.json").unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
