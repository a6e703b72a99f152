"""Replacing a file so that readers see the old bytes or the new ones, never half of each.

Compiled indexes, list copies, their metadata and the policy overlay are all read by a reload
that may run at any moment, and a crash mid-write must leave the previous version in place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write(path: Path | str, chunks: bytes | Iterable[bytes | memoryview[int]]) -> None:
    """Write `chunks` to a temp file beside `path`, fsync, rename it over `path`, fsync the dir."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(chunks, bytes | bytearray):
                out.write(chunks)
            else:
                out.writelines(chunks)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
