"""Taking the policy from a bundle (`bundle:` in the server config): the supervisor polls the
policy host, verifies what it gets, and hands the unpacked policy to its usual reload.

Every `interval` seconds one conditional GET (If-None-Match / If-Modified-Since, so an
unchanged bundle costs a 304). A new file is verified and unpacked beside the others
(`resolver.build.bundle`), then built and swapped in by `Supervisor.reload` with every check a
local edit gets; whatever fails, the serving policy stays. A refused bundle is counted and
logged once: its ETag is sent back with the next polls, and the same bytes again are not
verified again. A bundle whose build fails stays the wanted one (a SIGHUP or
`POST /api/v1/reload?accept_shrink=1` tries it again), like a local policy file with a mistake.

`state.json` in `bundle.dir` remembers the bundle serving and the newest verified one, so a
restart starts from the newest it can build (fetching first when the policy host answers) and
needs no policy host to come back up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from resolver.build.bundle import BundleError, Unpacked, file_sha256, verify_and_unpack
from resolver.config import BundleConfig
from resolver.fileio import atomic_write
from resolver.logs import Throttled
from resolver.stats import Stats
from resolver.update.fetch import fetch_to_file

log = logging.getLogger("resolver.bundle")
STATE = "state.json"
VERSIONS = "versions"
SHARED_CACHE = "index-cache"  # one index cache (and last good copies) for every bundle
FIRST_FETCH_TIMEOUT = 30.0  # seconds a start waits for the policy host before using what it has

Apply = Callable[[Path], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Record:
    """A verified, unpacked bundle."""

    sha256: str
    version: str
    policy: str  # the policy file inside bundle.dir
    etag: str = ""
    last_modified: str = ""


class BundlePoller:
    def __init__(self, cfg: BundleConfig, stats: Stats) -> None:
        self.cfg = cfg
        self.stats = stats
        self.apply: Apply | None = None  # the supervisor's reload with a new policy file
        self.applied: Record | None = None  # serving now
        self.latest: Record | None = None  # newest verified (the one wanted)
        self.refused_sha = ""  # the last bundle refused, so the same bytes are not tried again
        self.refused_etag = ""
        # Why the last poll failed (cleared by the next that reaches the host), and why the
        # bundle the host publishes is not serving (kept until another bundle comes or serves).
        self.fetch_error = ""
        self.refusal = ""
        self._log = Throttled(log)
        self._task: asyncio.Task[None] | None = None
        self._load_state()

    # -- state ---------------------------------------------------------------------------------

    def _load_state(self) -> None:
        try:
            raw = json.loads((self.cfg.dir / STATE).read_bytes())
            self.applied = _record(raw.get("applied"))
            self.latest = _record(raw.get("latest")) or self.applied
        except (OSError, ValueError, AttributeError):
            return

    def _save_state(self) -> None:
        state = {
            "applied": asdict(self.applied) if self.applied else None,
            "latest": asdict(self.latest) if self.latest else None,
        }
        try:
            atomic_write(self.cfg.dir / STATE, json.dumps(state, indent=1).encode())
        except OSError as exc:  # the bundles serve on; a restart may start from an older one
            self._log.warning("policy bundle: cannot save %s: %s", STATE, exc)

    @property
    def last_error(self) -> str:
        return self.fetch_error or self.refusal

    def candidates(self) -> list[Path]:
        """Policy files to start with, best first: the newest verified bundle, then the one
        that served last."""
        out: list[Path] = []
        for record in (self.latest, self.applied):
            if record is not None and Path(record.policy).is_file():
                path = Path(record.policy)
                if path not in out:
                    out.append(path)
        return out

    def served(self, policy: Path) -> None:
        """The supervisor has put `policy` live: note which bundle serves, drop the others."""
        record = next(
            (r for r in (self.latest, self.applied) if r and Path(r.policy) == policy), None
        )
        if record is None:
            return
        if self.applied is None or record.sha256 != self.applied.sha256:
            self.applied = record
            self.refusal = ""
            self.stats.bundle_applied = time.time()
            log.warning("policy bundle serving version=%s sha256=%s", record.version, record.sha256)
        self.stats.bundle_sha256, self.stats.bundle_version = record.sha256, record.version
        self._save_state()
        self._prune()

    def _prune(self) -> None:
        """Remove unpacked bundles other than the serving and the wanted one."""
        keep = {Path(r.policy).parent.name for r in (self.applied, self.latest) if r}
        versions = self.cfg.dir / VERSIONS
        with contextlib.suppress(OSError):
            for folder in versions.iterdir():
                if folder.name not in keep:
                    shutil.rmtree(folder, ignore_errors=True)

    # -- polling -------------------------------------------------------------------------------

    def start(self, apply: Apply) -> None:
        self.apply = apply
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # A little earlier than the interval at random, so many resolvers started together
            # do not poll in step, and a change still reaches each within one interval.
            await asyncio.sleep(self.cfg.interval * random.uniform(0.9, 1.0))
            try:
                await self.poll()
            except Exception:  # a bug must cost one poll, never the polling
                log.exception("policy bundle poll failed")

    async def fetch_first(self) -> None:
        """At start: fetch and verify once (briefly), so a restart serves the newest bundle."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(FIRST_FETCH_TIMEOUT, self.cfg.timeout)):
                await self._check()

    async def poll(self) -> None:
        """One poll: fetch, verify, unpack and apply a new bundle; never raises."""
        new = await self._check()
        if new is None or self.apply is None:
            return
        result = await self.apply(Path(new.policy))
        if not result.get("ok"):
            self.stats.bundle_refused["policy"] += 1
            self.refusal = f"version {new.version}: {result.get('error')}"

    async def _check(self) -> Record | None:
        """Fetch the bundle; the new verified Record, or None (unchanged, refused, failed)."""
        cfg = self.cfg
        try:
            cfg.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.stats.bundle_checks["failed"] += 1
            self.fetch_error = f"cannot use {cfg.dir}: {exc.strerror or exc}"
            self._log.warning("policy bundle: %s", self.fetch_error)
            return None
        download = cfg.dir / f".download-{secrets.token_hex(4)}"
        latest = self.latest
        etags = [e for e in (latest.etag if latest else "", self.refused_etag) if e]
        try:
            async with aiohttp.ClientSession() as session:
                fetched = await fetch_to_file(
                    session, cfg.url, download, etag=", ".join(etags) or None,
                    last_modified=(latest.last_modified or None) if latest else None,
                    max_bytes=cfg.max_bytes, timeout=cfg.timeout,
                )  # fmt: skip
            if fetched.status == "failed":
                self.stats.bundle_checks["failed"] += 1
                self.fetch_error = f"cannot fetch {cfg.url}: {fetched.error}"
                self._log.warning("policy bundle: %s", self.fetch_error)
                return None
            self.stats.bundle_checked = time.time()
            self.fetch_error = ""
            if fetched.status == "not-modified":
                self.stats.bundle_checks["unchanged"] += 1
                return None
            return await self._verify(download, fetched.etag or "", fetched.last_modified or "")
        finally:
            download.unlink(missing_ok=True)

    async def _verify(self, download: Path, etag: str, last_modified: str) -> Record | None:
        cfg = self.cfg
        sha = await asyncio.to_thread(file_sha256, download)
        latest = self.latest
        if latest is not None and sha == latest.sha256:  # the same bytes (a server without ETags)
            self.latest = replace(latest, etag=etag, last_modified=last_modified)
            if self.applied is not None and self.applied.sha256 == sha:
                self.applied = self.latest
            self._save_state()
            self.stats.bundle_checks["unchanged"] += 1
            return None
        if sha == self.refused_sha:  # refused already: counted and logged then
            self.refused_etag = etag
            self.stats.bundle_checks["unchanged"] += 1
            return None
        try:
            unpacked: Unpacked = await asyncio.to_thread(
                verify_and_unpack, download, cfg.dir / VERSIONS, cfg.dir / SHARED_CACHE,
                sha256=cfg.sha256, public_key=cfg.public_key, max_bytes=cfg.max_bytes,
            )  # fmt: skip
        except BundleError as exc:
            self.refused_sha, self.refused_etag = sha, etag
            self.stats.bundle_refused[exc.reason] += 1
            self.refusal = f"bundle {sha[:16]} refused ({exc.reason}): {exc}"
            self._log.warning("policy bundle: %s; the serving policy stays", self.refusal)
            return None
        except OSError as exc:
            self.stats.bundle_checks["failed"] += 1
            self.fetch_error = f"cannot unpack the bundle: {exc}"
            self._log.warning("policy bundle: %s", self.fetch_error)
            return None
        self.stats.bundle_checks["new"] += 1
        self.refusal = ""
        self.latest = Record(sha, unpacked.version, str(unpacked.policy), etag, last_modified)
        self._save_state()
        log.warning("policy bundle fetched version=%s sha256=%s", unpacked.version, sha)
        return self.latest

    def status(self) -> dict[str, Any]:
        """What `/api/v1/status` shows under "bundle"."""
        applied, latest = self.applied, self.latest
        return {
            "url": self.cfg.url,
            "version": applied.version if applied else None,
            "sha256": applied.sha256 if applied else None,
            "applied": self.stats.bundle_applied or None,
            "pending": (
                {"version": latest.version, "sha256": latest.sha256}
                if latest and (applied is None or latest.sha256 != applied.sha256)
                else None
            ),
            "last_check": self.stats.bundle_checked or None,
            "last_error": self.last_error or None,
            "refused": dict(self.stats.bundle_refused),
        }


def _record(raw: Any) -> Record | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Record(**raw)
    except TypeError:
        return None
