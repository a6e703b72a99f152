"""Compiled-index snapshots on disk, so a restart with millions of rules does not recompile.

Format (version 2), all integers little-endian:

    magic b"SRMATCH\\0" | u32 version | u64 payload length | u32 crc32 of payload | payload

The payload is a sequence of frames `u32 length | marshal data`: one metadata frame, then
frames of up to CHUNK names (`"\\n"`-joined str, record ids as `array("I")` bytes). Small
frames are the point: loading never runs one long C call (one big `marshal.loads` of 5M names
would hold the GIL for a second), so a loader thread lets the event loop run between frames;
`load_in_pieces` also hands the GIL over between frames. The checksum is a crc32 (twice as
fast as sha256 and releases the GIL too): it guards against truncation and bit rot of a local
cache file, not against an attacker who can write the cache directory.
Anything that does not match byte for byte raises `SnapshotError`; a bad file never becomes
a wrong index.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import struct
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from resolver.fileio import atomic_write
from resolver.lists.model import RuleAction
from resolver.match.index import CategoryIndex, Record

MAGIC = b"SRMATCH\0"
VERSION = 2
CHUNK = 16_384
_HEADER = struct.Struct("<8sIQI")
_FRAME = struct.Struct("<I")

log = logging.getLogger(__name__)

# How many cache files were found corrupt and rebuilt (read by metrics; process-wide).
corrupt_rebuilds = 0


class SnapshotError(Exception):
    """The snapshot file is missing, truncated, corrupt or from another format version."""


def _frames(index: CategoryIndex) -> Iterator[bytes]:
    special = {
        name: tuple((scope, action.value, target, src) for scope, action, target, src in items)
        for name, items in index._special.items()
    }
    meta = {
        "backend": index.backend,
        "sources": index._sources,
        "records": tuple(tuple(record) for record in index._records),
        "special": special,
        "keywords": index._keyword_rules,
        "total": len(index),
        "per_bit": index.rule_counts(),
        "has_tld_rules": index.has_tld_rules,
        "size": index.name_count(),
    }
    yield marshal.dumps(meta)
    names: list[str] = []
    ids = array("I")
    for name, rid in index.iter_names():
        names.append(name)
        ids.append(rid)
        if len(names) == CHUNK:
            yield marshal.dumps(("\n".join(names), ids.tobytes()))
            names.clear()
            ids = array("I")
    if names:
        yield marshal.dumps(("\n".join(names), ids.tobytes()))


def save(index: CategoryIndex, path: Path | str) -> None:
    """Write `index` to `path` atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    crc = 0
    parts: list[bytes] = []
    for frame in _frames(index):
        head = _FRAME.pack(len(frame))
        crc = zlib.crc32(frame, zlib.crc32(head, crc))
        parts += (head, frame)
    length = sum(len(part) for part in parts)
    atomic_write(path, [_HEADER.pack(MAGIC, VERSION, length, crc), *parts])


def _read_frames(file: BinaryIO, length: int, path: Path) -> Iterator[object]:
    """Decode the frames one read at a time (no 100 MB buffer whose free would hold the
    GIL); the checksum is verified after the last frame, before the index is handed out."""
    pos, crc = 0, 0
    while pos < length:
        head = file.read(_FRAME.size)
        if len(head) != _FRAME.size or pos + _FRAME.size > length:
            raise SnapshotError(f"{path}: truncated frame header at byte {pos}")
        (size,) = _FRAME.unpack(head)
        pos += _FRAME.size
        frame = file.read(size)
        if len(frame) != size or pos + size > length:
            raise SnapshotError(f"{path}: truncated frame at byte {pos}")
        crc = zlib.crc32(frame, zlib.crc32(head, crc))
        try:
            yield marshal.loads(frame)
        except (ValueError, EOFError, TypeError) as exc:
            raise SnapshotError(f"{path}: undecodable frame at byte {pos}: {exc}") from exc
        pos += size
    if crc != _expected_crc(file):
        raise SnapshotError(f"{path}: checksum mismatch")


