"""Last good copies of the lists a policy served, so a list file that goes missing never
empties its category.

Why: a local list deleted by mistake, an unmounted share or a half-finished deployment used
to make the next reload compile the category empty, and with the mandated list that means
blocked names resolve. After every successful build each list it read is kept here (a hard link
where the file system allows, else a copy), with a note of its digest, rules and time. A later
build that finds the list's own file missing or unreadable reads this copy instead and says so
loudly; a list that never served (a fresh install) has no copy and stays a plain warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.fileio import atomic_write

FOLDER = "lastgood"


@dataclass(frozen=True, slots=True)
class LastGood:
    path: Path  # the kept copy
    digest: str
    rules: int
    kept_at: float  # Unix time the copy was kept (the last build that read the list)


def recall(cache_dir: Path, source_id: str) -> LastGood | None:
    """The kept copy of list `source_id`, or None when it never served (or the copy is gone)."""
    folder = cache_dir / FOLDER
    copy, note = folder / f"{source_id}.list", folder / f"{source_id}.json"
    try:
        meta = json.loads(note.read_bytes())
        if not copy.is_file():
            return None
        return LastGood(copy, str(meta["digest"]), int(meta["rules"]), float(meta["kept_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep(cache_dir: Path, source_id: str, path: Path, digest: str, rules: int) -> None:
    """Remember `path` (just compiled, digest `digest`) as list `source_id`'s last good copy."""
    folder = cache_dir / FOLDER
    known = recall(cache_dir, source_id)
    if known is not None and known.digest == digest and known.path.resolve() != path.resolve():
        _note(folder, source_id, digest, rules)  # same bytes: only the time moves on
        return
    if known is not None and known.path.resolve() == path.resolve():
        return  # serving from the copy itself: nothing new to keep
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{source_id}.list"
    tmp = folder / f".{source_id}.list.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(path, tmp)  # free, and `lists update` replaces files whole (a new inode)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, copy)
    _note(folder, source_id, digest, rules)


def _note(folder: Path, source_id: str, digest: str, rules: int) -> None:
    meta: dict[str, Any] = {"digest": digest, "rules": rules, "kept_at": time.time()}
    atomic_write(folder / f"{source_id}.json", json.dumps(meta).encode())
