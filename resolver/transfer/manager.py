"""Keeping the zone-transfer list sources current: at start, on NOTIFY, on the zone's SOA timers.

One task per source. A round asks the primary for its SOA serial over TCP (signed when a key is
configured); only a newer serial starts a transfer, which runs in a child process
(`resolver.transfer.pull`) that replaces the last good copy when the new version is sound. A new
version is recorded for audit and triggers the server's reload, which rebuilds the list's index
from the copy. A failure of any kind keeps the last good copy serving; it is counted by reason
and logged once (again only when the error changes). NOTIFYs that arrive during a round merge
into one more round after it.

The zone's SOA sets the timers: refresh after a success, retry after a failure, clamped to
MIN_INTERVAL..MAX_INTERVAL. The SOA expire is deliberately not enforced: an old copy of the
mandated list keeps blocking what it blocked (status and metrics show its age), because
dropping the whole list while the authority's server is unreachable is the one outcome an
operator must never get.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import functools
import ipaddress
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.name
import dns.serial
import dns.tsig

from resolver.build.child import ChildFailed, run_idle
from resolver.build.compile import policy_sources
from resolver.holder import SnapshotHolder
from resolver.lists.catalogue import ListsSettings, Source
from resolver.policy.schema import MANDATED
from resolver.stats import Stats, TransferStats
from resolver.transfer.audit import record_version
from resolver.transfer.overlay import Increments
from resolver.transfer.pull import Job
from resolver.transfer.xfr import TransferFailed, keyring, query_serial
from resolver.update.meta import read_meta
from resolver.yamlsource import ConfigError

log = logging.getLogger(__name__)
MIN_INTERVAL = 10.0  # seconds: the shortest refresh or retry a zone's SOA may ask for
MAX_INTERVAL = 86_400.0
DEFAULT_REFRESH = 3600.0  # until a copy's SOA is known
DEFAULT_RETRY = 60.0
NOTIFY_SPACING = 1.0  # seconds between rounds a NOTIFY starts: a flood of them costs one a second
SOA_TIMEOUT = 10.0

Reload = Callable[[], Awaitable[dict[str, Any]]]


class TransferManager:
    """Every transfer source of the policy, each kept current by its own task."""

    def __init__(
        self,
        policy: Callable[[], Path | None],
        stats: Stats,
        reload: Reload,
        holder: SnapshotHolder | None = None,
        changed: Callable[[Increments], Awaitable[None]] | None = None,
    ) -> None:
        """`policy()` is the policy file builds read now (the configured one, or the serving
        bundle's). `changed(increments)` runs after the pending increments changed (composed): the
        supervisor serves them in its own holder and hands them to every worker."""
        self.policy = policy
        self.stats = stats
        self.reload = reload
        self.holder = holder
        self.changed = changed
        self.pullers: dict[str, Puller] = {}
        self.running = False
        self.increments = Increments()  # mandated-list IXFRs live before their rebuild
        self._sequence = itertools.count(1)
        self._increments_lock = asyncio.Lock()
        if holder is not None:
            holder.transform = self.increments.apply

    async def start(self) -> None:
        """Read the policy's transfer sources and pull each at once, in the background."""
        self.running = True
        await self.configure()

    async def configure(self) -> None:
        """Follow the policy's transfer sources after a reload (changed ones start over)."""
        policy = self.policy()
        if policy is None:
            return
        found = await asyncio.to_thread(transfer_sources, policy)
        if found is None or not self.running:
            return  # an unusable policy: the reload reports it, the running sources go on
        sources, settings = found
        wanted = {s.id: s for s in sources}
        for sid in [
            sid for sid, p in self.pullers.items() if p.identity != _identity(wanted.get(sid))
        ]:
            gone = self.pullers.pop(sid)
            gone.cancel()
            self.stats.transfers.pop(sid, None)
            await self._change_increments(functools.partial(self.increments.forget, gone.copy))
        for sid, source in wanted.items():
            if sid in self.pullers:
                self.pullers[sid].settings = settings
                continue
            puller = Puller(source, settings, self)
            self.pullers[sid] = puller
            self.stats.transfers[sid] = puller.state
            puller.start()

    async def stop(self) -> None:
        self.running = False
        pullers = list(self.pullers.values())
        for puller in pullers:
            puller.cancel()
        for puller in pullers:
            if puller.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await puller.task

    async def put_live(self, source: str, increment: dict[str, Any]) -> int | None:
        """Serve an IXFR's changes to the mandated list now, before the rebuild that folds
        them in; its sequence number for `fold`, None when there is no compiled list to
        change (the reload alone then brings it)."""
        holder = self.holder
        if holder is None or holder.current is None or holder.current.mandated is None:
            return None
        sequence = next(self._sequence)
        await self._change_increments(lambda: self.increments.add(sequence, source, increment))
        return sequence

    def mark(self) -> int:
        """The last increment put live so far: a reload requested now reads every copy
        written up to it (`fold` after the reload succeeds)."""
        return max((p[0] for p in self.increments.pending), default=0)

    async def fold(self, sequence: int) -> None:
        """A reload requested after increment `sequence` went live has succeeded: the
        compiled index holds it and every one before."""
        if any(p[0] <= sequence for p in self.increments.pending):
            await self._change_increments(lambda: self.increments.fold(sequence))

    async def _change_increments(self, change: Callable[[], None]) -> None:
        async with self._increments_lock:
            change()
            await asyncio.to_thread(self.increments.compose)
            if self.holder is not None:
                self.holder.refresh()
            if self.changed is not None:
                await self.changed(self.increments)

    def for_notify(self, client: str, zone: str) -> tuple[bool, list[Puller]]:
        """(client is a configured primary, the sources it serves `zone` for)."""
        address = _address(client)
        mine = [p for p in self.pullers.values() if p.host == address]
        return bool(mine), [p for p in mine if p.spec.zone == zone]

    def status(self) -> list[dict[str, Any]]:
        return [puller.status() for puller in self.pullers.values()]


class Puller:
    """One transfer source: its state (shared with the metrics) and its task."""

    def __init__(self, source: Source, settings: ListsSettings, manager: TransferManager) -> None:
        assert source.transfer is not None
        self.source = source
        self.spec = source.transfer
        self.copy = str(source.local_path)  # the list file as the compiled index names it
        self.identity = _identity(source)
        self.host = _address(self.spec.host)
        self.settings = settings
        self.manager = manager
        self.state = TransferStats(source.id, source.category, self.spec.zone, self.spec.primary)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.pid: int | None = None  # the transfer child while one runs
        self.logged = ""  # the error logged last (each is logged once)
        self.refresh, self.retry = DEFAULT_REFRESH, DEFAULT_RETRY
        self._read_copy()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def keys(self) -> dict[dns.name.Name, dns.tsig.Key] | None:
        """The configured TSIG key (its file read now: a rotated secret applies at once)."""
        return keyring(self.spec.tsig)

    def status(self) -> dict[str, Any]:
        s = self.state
        return {
            "source": s.source,
            "category": s.category,
            "zone": s.zone,
            "primary": s.primary,
            "serial": s.serial,
            "rules": s.rules,
            "last_success": _iso(s.last_success),
            "last_change": _iso(s.last_change),
            "last_error": s.last_error or None,
            "next_refresh": _iso(s.next_refresh),
            "attempts": s.attempts,
            "increments": s.increments,
            "completed": dict(s.completed),
            "failures": dict(s.failures),
        }

    # -- the task -------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay, ended = 0.0, 0.0
        while True:
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
                await asyncio.sleep(max(0.0, ended + NOTIFY_SPACING - loop.time()))
            self.wake.clear()
            ok = await self._round()
            ended = loop.time()
            delay = self.refresh if ok else self.retry
            self.state.next_refresh = time.time() + delay

    async def _round(self) -> bool:
        state = self.state
        state.attempts += 1
        try:
            keys = self.keys()
            if state.serial is not None and self.source.local_path.is_file():
                serial = await query_serial(self.spec, keys, SOA_TIMEOUT)
                if serial == state.serial:
                    self._succeeded("up-to-date")
                    return True
                if dns.serial.Serial(serial) < state.serial:
                    raise TransferFailed(
                        "serial",
                        f"the primary's serial {serial} is older than our copy's {state.serial}",
                    )
            outcome = await self._pull()
        except TransferFailed as exc:
            self._failed(exc.reason, str(exc))
            return False
        if outcome["status"] == "failed":
            self._failed(outcome["reason"], outcome["error"])
            return False
        if outcome["status"] == "updated":
            await self._installed(outcome)
        else:
            self._succeeded(outcome["style"])
        return True

    async def _pull(self) -> dict[str, Any]:
        settings = self.settings
        job = Job(
            self.source.id,
            self.spec,
            self.source.local_path,
            settings.max_bytes,
            settings.min_keep_ratio,
        )
        try:
            output = await asyncio.to_thread(self._child, job.to_json())
            outcome: dict[str, Any] = json.loads(output.splitlines()[-1])
        except (ChildFailed, OSError, ValueError, IndexError) as exc:
            raise TransferFailed("worker", f"transfer process: {exc}") from None
        shown = {key: value for key, value in outcome.items() if key != "increment"}
        if outcome.get("increment"):
            shown["increment_names"] = len(outcome["increment"]["removed"])
        log.info("transfer source=%s %s", self.source.id, shown)
        return outcome

    def _child(self, job: str) -> str:
        """Runs in a thread: the transfer process, its pid kept for `cancel`."""
        try:
            return run_idle("resolver.transfer.pull", job, on_start=self._child_started)
        finally:
            self.pid = None

    def _child_started(self, pid: int) -> None:
        self.pid = pid

    async def _installed(self, outcome: dict[str, Any]) -> None:
        state = self.state
        previous = state.serial
        state.serial, state.rules = int(outcome["serial"]), int(outcome["rules"])
        state.last_success = state.last_change = time.time()
        state.completed[outcome["style"]] += 1
        self._read_timers(read_meta(self.source.local_path))
        record_version(
            source=state.source,
            category=state.category,
            zone=state.zone,
            primary=state.primary,
            serial=state.serial,
            previous_serial=previous,
            rules=state.rules,
            style=outcome["style"],
        )
        self._recovered()
        sequence = None
        increment = outcome.get("increment")
        if increment is not None and self.source.category == MANDATED:
            sequence = await self.manager.put_live(self.copy, increment)
            state.increments += sequence is not None
        result = await self.manager.reload()  # folds the increment in (Service.reload)
        if not result.get("ok"):
            live = "is live as an increment" if sequence is not None else "is stored"
            error = f"serial {state.serial} {live}, but the reload failed: {result.get('error')}"
            self._failed("reload", error, count=False)

    def _succeeded(self, style: str) -> None:
        self.state.completed[style] += 1
        self.state.last_success = time.time()
        self._recovered()

    def _recovered(self) -> None:
        if self.logged:
            log.warning(
                "transfer recovered source=%s zone=%s serial=%s",
                self.source.id,
                self.spec.zone,
                self.state.serial,
            )
        self.logged = ""
        self.state.last_error = ""

    def _failed(self, reason: str, error: str, *, count: bool = True) -> None:
        state = self.state
        if count:
            state.failures[reason] += 1
        state.last_error = error
        if error != self.logged:
            self.logged = error
            log.warning(
                "transfer refused source=%s zone=%s primary=%s reason=%s serving=%s: %s",
                self.source.id,
                self.spec.zone,
                self.spec.primary,
                reason,
                f"serial {state.serial}" if state.serial is not None else "nothing yet",
                error,
            )

    def _read_copy(self) -> None:
        """What the last good copy's sidecar says: serving starts from it before any transfer."""
        meta = read_meta(self.source.local_path)
        if meta.get("zone") != self.spec.zone or not isinstance(meta.get("serial"), int):
            return
        self.state.serial = meta["serial"]
        self.state.rules = int(meta.get("rules", 0))
        with contextlib.suppress(KeyError, ValueError, TypeError):
            fetched = time.strptime(meta["fetched_at"], "%Y-%m-%dT%H:%M:%SZ")
            self.state.last_change = self.state.last_success = float(calendar.timegm(fetched))
        self._read_timers(meta)

    def _read_timers(self, meta: dict[str, Any]) -> None:
        for attr, key in (("refresh", "refresh"), ("retry", "retry")):
            value = meta.get(key)
            if isinstance(value, int):
                setattr(self, attr, min(MAX_INTERVAL, max(MIN_INTERVAL, float(value))))


def transfer_sources(policy: Path) -> tuple[list[Source], ListsSettings] | None:
    """The policy's zone-transfer sources (mandated ones included); None if it cannot be read."""
    try:
        _, sources, settings = policy_sources(policy)
    except ConfigError:
        return None
    return [s for s in sources if s.transfer is not None], settings


def _identity(source: Source | None) -> tuple[Any, ...] | None:
    """What makes a source the same one after a reload (whether its copy exists does not)."""
    if source is None:
        return None
    return (source.category, source.transfer, source.local_path)


def _address(text: str) -> str:
    """An address in one spelling (IPv4-mapped IPv6 as IPv4), so primaries compare equal."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _iso(ts: float) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None