def _expected_crc(file: BinaryIO) -> int:
    file.seek(0)
    return _HEADER.unpack(file.read(_HEADER.size))[3]


def _chunks(
    frames: Iterator[object], records: int, path: Path
) -> Iterator[tuple[list[str], Iterable[int]]]:
    # Record ids come back as shared int objects, not one new int per name.
    shared = list(range(records))
    for frame in frames:
        try:
            text, raw = frame  # type: ignore[misc]
            ids = array("I")
            ids.frombytes(raw)
            names = text.split("\n")
        except (TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"{path}: malformed name frame: {exc}") from exc
        if len(names) != len(ids):
            raise SnapshotError(f"{path}: name frame has {len(names)} names, {len(ids)} ids")
        if ids and max(ids) >= records:
            raise SnapshotError(f"{path}: record id out of range")
        yield names, map(shared.__getitem__, ids)


def load(path: Path | str) -> CategoryIndex:
    """Read a snapshot written by `save`; raise SnapshotError for anything but a good file."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            return _load(file, path)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc}") from exc


def _load(file: BinaryIO, path: Path) -> CategoryIndex:
    head = file.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise SnapshotError(f"{path}: truncated header ({len(head)} bytes)")
    magic, version, length, _ = _HEADER.unpack(head)
    if magic != MAGIC:
        raise SnapshotError(f"{path}: not a match snapshot (bad magic)")
    if version != VERSION:
        raise SnapshotError(f"{path}: snapshot version {version}, expected {VERSION}")
    payload = os.fstat(file.fileno()).st_size - _HEADER.size
    if payload != length:
        raise SnapshotError(f"{path}: payload is {payload} bytes, header says {length}")
    frames = _read_frames(file, length, path)
    meta = next(frames, None)
    if not isinstance(meta, dict):
        raise SnapshotError(f"{path}: missing metadata frame")
    try:
        records = tuple(Record(*record) for record in meta["records"])
        special = {
            name: tuple(
                (scope, RuleAction(action), target, src) for scope, action, target, src in items
            )
            for name, items in meta["special"].items()
        }
        index = CategoryIndex(
            backend=meta["backend"],
            sources=tuple(tuple(source) for source in meta["sources"]),
            records=records,
            names=_chunks(frames, len(records), path),
            special=special,
            keywords=[(text, tuple(srcs)) for text, srcs in meta["keywords"]],
            counts=(meta["total"], dict(meta["per_bit"])),
            has_tld_rules=meta["has_tld_rules"],
            size=meta["size"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"{path}: malformed snapshot: {exc!r}") from exc
    if index.name_count() != meta["size"]:
        raise SnapshotError(f"{path}: {index.name_count()} names, header says {meta['size']}")
    return index


def cache_key(parts: Iterable[bytes | str]) -> str:
    """sha256 over the inputs (list contents, backend, format version...), length-prefixed
    so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256(b"match-snapshot-v%d" % VERSION)
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        digest.update(struct.pack("<Q", len(raw)))
        digest.update(raw)
    return digest.hexdigest()


def load_or_build(cache_dir: Path, key: str, build: Callable[[], CategoryIndex]) -> CategoryIndex:
    """The cached index for `key`, or `build()` saved under it. A corrupt cache file is
    logged, counted in `corrupt_rebuilds`, rebuilt and replaced."""
    global corrupt_rebuilds
    path = Path(cache_dir) / f"{key}.idx"
    if path.exists():
        try:
            return load(path)
        except SnapshotError as exc:
            corrupt_rebuilds += 1
            log.warning("match snapshot cache unusable, rebuilding: %s", exc)
    index = build()
    try:
        save(index, path)
    except OSError as exc:  # a read-only cache folder costs the next start a rebuild, nothing more
        log.warning("match snapshot cache not written: %s", exc)
    return index
