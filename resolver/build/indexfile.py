"""The compiled index's file format: written once by a build, mapped read-only by every process.

Format (version 9), all integers little-endian:

    header: magic b"SRMATCH\0" | u32 version | u64 frames length | u32 crc32 of frames
            | u64 region offset | u64 region length | u32 crc32 of region
    frames: a sequence of `u32 length | marshal data`: one metadata frame, then the name
            table's frames (the tld and spill dicts, or a small index's names)
    region: (a packed table's names) at a page-aligned offset, to the end

Why mapped: the region is the bulk of the index (about 50 bytes per rule). Every worker process
maps the same file read-only, so N workers share one copy in the page cache instead of holding N
copies, and a reload costs a mapping, not a copy. Frames are small (CHUNK names at most), so
building the dicts never runs one long C call that holds the GIL. The checksums guard against
truncation and bit rot of a local file, not against an attacker who can write the cache
directory; verifying the region also faults its pages into the mapping before the swap. Anything
that does not match byte for byte raises `IndexFileError`; a bad file never becomes a wrong index.
"""

from __future__ import annotations

import marshal
import mmap
import os
import struct
import zlib
from array import array
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from resolver.fileio import atomic_write
from resolver.match.index import CategoryIndex, Names
from resolver.match.packed import PackedNames
from resolver.match.tables import DictNames

MAGIC = b"SRMATCH\0"
VERSION = 11
CHUNK = 16_384
# Bytes per checksum or write call over the region. The kernel here (PREEMPT_NONE, HZ=250)
# makes a woken thread wait for a system call on its core to return: large single calls
# delay the event loop of a process sharing the core (see bench/README.md).
IO_CHUNK = 1 << 20
PAGE = mmap.ALLOCATIONGRANULARITY
_HEADER = struct.Struct("<8sIQIQQI")
_FRAME = struct.Struct("<I")


class IndexFileError(Exception):
    """The index file is missing, truncated, corrupt or from another format version."""


def _table_frames(names: Names) -> Iterator[tuple[Any, ...]]:
    if isinstance(names, PackedNames):
        for table, joined, rids in names.frames(CHUNK):
            yield table, joined, array("I", rids).tobytes()
        return
    items = names.items()
    while part := list(islice(items, CHUNK)):
        yield "\n".join(name for name, _ in part), array("I", [rid for _, rid in part]).tobytes()


def _frames(index: CategoryIndex) -> Iterator[bytes]:
    tables = [marshal.dumps(frame) for frame in _table_frames(index.names)]
    meta = index.plain() | {
        "frames": len(tables),
        "packed": index.names.meta() if isinstance(index.names, PackedNames) else None,
    }
    yield marshal.dumps(meta)
    yield from tables


