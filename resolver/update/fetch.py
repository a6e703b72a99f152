"""Download one list source to a temporary file: conditional, size-capped, time-limited.

The body streams to disk (never held in memory), so a 100 MB list costs one buffer. The
caller decides what to do with the file; this module only knows HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

CHUNK = 64 * 1024


@dataclass(slots=True)
class Fetched:
    """The outcome of one download attempt."""

    status: str  # "fetched", "not-modified" or "failed"
    size: int = 0
    etag: str | None = None
    last_modified: str | None = None
    error: str = ""


async def fetch_to_file(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    timeout: float,
    on_bytes: Callable[[int], None] | None = None,
) -> Fetched:
    """GET `url` into `dest` (created or truncated); 304 leaves `dest` untouched.

    Failures of every kind (network, HTTP status, size cap, timeout) come back as
    `Fetched(status="failed", error=...)`, never as an exception.
    """
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status == 304:
                return Fetched("not-modified", etag=etag, last_modified=last_modified)
            if response.status != 200:
                return Fetched("failed", error=f"HTTP {response.status} {response.reason or ''}")
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                return Fetched("failed", error=f"too large: {declared} bytes > max {max_bytes}")
            size = 0
            with dest.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        return Fetched("failed", error=f"too large: over max {max_bytes} bytes")
                    out.write(chunk)
                    if on_bytes is not None:
                        on_bytes(size)
            return Fetched(
                "fetched",
                size=size,
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except TimeoutError:
        return Fetched("failed", error=f"timed out after {timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Fetched("failed", error=f"{type(exc).__name__}: {exc}")
