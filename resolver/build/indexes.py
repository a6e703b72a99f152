"""The index cache: compiled list indexes on disk, keyed by the bytes of the lists they hold.

A restart, a policy-only change (profiles, schedules, approved unblocks) or a second build of the
same lists finds the index already compiled and parses nothing. Index files are never changed in
place (atomic rename), so a process that maps one keeps a consistent view while a newer one
replaces it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.build import indexfile
from resolver.build.indexfile import IndexFileError
from resolver.build.listfile import read_list
from resolver.fileio import atomic_write
from resolver.lists.catalogue import Source
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex
from resolver.match.tables import DictNames
from resolver.policy.compile import mandated_entries
from resolver.policy.schema import MANDATED

log = logging.getLogger(__name__)
KEY_VERSION = b"policy-index-v4"


@dataclass(frozen=True, slots=True)
class ListInput:
    """One list the index is built from: the source, the file actually read (its own file, or
    the last good copy of a missing one) and a digest of its bytes."""

    source: Source
    path: Path
    digest: str
    stale: bool = False  # the list's own file is missing: `path` is its last good copy


@dataclass(frozen=True, slots=True)
class BuiltIndex:
    index: CategoryIndex
    path: Path  # the cache file it lives in (mapped by serving processes)
    summaries: list[dict[str, Any]]  # per list: category, id, path, format, rules, rejects...
    compiled: bool  # False: found in the cache


def digest(path: Path) -> str:
    """sha256 of a file's bytes (raises OSError when it cannot be read)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(parts: Iterable[bytes | str]) -> str:
    """sha256 over the inputs (list contents, category bits, format versions...), length-prefixed
    so that ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256(KEY_VERSION + b"|%d" % indexfile.VERSION)
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        h.update(struct.pack("<Q", len(raw)))
        h.update(raw)
    return h.hexdigest()


def cached_index(
    cache_dir: Path, bits: dict[str, int], lists: list[ListInput], *, required: bool = True
) -> BuiltIndex:
    """One index over `lists` (every rule under its category's bit) and a summary per list.

    Keyed on the lists' bytes: when the same bytes were compiled before, neither is rebuilt
    and no list is parsed again; the summaries come from a sidecar beside the index file.
    With `required` False (an admin's `check` on a folder it cannot write), a cache that
    cannot be written costs only the next run a re-parse.
    """
    parts = [repr(sorted(bits.items()))]
    parts += [f"{item.source.category}|{item.source.id}|{item.source.format}|{item.digest}"
              for item in lists]  # fmt: skip
    key = cache_key(parts)
    path = cache_dir / f"{key}.idx"
    sidecar = cache_dir / f"{key}.lists.json"
    summaries: list[dict[str, Any]] = []

    def build() -> CategoryIndex:
        builder = IndexBuilder()
        for item in lists:
            result = read_list(item.path, item.source.format)
            summaries.append(_summary(item, result.format, result))
            entries = result.entries
            if item.source.category == MANDATED:
                entries = mandated_entries(entries)
            builder.add(bits[item.source.category], entries, str(item.source.local_path))
            if result.keywords:
                builder.add_keywords(
                    bits[item.source.category], result.keywords, str(item.source.local_path)
                )
        return builder.build()

    index, compiled = _load_or_build(path, build, required)
    if compiled:
        _write(sidecar, json.dumps(summaries).encode(), required)
    else:
        try:
            summaries = json.loads(sidecar.read_bytes())
        except (OSError, ValueError):
            summaries = [_summary(item, *_parse(item)) for item in lists]
    for item, summary in zip(lists, summaries, strict=True):
        summary["stale"] = item.stale
        summary["digest"] = item.digest  # the audit trail names the version in force by it
    return BuiltIndex(index, path, summaries, compiled)


def _parse(item: ListInput) -> tuple[str, Any]:
    result = read_list(item.path, item.source.format)
    return result.format, result


def _summary(item: ListInput, fmt: str, result: Any) -> dict[str, Any]:
    return {
        "category": item.source.category,
        "id": item.source.id,
        "path": str(item.source.local_path),
        "format": fmt,
        "rules": len(result.entries) + len(result.keywords),
        "rejects": len(result.rejects),
        "first_reject_line": result.rejects[0].line if result.rejects else 0,
        "reject_counts": result.reject_counts(),
        "stale": item.stale,
    }


def save_index(cache_dir: Path, index: CategoryIndex) -> Path:
    """Write a small index (the profiles' own rules, rebuilt by every build) under a key of
    its contents, once."""
    if not isinstance(index.names, DictNames):
        raise ValueError("the profiles' own rules are a small index")
    names = sorted(index.names.items())
    path = cache_dir / f"{cache_key(['own', repr(index.plain()), repr(names)])}.idx"
    if not path.exists():
        indexfile.save(index, path)
    return path


def _load_or_build(
    path: Path, build: Callable[[], CategoryIndex], required: bool
) -> tuple[CategoryIndex, bool]:
    """(the cached index at `path`, False), or (`build()` saved there, True). A corrupt cache
    file is logged, rebuilt and replaced."""
    if path.exists():
        try:
            return indexfile.load(path), False
        except IndexFileError as exc:
            log.warning("index cache file unusable, rebuilding: %s", exc)
    index = build()
    try:
        indexfile.save(index, path)
    except OSError as exc:
        if required:
            raise
        log.warning("index cache not written: %s", exc)
    return index, True


def _write(path: Path, data: bytes, required: bool) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        if required:
            raise
        log.warning("index cache not written: %s", exc)
