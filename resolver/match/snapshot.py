"""Compiled-index snapshots on disk, so a restart with millions of rules does not recompile.

Format (version 8), all integers little-endian:

    magic b"SRMATCH\0" | u32 version | u64 payload length | u32 crc32 of payload | payload

The payload is a sequence of frames `u32 length | marshal data`: one metadata frame, then the
name table's frames, then (for the "suffix" backend) the packed region's raw bytes. Frames are
small (CHUNK names at most): loading never runs one long C call that holds the GIL, so a loader
thread lets the event loop run between frames. The region, the bulk of the file, is read
straight into its final memory with `readinto` and checksummed with `zlib.crc32`; both release
the GIL. The checksum guards against truncation and bit rot of a local cache file, not against
an attacker who can write the cache directory. Anything that does not match byte for byte
raises `SnapshotError`; a bad file never becomes a wrong index.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import mmap
import os
import struct
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from resolver.fileio import atomic_write
from resolver.lists.model import RuleAction
from resolver.match.index import AhoNames, CategoryIndex, DictNames, Names, Record
from resolver.match.packed import PackedNames, new_region

MAGIC = b"SRMATCH\0"
VERSION = 8
CHUNK = 16_384
# Region bytes per read or write call. The kernel here (PREEMPT_NONE, HZ=250) makes a woken
# thread wait for a system call on its core to return, or for the next tick: an 8 MiB copy kept
# the event loop waiting up to 5 ms behind a worker sharing its core (traced with perf).
IO_CHUNK = 1 << 20
_HEADER = struct.Struct("<8sIQI")
_FRAME = struct.Struct("<I")

log = logging.getLogger(__name__)

# How many cache files were found corrupt and rebuilt (read by metrics; process-wide).
corrupt_rebuilds = 0


class SnapshotError(Exception):
    """The snapshot file is missing, truncated, corrupt or from another format version."""


def _table_frames(names: Names) -> Iterator[object]:
    if isinstance(names, PackedNames):
        for table, joined, rids in names.frames(CHUNK):
            yield table, joined, array("I", rids).tobytes()
        return
    items = names.items()
    while part := list(islice(items, CHUNK)):
        yield "\n".join(name for name, _ in part), array("I", [rid for _, rid in part]).tobytes()


def _frames(index: CategoryIndex) -> Iterator[bytes]:
    special = {
        name: tuple((scope, action.value, target, src) for scope, action, target, src in items)
        for name, items in index._special.items()
    }
    tables = [marshal.dumps(frame) for frame in _table_frames(index.names)]
    packed = index.names.meta() if isinstance(index.names, PackedNames) else None
    meta = {
        "backend": index.backend,
        "sources": index._sources,
        "records": tuple(tuple(record) for record in index._records),
        "special": special,
        "keywords": index._keyword_rules,
        "total": len(index),
        "per_bit": index.rule_counts(),
        "has_tld_rules": index.has_tld_rules,
        "keys": index.name_count(),
        "frames": len(tables),
        "packed": packed,
    }
    yield marshal.dumps(meta)
    yield from tables


def save(index: CategoryIndex, path: Path | str) -> None:
    """Write `index` to `path` atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    crc = 0
    parts: list[bytes | memoryview] = []
    for frame in _frames(index):
        head = _FRAME.pack(len(frame))
        crc = zlib.crc32(frame, zlib.crc32(head, crc))
        parts += (head, frame)
    if isinstance(index.names, PackedNames):
        names = index.names
        region = memoryview(names.region)[: names.count * names.size]
        crc = zlib.crc32(region, crc)
        parts += (region[start : start + IO_CHUNK] for start in range(0, len(region), IO_CHUNK))
    length = sum(len(part) for part in parts)
    try:
        atomic_write(path, [_HEADER.pack(MAGIC, VERSION, length, crc), *parts])
    finally:
        if isinstance(index.names, PackedNames):
            del parts
            region.release()


class _Reader:
    """Frames then raw bytes from a snapshot payload, with a running crc32 and bounds checks."""

    def __init__(self, file: BinaryIO, length: int, path: Path) -> None:
        self.file, self.left, self.path, self.crc = file, length, path, 0

    def _read(self, size: int, what: str) -> bytes:
        data = self.file.read(size) if size <= self.left else b""
        if len(data) != size:
            raise SnapshotError(f"{self.path}: truncated {what}")
        self.left -= size
        self.crc = zlib.crc32(data, self.crc)
        return data

    def frame(self) -> object:
        (size,) = _FRAME.unpack(self._read(_FRAME.size, "frame header"))
        data = self._read(size, "frame")
        try:
            return marshal.loads(data)
        except (ValueError, EOFError, TypeError) as exc:
            raise SnapshotError(f"{self.path}: undecodable frame: {exc}") from exc

    def into(self, region: mmap.mmap, size: int) -> None:
        """Read `size` raw bytes into `region`, IO_CHUNK bytes per call (the GIL is free during
        each read and each checksum step)."""
        if size != self.left:
            raise SnapshotError(f"{self.path}: region is {self.left} bytes, expected {size}")
        view = memoryview(region)
        try:
            for start in range(0, size, IO_CHUNK):
                part = view[start : min(size, start + IO_CHUNK)]
                if self.file.readinto(part) != len(part):
                    raise SnapshotError(f"{self.path}: truncated region")
                self.crc = zlib.crc32(part, self.crc)
                part.release()
        finally:
            view.release()
        self.left = 0


def _table(reader: _Reader, meta: dict) -> Names:
    frames = [reader.frame() for _ in range(meta["frames"])]
    packed = meta["packed"]
    try:
        if packed is None:
            ids: dict[str, int] = {}
            for text, raw in frames:  # type: ignore[misc]
                rids = array("I", raw)
                names = text.split("\n")
                if len(names) != len(rids):
                    raise ValueError(f"name frame has {len(names)} names, {len(rids)} ids")
                ids.update(zip(names, rids, strict=True))
            return AhoNames.build(ids) if meta["backend"] == "aho" else DictNames(ids)
        region = new_region(packed["count"] * packed["size"])
        reader.into(region, packed["count"] * packed["size"])
        chunks = ((table, joined, array("I", raw)) for table, joined, raw in frames)  # type: ignore[misc]
        return PackedNames.assemble(packed, chunks, region)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise SnapshotError(f"{reader.path}: malformed name table: {exc!r}") from exc


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
    magic, version, length, crc = _HEADER.unpack(head)
    if magic != MAGIC:
        raise SnapshotError(f"{path}: not a match snapshot (bad magic)")
    if version != VERSION:
        raise SnapshotError(f"{path}: snapshot version {version}, expected {VERSION}")
    payload = os.fstat(file.fileno()).st_size - _HEADER.size
    if payload != length:
        raise SnapshotError(f"{path}: payload is {payload} bytes, header says {length}")
    reader = _Reader(file, length, path)
    meta = reader.frame()
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
        names = _table(reader, meta)
        if reader.left or reader.crc != crc:
            raise SnapshotError(f"{path}: checksum mismatch")
        index = CategoryIndex(
            backend=meta["backend"],
            sources=tuple(tuple(source) for source in meta["sources"]),
            records=records,
            names=names,
            special=special,
            keywords=[(text, tuple(srcs)) for text, srcs in meta["keywords"]],
            counts=(meta["total"], dict(meta["per_bit"])),
            has_tld_rules=meta["has_tld_rules"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"{path}: malformed snapshot: {exc!r}") from exc
    if index.name_count() != meta["keys"]:
        raise SnapshotError(f"{path}: {index.name_count()} names, header says {meta['keys']}")
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