def save(index: CategoryIndex, path: Path | str) -> None:
    """Write `index` to `path` atomically (temp file in the same directory, then rename)."""
    crc = 0
    parts: list[bytes | memoryview[int]] = []
    for frame in _frames(index):
        head = _FRAME.pack(len(frame))
        crc = zlib.crc32(frame, zlib.crc32(head, crc))
        parts += (head, frame)
    framed = sum(len(part) for part in parts)
    region_at = -(-(_HEADER.size + framed) // PAGE) * PAGE
    parts.append(bytes(region_at - _HEADER.size - framed))
    region: memoryview | None = None
    region_crc = 0
    if isinstance(index.names, PackedNames):
        names = index.names
        region = memoryview(names.region)[: names.count * names.size]
        for start in range(0, len(region), IO_CHUNK):
            part = region[start : start + IO_CHUNK]
            region_crc = zlib.crc32(part, region_crc)
            parts.append(part)
    size = 0 if region is None else len(region)
    header = _HEADER.pack(MAGIC, VERSION, framed, crc, region_at, size, region_crc)
    try:
        atomic_write(path, [header, *parts])
    finally:
        del parts
        if region is not None:
            region.release()


class _Reader:
    """Frames from an index file, with a running crc32 and bounds checks."""

    def __init__(self, file: BinaryIO, length: int, path: Path) -> None:
        self.file, self.left, self.path, self.crc = file, length, path, 0

    def _read(self, size: int, what: str) -> bytes:
        data = self.file.read(size) if size <= self.left else b""
        if len(data) != size:
            raise IndexFileError(f"{self.path}: truncated {what}")
        self.left -= size
        self.crc = zlib.crc32(data, self.crc)
        return data

    def frame(self) -> Any:
        (size,) = _FRAME.unpack(self._read(_FRAME.size, "frame header"))
        data = self._read(size, "frame")
        try:
            return marshal.loads(data)
        except (ValueError, EOFError, TypeError) as exc:
            raise IndexFileError(f"{self.path}: undecodable frame: {exc}") from exc


def _map_region(file: BinaryIO, path: Path, offset: int, size: int, crc: int) -> mmap.mmap:
    """The packed region, mapped read-only from the file and checked (the GIL is free during
    each checksum step, which also faults the pages in)."""
    if offset % PAGE or size <= 0:
        raise IndexFileError(f"{path}: region at {offset} ({size} bytes) is not page-aligned")
    try:
        region = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ, offset=offset)
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"{path}: cannot map region: {exc}") from exc
    view = memoryview(region)
    got = 0
    try:
        for start in range(0, size, IO_CHUNK):
            got = zlib.crc32(view[start : start + IO_CHUNK], got)
    finally:
        view.release()
    if got != crc:
        region.close()
        raise IndexFileError(f"{path}: region checksum mismatch")
    return region


def _table(reader: _Reader, meta: dict[str, Any], region: mmap.mmap | None) -> Names:
    frames = [reader.frame() for _ in range(meta["frames"])]
    packed = meta["packed"]
    try:
        if packed is None:
            ids: dict[str, int] = {}
            for text, raw in frames:
                rids = array("I", raw)
                names = text.split("\n")
                if len(names) != len(rids):
                    raise ValueError(f"name frame has {len(names)} names, {len(rids)} ids")
                ids.update(zip(names, rids, strict=True))
            return DictNames(ids)
        if region is None:
            raise ValueError("a packed table without its region")
        chunks = ((table, joined, array("I", raw)) for table, joined, raw in frames)
        return PackedNames.assemble(packed, chunks, region)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise IndexFileError(f"{reader.path}: malformed name table: {exc!r}") from exc


def load(path: Path | str) -> CategoryIndex:
    """Map an index file written by `save`; raise IndexFileError for anything but a good file."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            return _load(file, path)
    except OSError as exc:
        raise IndexFileError(f"{path}: cannot read index file: {exc}") from exc


def _load(file: BinaryIO, path: Path) -> CategoryIndex:
    head = file.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise IndexFileError(f"{path}: truncated header ({len(head)} bytes)")
    magic, version, framed, crc, region_at, size, region_crc = _HEADER.unpack(head)
    if magic != MAGIC:
        raise IndexFileError(f"{path}: not an index file (bad magic)")
    if version != VERSION:
        raise IndexFileError(f"{path}: index file version {version}, expected {VERSION}")
    total = os.fstat(file.fileno()).st_size
    if region_at < _HEADER.size + framed or total != region_at + size:
        raise IndexFileError(f"{path}: {total} bytes, header says {region_at} + {size}")
    reader = _Reader(file, framed, path)
    meta = reader.frame()
    if not isinstance(meta, dict):
        raise IndexFileError(f"{path}: missing metadata frame")
    region = _map_region(file, path, region_at, size, region_crc) if size else None
    try:
        names = _table(reader, meta, region)
        if reader.left or reader.crc != crc:
            raise IndexFileError(f"{path}: checksum mismatch")
        index = CategoryIndex.from_plain(meta, names)
    except (KeyError, TypeError, ValueError) as exc:
        if region is not None:
            region.close()
        raise IndexFileError(f"{path}: malformed index file: {exc!r}") from exc
    except IndexFileError:
        if region is not None:
            region.close()
        raise
    if index.name_count() != meta["keys"]:
        raise IndexFileError(f"{path}: {index.name_count()} names, header says {meta['keys']}")
    return index
