"""`lists update`: fetch every URL source, keep the last good copy unless the new one is sound.

A new copy replaces the old only when it downloaded completely, parses to at least one
rule, is not truncated or corrupt, and has not shrunk below `min_keep_ratio` of the last
good copy's rule count (a half-empty mirror must not silently unblock half a category).
The replace is atomic (temp file in the same folder, fsync, `os.replace`), and beside each
copy `{id}.meta.json` keeps etag, last_modified, sha256, entries, fetched_at and url, and
after a failed update last_error and last_error_at (kept after later successes: "last error").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from resolver.build.listfile import read_list
from resolver.fileio import atomic_write, fsync_dir
from resolver.lists.catalogue import ListsSettings, Source
from resolver.update.fetch import fetch_to_file
from resolver.update.meta import meta_path, read_meta

FETCH_TIMEOUT = 300.0  # seconds for one whole download
_BROKEN = frozenset({"truncated-file", "corrupt-file", "unreadable-file"})


@dataclass(slots=True)
class Outcome:
    """What happened to one source."""

    source: Source
    status: str  # "updated", "unchanged", "kept" (failed, last good copy kept), "local"
    ok: bool
    entries: int = 0
    size: int = 0
    message: str = ""


class Progress(Protocol):
    def start(self, source: Source, index: int, total: int) -> None: ...
    def advance(self, size: int) -> None: ...
    def done(self, outcome: Outcome) -> None: ...


async def update_sources(
    sources: list[Source],
    settings: ListsSettings,
    progress: Progress,
    *,
    timeout: float = FETCH_TIMEOUT,
) -> list[Outcome]:
    """Update every URL source and check every operator file; core lists are bundled."""
    todo = [s for s in sources if not s.core]
    settings.dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession() as session:
        for index, source in enumerate(todo, 1):
            progress.start(source, index, len(todo))
            if source.url is None:
                outcome = await asyncio.to_thread(_check_local, source)
            else:
                outcome = await _update_one(session, source, settings, progress, timeout)
            progress.done(outcome)
            outcomes.append(outcome)
    return outcomes


def _check_local(source: Source) -> Outcome:
    if not source.local_path.is_file():
        return Outcome(source, "local", False, message=f"file not found: {source.local_path}")
    result = read_list(source.local_path, source.format)
    entries = len(result.entries) + len(result.keywords)
    rejects = len(result.rejects)
    ok = entries > 0 and not any(r.reason in _BROKEN for r in result.rejects)
    message = f"{rejects} rejected lines" if rejects else ""
    if not ok:
        message = f"unusable: {entries} rules, {result.reject_counts()}"
    return Outcome(source, "local", ok, entries, source.local_path.stat().st_size, message)


async def _update_one(
    session: aiohttp.ClientSession,
    source: Source,
    settings: ListsSettings,
    progress: Progress,
    timeout: float,
) -> Outcome:
    copy = source.local_path
    meta = read_meta(copy)
    part = copy.with_name(f".{copy.name}.part")
    try:
        fetched = await fetch_to_file(
            session,
            str(source.url),
            part,
            etag=meta.get("etag"),
            last_modified=meta.get("last_modified"),
            max_bytes=settings.max_bytes,
            timeout=timeout,
            on_bytes=progress.advance,
        )
        if fetched.status == "not-modified":
            meta["fetched_at"] = _now()
            _write_json(meta_path(copy), meta)
            return Outcome(source, "unchanged", True, int(meta.get("entries", 0)))
        if fetched.status == "failed":
            return _kept(source, meta, f"fetch failed: {fetched.error}")
        result = await asyncio.to_thread(read_list, part, source.format)
        entries = len(result.entries) + len(result.keywords)
        broken = [r for r in result.rejects if r.reason in _BROKEN]
        if broken:
            return _kept(source, meta, f"{broken[0].reason}: {broken[0].text}")
        if entries == 0:
            return _kept(source, meta, f"new copy parses to no rules {result.reject_counts()}")
        last = int(meta.get("entries", 0))
        if last and entries < settings.min_keep_ratio * last:
            return _kept(
                source,
                meta,
                f"new copy shrank from {last} to {entries} rules "
                f"(below min_keep_ratio {settings.min_keep_ratio:g})",
            )
        digest = await asyncio.to_thread(_sha256, part)
        _commit(part, copy)
        _write_json(
            meta_path(copy),
            {
                "url": source.url,
                "etag": fetched.etag,
                "last_modified": fetched.last_modified,
                "sha256": digest,
                "entries": entries,
                "size": fetched.size,
                "fetched_at": _now(),
                "format": result.format,
                "rejects": result.reject_counts(),
            }
            | {key: meta[key] for key in ("last_error", "last_error_at") if key in meta},
        )
        return Outcome(source, "updated", True, entries, fetched.size)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def _kept(source: Source, meta: dict[str, Any], why: str) -> Outcome:
    """A failed update: the last good copy stays, and its sidecar records the error (the
    dashboard's list status shows the last success and the last error, each with its time)."""
    have = "last good copy kept" if source.local_path.is_file() else "no copy yet"
    message = f"{why}; {have}"
    with contextlib.suppress(OSError):  # a read-only folder must not hide the outcome itself
        _write_json(
            meta_path(source.local_path),
            meta | {"url": source.url, "last_error": message, "last_error_at": _now()},
        )
    return Outcome(source, "kept", False, int(meta.get("entries", 0)), message=message)


def _commit(part: Path, copy: Path) -> None:
    """fsync the new file, rename it over the old one, fsync the folder."""
    with part.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part, copy)
    fsync_dir(copy.parent)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
