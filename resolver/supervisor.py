"""`safe-resolver serve`: the supervisor and its DNS worker processes.

The supervisor binds no DNS socket. It builds the policy (in an idle child process, once per
reload), starts `workers` worker processes that each bind every DNS listener with SO_REUSEPORT
(`resolver.worker`), replaces one that dies, and owns what must exist once: the query-log
writer, the block page and admin apps, the counters summed over the workers, and reloads.

A reload is all or none: the build writes one snapshot file; the supervisor and every worker map
and check it (`prepare`); only when all of them have, every one swaps (`commit`). Any failure
keeps the old generation serving everywhere and is reported.

Order at start: everything that can be wrong in the configuration or the policy is found before
a worker binds a socket, so a bad start exits non-zero without ever answering. SIGTERM stops the
workers (each stops accepting and lets its queries in flight finish, then sends its last
counts), then the apps, then flushes the query log and the roll-ups, and exits 0.

Reports: the workers' roll-up deltas are folded here (`resolver.rollup.RollupFold`) for the
query log's writer; every reload (and the start) is recorded in the audit trail with its
cause and result, and so is every mandated list version it puts in force
(`resolver.store.audit`). The reload is where "generation N in force from time T" is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web

from resolver import __version__
from resolver.build.listfile import rule_line
from resolver.bundlepoll import BundlePoller
from resolver.config import ServerConfig
from resolver.control import Channel, ChannelClosed, Message
from resolver.dns.packet import Malformed, read_query
from resolver.expiry import ExpiryTimer, wall_clock
from resolver.holder import SnapshotHolder
from resolver.http.limits import HttpLimits
from resolver.policy.blockinfo import BLOCKED, BlockInfo, block_info, mandated_refusal
from resolver.policy.decide import decide
from resolver.policy.decision import Decision
from resolver.policy.schema import DEFAULT_TIMEZONE, MANDATED
from resolver.policy.snapshot import PolicySnapshot
from resolver.procstats import LagProbe, ProcessSampler
from resolver.rollup import RollupFold
from resolver.sdnotify import SystemdNotifier
from resolver.stats import Stats
from resolver.store.audit import AuditEntry, list_facts, record_list_version, record_overlay
from resolver.store.base import RequestStore
from resolver.store.overlay import OverlayEntry
from resolver.store.querylog import QueryLog
from resolver.transfer.manager import TransferManager
from resolver.transfer.notify import NotifySink
from resolver.transfer.overlay import Increments

if TYPE_CHECKING:
    from resolver.http.blocktls import BlockPageTls
    from resolver.http.devices import DeviceSetup

log = logging.getLogger("resolver")
READY_TIMEOUT = 300.0  # seconds a worker may take to map the snapshot and bind
REQUEST_TIMEOUT = 300.0  # seconds a worker may take to map a new snapshot
STOP_GRACE = 10.0  # seconds workers get to drain on SIGTERM before SIGKILL
RESPAWN_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # after 1, 2, 3... quick deaths in a row
START_ATTEMPTS = 3  # a worker that dies this often before it is ready fails the start
STABLE_AFTER = 60.0  # seconds a worker must live for its restarts to count as unrelated
STALL_LIMIT = 30.0  # seconds without a word from a worker (it reports every second) before
# it is killed and replaced: systemd's watchdog for the supervisor, done by the supervisor for
# the workers, whose event loops systemd cannot see
_WORKER_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
HOUSEKEEPING_EVERY = 3600.0  # seconds between retention rounds of the request store
SAMPLE_EVERY = 1.0  # seconds between samples of the supervisor's own resources
LAST_PUSH_WAIT = 2.0  # seconds to read a stopped worker's last push (its final counts)
# A replacement worker starts with up to this much of a live sibling's answer cache, most
# recently used first (AnswerCache.hottest): ~10 MB through the channels at most, and a pause
# of a few tens of milliseconds in the sibling.
WARM_ENTRIES = 50_000
WARM_BYTES = 8 << 20
WARM_TIMEOUT = 5.0  # seconds to wait for the sibling's entries; without them it starts cold


class StartError(Exception):
    """The resolver could not start (a worker failed to bind, or died before it was ready)."""


@dataclass(eq=False)
class Slot:
    """One worker position: the process filling it now and what it reported."""

    number: int
    proc: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: str = ""
    generation: int = 0
    listening: list[str] = field(default_factory=list)
    datapath: str = ""  # which UDP path the worker serves with (resolver.dns.fastpath.describe)
    stats: Stats = field(default_factory=Stats)
    restarts: int = 0
    quick_deaths: int = 0
    started: float = 0.0
    heard: float = 0.0  # when the worker last sent anything (monotonic)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class WorkerPool:
    """Starts, watches and replaces the worker processes; talks to them over their channels."""

    def __init__(self, supervisor: Supervisor, count: int) -> None:
        self.sup = supervisor
        self.slots = [Slot(number) for number in range(1, count + 1)]
        self.retired = Stats()  # counters of workers that exited, so totals never go back
        self.stopping = False
        self.greeting = False  # the first policy is built: a (re)started worker is greeted
        self._watchdog: asyncio.Task[None] | None = None

    async def launch(self) -> None:
        """Start the worker processes before the first policy is built: their start (an
        interpreter, the imports) overlaps the build, and `start` greets them when it is done."""
        await asyncio.gather(*(self._launch(slot) for slot in self.slots))

    async def abandon(self) -> None:
        """The first policy did not build: end the launched workers before they are greeted."""
        self.stopping = True  # not replaced
        for slot in self.slots:
            if slot.alive:
                assert slot.proc is not None
                slot.proc.kill()
                await slot.proc.wait()

    async def start(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(self._stall_watch())
        self.greeting = True
        for slot in self.slots:
            if slot.channel is None:
                await self._launch(slot)
            self._hello(slot)
        waits = [asyncio.wait_for(slot.ready.wait(), READY_TIMEOUT) for slot in self.slots]
        try:
            await asyncio.gather(*waits)
        except TimeoutError:
            raise StartError("a worker did not become ready") from None
        failed = [f"worker {slot.number}: {slot.failed}" for slot in self.slots if slot.failed]
        if failed:
            raise StartError("; ".join(failed))

    async def _spawn(self, slot: Slot) -> None:
        """Replace the worker of `slot`, its cache warmed from a live sibling's (which is
        asked while the new process starts its interpreter)."""
        await self._launch(slot)
        if self.greeting:
            self._hello(slot, await self._warm_entries(slot))

    async def _warm_entries(self, slot: Slot) -> list[Any]:
        """The hottest entries of one live worker's answer cache, or [] (none, or no reply)."""
        for sibling in self._live():
            assert sibling.channel is not None
            ask = {"op": "warm", "limit": WARM_ENTRIES, "bytes": WARM_BYTES}
            try:
                reply = await sibling.channel.request(ask, WARM_TIMEOUT)
            except (ChannelClosed, TimeoutError):
                continue
            entries = reply.get("entries")
            if isinstance(entries, list):
                log.warning("worker %d starts with %d cache entries of worker %d",
                            slot.number, len(entries), sibling.number)  # fmt: skip
                return entries
        return []

    async def _launch(self, slot: Slot) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            slot.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "resolver", "serve-worker",
                "--control-fd", str(child.fileno()),
                pass_fds=(child.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k not in _WORKER_ENV_DROP},
            )  # fmt: skip
        finally:
            child.close()
        slot.ready.clear()
        slot.failed = ""
        slot.started = slot.heard = time.monotonic()
        slot.channel = await Channel.over(parent, lambda message: self._on_message(slot, message))
        loop = asyncio.get_running_loop()
        for coro in (slot.channel.run(), self._watch(slot, slot.proc)):
            task = loop.create_task(coro)
            slot.tasks.add(task)
            task.add_done_callback(slot.tasks.discard)

    def _hello(self, slot: Slot, warm: list[Any] | None = None) -> None:
        """What a worker needs to serve: the config, its number, the snapshot, the listeners,
        and for a replacement, a sibling's cache entries to start with (`warm`)."""
        assert slot.channel is not None
        holder = self.sup.holder
        slot.channel.notify({
            "op": "hello", "config": self.sup.cfg, "worker": slot.number,
            "path": str(holder.path) if holder.path else None,
            "generation": self.sup.generation, "listen": self.sup.listen,
            "primaries": self.sup.primaries(),
            "increments": self.sup.increments(), "warm": warm or [],
        })  # fmt: skip
        slot.generation = self.sup.generation

    async def _on_message(self, slot: Slot, message: Message) -> Message | None:
        slot.heard = time.monotonic()
        op = message.get("op")
        if op == "log":
            submit = self.sup.querylog.submit if self.sup.querylog else None
            if submit is not None:
                for event in message["events"]:
                    submit(event)
        elif op == "stats":
            slot.stats = message["stats"]
            rollup = message.get("rollup")
            if rollup and self.sup.rollups is not None:
                self.sup.rollups.fold(rollup, time.time())
        elif op == "ready":
            slot.listening = list(message["listening"])
            slot.datapath = str(message.get("datapath", ""))
            slot.ready.set()
        elif op == "failed":
            slot.failed = str(message["error"])
            slot.ready.set()
        elif op == "notify":
            return {"answer": self.sup.answer_notify(message["data"], message["client"])}
        return None

    def tell(self, message: Message) -> None:
        """A notice to every live worker (no reply awaited)."""
        for slot in self._live():
            assert slot.channel is not None
            slot.channel.notify(message)

    async def _watch(self, slot: Slot, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if slot.proc is not proc or slot.failed:
            return  # replaced already, or it said why it could not start (start fails)
        lived = time.monotonic() - slot.started
        slot.quick_deaths = 0 if lived > STABLE_AFTER else slot.quick_deaths + 1
        if not slot.ready.is_set() and slot.quick_deaths >= START_ATTEMPTS:
            slot.failed = f"exited with status {code} while starting, {START_ATTEMPTS} times"
            slot.ready.set()
            return
        if self.stopping:
            return
        self.retired.add(slot.stats)
        slot.stats = Stats()
        slot.restarts += 1
        self.sup.own.dropped["worker-exit"] += 1
        delay = RESPAWN_DELAYS[min(slot.quick_deaths, len(RESPAWN_DELAYS) - 1)]
        log.error(
            "worker %d (pid %d) exited with status %s after %.1f s; replacing it in %.1f s",
            slot.number, proc.pid, code, lived, delay,
        )  # fmt: skip
        await asyncio.sleep(delay)
        if not self.stopping:
            await self._spawn(slot)

    async def _stall_watch(self) -> None:
        """Kill a ready worker that has said nothing for STALL_LIMIT seconds (its event loop
        is stuck); `_watch` then replaces it like any worker that died."""
        while not self.stopping:
            await asyncio.sleep(STALL_LIMIT / 6)
            now = time.monotonic()
            for slot in self.slots:
                if slot.alive and slot.ready.is_set() and now - slot.heard > STALL_LIMIT:
                    assert slot.proc is not None
                    log.error("worker %d (pid %d) silent for %.0f s: killing it",
                              slot.number, slot.proc.pid, now - slot.heard)  # fmt: skip
                    self.sup.own.dropped["worker-stalled"] += 1
                    with contextlib.suppress(ProcessLookupError):
                        slot.proc.kill()
                    slot.heard = now

    def _live(self) -> list[Slot]:
        return [s for s in self.slots if s.alive and s.channel is not None and s.ready.is_set()]

    async def ask(self, message: Message) -> list[tuple[Slot, Message | str]]:
        """Send `message` to every live worker: (slot, reply) or (slot, why it failed)."""

        async def one(slot: Slot) -> tuple[Slot, Message | str]:
            assert slot.channel is not None
            try:
                reply = await slot.channel.request(message, REQUEST_TIMEOUT)
            except (ChannelClosed, TimeoutError) as exc:
                return slot, f"worker {slot.number}: {type(exc).__name__}"
            if not reply.get("ok", True):
                return slot, f"worker {slot.number}: {reply.get('error')}"
            return slot, reply

        return list(await asyncio.gather(*(one(slot) for slot in self._live())))

    async def prepare(self, generation: int, path: str) -> list[str]:
        replies = await self.ask({"op": "load", "generation": generation, "path": path})
        return [reply for _, reply in replies if isinstance(reply, str)]

    async def commit(self, generation: int, path: str) -> None:
        for slot, reply in await self.ask({"op": "commit", "generation": generation, "path": path}):
            if isinstance(reply, str):
                log.error("commit of generation %d: %s", generation, reply)
            else:
                slot.generation = generation

    async def abort(self, generation: int) -> None:
        await self.ask({"op": "abort", "generation": generation})

    async def flush(self, name: str | None) -> int:
        replies = await self.ask({"op": "flush", "name": name})
        return sum(r.get("flushed", 0) for _, r in replies if not isinstance(r, str))

    async def pull_stats(self) -> None:
        """Every live worker's counters, now (a worker also pushes them every second)."""
        for slot, reply in await self.ask({"op": "stats"}):
            if not isinstance(reply, str):
                slot.stats = reply["stats"]

    def merged(self) -> Stats:
        total = Stats()
        total.add(self.retired)
        for slot in self.slots:
            total.add(slot.stats)
        return total

    def datapath(self) -> str:
        """E.g. "udp: recvmmsg batch 64, fast answers 200000, compiled: yes, workers: 2"."""
        paths = sorted({slot.datapath for slot in self.slots if slot.datapath})
        return ", ".join([*paths, f"workers: {len(self.slots)}"])

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "worker": slot.number,
                "pid": slot.proc.pid if slot.proc else None,
                "alive": slot.alive and slot.ready.is_set(),
                "generation": slot.generation,
                "restarts": slot.restarts,
            }
            for slot in self.slots
        ]

    async def stop(self) -> None:
        """SIGTERM every worker (it drains), wait STOP_GRACE, then SIGKILL what is left."""
        self.stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        procs = [slot.proc for slot in self.slots if slot.proc is not None and slot.alive]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        waiting = [asyncio.ensure_future(proc.wait()) for proc in procs]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=STOP_GRACE)
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if pending:
                await asyncio.wait(pending)
        # Read every worker's last push (its final roll-up counts) before the writer's last
        # round: the channel ends once the worker's end of it is closed.
        closing = [
            asyncio.ensure_future(slot.channel.closed.wait())
            for slot in self.slots
            if slot.channel is not None
        ]
        if closing:
            _, late = await asyncio.wait(closing, timeout=LAST_PUSH_WAIT)
            for waiter in late:
                waiter.cancel()
        for _ in range(2):
            await asyncio.sleep(0)  # the notices read are handled by tasks of their own
        for slot in self.slots:
            if slot.channel is not None:
                slot.channel.close()
        self.retired.add(self.merged())
        for slot in self.slots:
            slot.stats = Stats()


class Supervisor:
    """The running resolver; implements `resolver.http.ports.ResolverControl` for the web apps."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.own = Stats()  # the supervisor's own counters: reloads, query log
        self.holder = SnapshotHolder(self.own)
        self.generation = 0
        # The policy file builds read: the configured one, or the newest verified bundle's.
        self.policy_path: Path | None = cfg.policy
        self.bundles = BundlePoller(cfg.bundle, self.own) if cfg.bundle else None
        self.listen = concrete_listeners(cfg.listen)
        enc = cfg.encrypted
        self.cfg = cfg = replace(cfg, encrypted=replace(
            enc, dot_listen=tuple(concrete_listeners(enc.dot_listen)),
            doh_listen=tuple(concrete_listeners(enc.doh_listen)),
            doq_listen=tuple(concrete_listeners(enc.doq_listen)),
        ))  # fmt: skip
        self.pool = WorkerPool(self, worker_count(cfg.workers))
        self.querylog: QueryLog | None = None
        self.rollups: RollupFold | None = None
        if cfg.querylog.enabled:
            ql = cfg.querylog
            self.rollups = RollupFold(ZoneInfo(DEFAULT_TIMEZONE))
            self.querylog = QueryLog(
                ql.path,
                backend=ql.backend,
                dsn=ql.dsn,
                clients=ql.clients,
                retention_days=ql.retention_days or None,
                queue_size=ql.queue_size,
                batch=ql.batch,
                flush_interval=ql.flush_interval,
                key_rotation=ql.key_rotation,
                stats=self.own,
                rollups=self.rollups,
                report_retention_days=ql.report_retention_days,
            )
        self.http_runners: list[web.AppRunner] = []
        self.http_listeners: list[str] = []
        self.blockpage_tls: BlockPageTls | None = None  # the block page's HTTPS (school CA)
        self.last_reload: dict[str, Any] = {}
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self._again = False
        self._causes: list[str] = []  # what asked for the reload(s) not yet run
        self._in_force: dict[str, tuple[Any, ...]] = {}  # mandated list id -> version recorded
        self._tasks: set[asyncio.Task[None]] = set()
        self.lag = LagProbe()
        self.sampler = ProcessSampler()
        self.stopping = asyncio.Event()
        self.notifier = SystemdNotifier.from_environment()  # systemd Type=notify; else no-op
        # Overlay entries (approvals, pauses) end on this clock: a reload at the next `until`.
        self.wall = wall_clock()
        self.expiry = ExpiryTimer(self.wall, self._overlay_expired)
        self._overlay_lock = asyncio.Lock()  # one change of the overlay file at a time
        # Zone-transfer list sources (resolver/transfer): pulled at start, on NOTIFY (which a
        # worker passes up here), on the zone's refresh timer.
        self.transfers: TransferManager | None = None
        self.notify_sink: NotifySink | None = None
        if cfg.policy is not None or self.bundles is not None:
            self.transfers = TransferManager(
                lambda: self.policy_path,
                self.own,
                lambda: self.reload(cause="transfer"),
                self.holder,
                self._increments_changed,
            )
            self.notify_sink = NotifySink(self.transfers, self.own)

    # -- start and stop ----------------------------------------------------------------------

    async def load_initial(self) -> list[str]:
        """Build and map the policy before anything binds; returns the build's error lines
        (empty when it went live). With a bundle: the newest verified one that builds (after
        one fetch, when the policy host answers), else the one that served last."""
        candidates = [self.cfg.policy] if self.cfg.policy is not None else []
        if self.bundles is not None:
            await self.bundles.fetch_first()
            candidates = self.bundles.candidates()
            if not candidates:
                return [f"no policy bundle yet: {self.bundles.last_error or 'none fetched'}"]
        errors: list[str] = []
        for policy in candidates:
            result = await self.holder.build(policy, 1, self.wall())
            if not result["ok"]:
                errors += [str(line) for line in result["errors"]]
                if policy != candidates[-1]:
                    log.error("bundle policy %s does not build; trying the one before", policy)
                continue
            for line in result.get("warnings", []):
                log.warning("%s", line)
            self.generation = 1
            self.holder.commit(1)
            self.expiry.arm(result.get("overlay_expiry"))
            self._note_reload(result, 0.0)
            self._served(policy)
            await self._audit_reload("start", self.last_reload)
            return []
        return errors

    def _served(self, policy: Path) -> None:
        self.policy_path = policy
        if self.bundles is not None:
            self.bundles.served(policy)

    async def use_policy(self, policy: Path) -> dict[str, Any]:
        """Make `policy` (a newly verified bundle's) the one builds read, and reload. On
        failure the old generation keeps serving and `policy` stays the wanted one: a later
        reload (SIGHUP, `accept_shrink`) tries it again."""
        self.policy_path = policy
        return await self.reload()

    def primaries(self) -> list[str]:
        """The zone-transfer primaries' addresses: a worker passes their NOTIFYs up here."""
        if self.transfers is None:
            return []
        return sorted({puller.host for puller in self.transfers.pullers.values()})

    def increments(self) -> list[Any]:
        """The IXFR increments every serving process puts beside its mandated index."""
        return list(self.transfers.increments.pending) if self.transfers is not None else []

    def answer_notify(self, data: bytes, client: str) -> bytes | None:
        """A worker's NOTIFY, answered by the transfer manager (None: no zone is transferred,
        or not a query the reader accepts)."""
        if self.notify_sink is None:
            return None
        try:
            query = read_query(data)
        except Malformed:
            return None
        return self.notify_sink.notify(query, data, client)

    async def _increments_changed(self, increments: Increments) -> None:
        self.pool.tell({"op": "increments", "pending": list(increments.pending)})

    async def start(self) -> None:
        self._background(self.lag.run(self.stopping))
        self._background(self._sample_loop())
        if self.querylog is not None:
            await self.querylog.start()
        await self.start_http()  # first: whoever sees DNS answer can use the apps too
        await self.pool.start()
        if self.bundles is not None:
            self.bundles.start(self.use_policy)
        for listening in self.pool.slots[0].listening:
            kind, _, address = listening.rpartition(" ")
            log.warning("listening dns=%s %s workers=%d", address, kind or "udp+tcp",
                        len(self.pool.slots))  # fmt: skip

    async def start_http(self) -> None:
        from resolver.http.admin import make_admin_app
        from resolver.http.blockpage import make_blockpage_app
        from resolver.http.runner import server_tls_context
        from resolver.http.sessions import SessionStore
        from resolver.http.users import UserTable
        from resolver.store.sqlite import SqliteRequestStore

        bp = self.cfg.blockpage
        store = None
        db = bp.requests_db or (self.cfg.querylog.path if self.cfg.querylog.enabled else None)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            requests = await asyncio.to_thread(SqliteRequestStore, db)
            self._background(self._expire_requests(requests))
            store = CountedRequests(requests, self.rollups) if self.rollups else requests
        if bp.https_listen:
            from resolver.http.blocktls import BlockPageTls
            from resolver.http.schoolca import CaError

            try:
                self.blockpage_tls = BlockPageTls(
                    lambda client, host: self.block_reason(client, host) is not None,
                    cert=bp.cert, key=bp.key, ca_dir=bp.ca,
                )  # fmt: skip
            except (OSError, ssl.SSLError, CaError) as exc:
                raise StartError(f"blockpage https_listen: {exc}") from None
        if bp.listen or bp.https_listen:
            org = self.cfg.organisation
            app = make_blockpage_app(
                self,
                hotline=bp.hotline,
                hotline_name=bp.hotline_name or None,
                store=store,
                lang_default=bp.lang,
                organisation=(org.name, org.address, org.contact),
            )
            tls = self.blockpage_tls.context if self.blockpage_tls else None
            https = list(bp.https_listen)
            await self._serve_http("blockpage", app, list(bp.listen), bp.limits, https, tls)
        ad = self.cfg.admin
        if ad.listen:
            admin = make_admin_app(
                self,
                token=ad.token,
                store=store,
                querylog=self.querylog,
                sessions=SessionStore(ad.session_lifetime, ad.session_idle_timeout),
                users=UserTable(ad.users_file) if ad.users_file else None,
                require_login=ad.require_login,
            )
            if ad.cert and ad.key:
                tls = server_tls_context(ad.cert, ad.key)
                await self._serve_http("admin", admin, [], ad.limits, list(ad.listen), tls)
            else:
                if ad.token and any(not ipaddress.ip_address(h).is_loopback for h, _ in ad.listen):
                    log.warning(
                        "admin listens beyond loopback over plain HTTP: the token and session "
                        "cookies cross the network readable; set admin.cert and admin.key"
                    )
                await self._serve_http("admin", admin, list(ad.listen), ad.limits)

    async def _serve_http(
        self,
        name: str,
        app: web.Application,
        listens: list[tuple[str, int]],
        limits: HttpLimits,
        tls_listens: list[tuple[str, int]] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """One runner per app: its plain and TLS addresses share one connection guard."""
        from resolver.http.runner import start_http

        tls_listens = tls_listens or []
        runner = await start_http(
            app, listens, tls_listens=tls_listens, tls=tls, name=name, limits=limits,
            stats=self.own,
        )  # fmt: skip
        self.http_runners.append(runner)
        for i, address in enumerate(runner.addresses):  # sites start in order: plain, then TLS
            host, port = address[0], address[1]
            proto = "http" if i < len(listens) else "https"
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self.http_listeners.append(f"{name} {proto} {shown}")
            log.warning("listening %s=%s %s", name, shown, proto)

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sample_loop(self) -> None:
        """The supervisor's own resources and loop lag, beside the workers' (which push theirs)."""
        while not self.stopping.is_set():
            self.own.processes = {"supervisor": self.sampler.sample(self.lag.take())}
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SAMPLE_EVERY):
                    await self.stopping.wait()

    async def _expire_requests(self, store: RequestStore) -> None:
        """Retention of unblock requests and content reports (their counts live on in the
        roll-ups), hourly."""
        ql = self.cfg.querylog
        while True:
            now = time.time()
            try:
                removed = await asyncio.to_thread(
                    store.expire,
                    now - ql.requests_retention_days * 86400,
                    now - ql.content_reports_retention_days * 86400,
                )
            except Exception:  # a locked or broken file: logged, tried again next round
                log.exception("request store: retention failed")
            else:
                if removed:
                    log.info("request store: retention removed %d rows", removed)
            await asyncio.sleep(HOUSEKEEPING_EVERY)

    async def stop(self) -> None:
        self.stopping.set()
        self.expiry.cancel()
        if self.bundles is not None:
            await self.bundles.stop()
        if self.transfers is not None:
            await self.transfers.stop()
        for task in list(self._tasks):
            task.cancel()
        await self.pool.stop()
        for runner in self.http_runners:
            await runner.cleanup()
        if self.querylog is not None:
            await self.querylog.close()
        self.holder.close()

    # -- reloads ---------------------------------------------------------------------------------

    async def reload(self, accept_shrink: bool = False, cause: str = "api") -> dict[str, Any]:
        """Build and swap everywhere; returns {ok, generation, error, duration}. Requests that
        arrive while one runs are merged into one more run after it. `cause` goes into the
        audit trail: sighup, api, overlay (an approval, pause or revocation), expiry,
        transfer (merged requests join theirs with "+")."""
        if cause not in self._causes:
            self._causes.append(cause)
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._reload_loop(accept_shrink))
        else:
            self._again = True
        return await asyncio.shield(self._running)

    async def _reload_loop(self, accept_shrink: bool) -> dict[str, Any]:
        self.notifier.reloading()
        certificate = await self._reload_tls()
        result = await self._reload_transfers(accept_shrink)
        while self._again:
            self._again = False
            certificate = await self._reload_tls()
            result = await self._reload_transfers(accept_shrink)
        if certificate:
            result = self.last_reload = {**result, "certificate_error": certificate}
        self.notifier.ready(self.systemd_status())
        return result

    async def _reload_transfers(self, accept_shrink: bool) -> dict[str, Any]:
        """A reload, with the zone-transfer sources followed: IXFR increments put live before
        it began are compiled in once it succeeds (dropped from the overlay), and sources the
        new policy adds, changes or removes start or stop."""
        transfers = self.transfers
        mark = transfers.mark() if transfers is not None else 0
        result = await self._reload_once(accept_shrink)
        if transfers is not None and transfers.running:
            if result["ok"]:
                await transfers.fold(mark)
            await transfers.configure()
            self.pool.tell({"op": "primaries", "addresses": self.primaries()})
        return result

    def systemd_status(self) -> str:
        """The line `systemctl status` shows: the policy generation, a failed reload's error."""
        if self.policy_path is None:
            return "serving without a policy"
        text = f"serving policy generation {self.generation}"
        if self.last_reload and not self.last_reload["ok"]:
            text += f"; last reload failed: {self.last_reload['error']}"[:300]
        return text

    async def _reload_tls(self) -> str:
        """Every worker reads the certificate and key again for new encrypted connections, and
        the block page its certificate and CA; the error ("" if none). Whatever cannot keeps
        serving the old ones."""
        errors = []
        if self.blockpage_tls is not None and (error := self.blockpage_tls.reload()):
            errors.append(error)
        if self.cfg.encrypted.enabled:
            errors += [
                reply for _, reply in await self.pool.ask({"op": "tls"}) if isinstance(reply, str)
            ]
        if errors:
            self.own.dropped["tls-reload-failed"] += 1
            log.error("certificate reload failed, keeping the old one: %s", "; ".join(errors))
        return "; ".join(errors)

    async def _reload_once(self, accept_shrink: bool) -> dict[str, Any]:
        cause, self._causes = "+".join(self._causes) or "api", []
        result = await self._reload_attempt(accept_shrink)
        await self._audit_reload(cause, result)
        return result

    async def _reload_attempt(self, accept_shrink: bool) -> dict[str, Any]:
        started = time.monotonic()
        policy = self.policy_path
        if policy is None:
            return self._failed(started, "no policy configured")
        generation = self.generation + 1
        built = await self.holder.build(policy, generation, self.wall())
        if not built["ok"]:
            return self._failed(started, "\n".join(built["errors"]))
        path = str(built["snapshot"])
        snapshot = self.holder.prepared
        refusal = shrink_refusal(self.holder.current, snapshot, accept_shrink)
        errors = [refusal] if refusal else await self.pool.prepare(generation, path)
        if errors:
            self.holder.abort(generation)
            await self.pool.abort(generation)
            return self._failed(started, "; ".join(errors))
        await self.pool.commit(generation, path)
        self.holder.commit(generation)
        self.generation = generation
        self.expiry.arm(built.get("overlay_expiry"))
        seconds = time.monotonic() - started
        for line in built.get("warnings", []):
            log.warning("%s", line)
        log.warning("policy reloaded generation=%d seconds=%.3f", generation, seconds)
        self._note_reload(built, seconds)
        self._served(policy)
        return self.last_reload

    def _note_reload(self, built: dict[str, Any], seconds: float) -> None:
        own = self.own
        own.reloads += 1 if self.generation > 1 else 0
        own.reload_seconds_last = seconds
        own.reload_last_ok = True
        snapshot = self.holder.current
        if snapshot is not None:
            own.list_updated = list_times(snapshot)
            own.list_stale = {
                category: sum(1 for s in snapshot.sources if s["category"] == category
                              and s.get("stale"))
                for category in snapshot.list_sizes
            }  # fmt: skip
            if self.rollups is not None:
                self.rollups.zone = snapshot.timezone
        self.last_reload = {
            "ok": True,
            "generation": self.generation,
            "error": None,
            "duration": round(seconds, 3),
            "compiled": bool(built.get("compiled")),
            "warnings": list(built.get("warnings", [])),
        }

    def _failed(self, started: float, error: str) -> dict[str, Any]:
        self.own.reload_failures += 1
        self.own.reload_last_ok = False
        self.own.reload_last_error = error
        log.error("policy reload failed, keeping generation %s: %s", self.generation, error)
        self.last_reload = {
            "ok": False,
            "generation": self.generation,
            "error": error,
            "duration": round(time.monotonic() - started, 3),
        }
        return self.last_reload

    async def _audit_reload(self, cause: str, result: dict[str, Any]) -> None:
        """The audit rows of a reload (or the start): the reload itself, and each mandated
        list version it put in force (or withdrew) since the last one recorded."""
        if self.querylog is None:
            return
        now = time.time()
        ok = bool(result["ok"])
        self.querylog.audit(
            AuditEntry(now, "reload", generation=self.generation, cause=cause,
                       result="ok" if ok else "failed",
                       detail=None if ok else str(result["error"])[:2000])
        )  # fmt: skip
        snapshot = self.holder.current
        if not ok or snapshot is None:
            return
        mandated = [dict(s) for s in snapshot.sources if s["category"] == MANDATED]
        facts = await asyncio.to_thread(lambda: [list_facts(source) for source in mandated])
        in_force: dict[str, tuple[Any, ...]] = {}
        for source, fact in zip(mandated, facts, strict=True):
            version = (source.get("digest"), fact["serial"], bool(source.get("stale")))
            in_force[source["id"]] = version
            if self._in_force.get(source["id"]) == version:
                continue  # the same bytes as the version already recorded
            record_list_version(
                self.querylog, source=source["id"], category=MANDATED,
                rules=int(source["rules"]), generation=self.generation, at=now,
                path=source["path"], digest=source.get("digest"),
                state="in-force-last-good-copy" if source.get("stale") else "in-force", **fact,
            )  # fmt: skip
        for gone in sorted(self._in_force.keys() - in_force.keys()):
            record_list_version(
                self.querylog, source=gone, category=MANDATED, rules=0,
                generation=self.generation, at=now, state="withdrawn",
            )  # fmt: skip
        self._in_force = in_force

    # -- ResolverControl ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        snapshot = self.holder.current
        stats = self.stats()
        return {
            "version": __version__,
            "policy_generation": self.generation,
            "policy": str(self.policy_path) if self.policy_path else None,
            "list_sizes": dict(self.own.list_sizes),
            "uptime": round(time.time() - self.started, 1),
            "listeners": [
                f"dns {a}" if " " in a else f"dns udp+tcp {a}" for a in self.pool.slots[0].listening
            ]
            + self.http_listeners,
            "upstreams": [u.address for u in stats.upstreams.values()],
            "cache_entries": stats.cache_size,
            "profiles": list(snapshot.profile_ids) if snapshot else [],
            "last_reload": self.last_reload,
            "transfers": self.transfers.status() if self.transfers is not None else [],
            "workers": self.pool.status(),
            "datapath": self.pool.datapath(),
            "bundle": self.bundles.status() if self.bundles else None,
            "proxy_protocol_from": list(self.cfg.proxy_protocol_from),
            "content_reports_retention_days": self.cfg.querylog.content_reports_retention_days,
        }

    async def explain(
        self, client: str, name: str, qtype: str = "A", at: datetime | None = None
    ) -> dict[str, Any]:
        from resolver.policy.explain import explain_report

        snapshot = self._snapshot()
        ipaddress.ip_address(client)  # ValueError for the API's 400
        when = at if at is not None else datetime.now(snapshot.timezone)
        report = explain_report(snapshot, client, name, qtype, when)
        if report["rule"] and report["source"]:
            report["line"] = await self.holder.in_thread(
                rule_line, report["source"], report["rule"]
            )
        return report

    def stats(self) -> Stats:
        total = self.pool.merged()
        own = self.own
        total.started = own.started
        for name in ("reloads", "reload_failures", "reload_seconds_last", "reload_last_error",
                     "reload_last_ok", "querylog_written", "querylog_failed_batches",
                     "rollup_writes", "rollup_failed_writes", "rollup_written_at", "bundle_checks",
                     "bundle_refused", "bundle_sha256", "bundle_version", "bundle_applied",
                     "bundle_checked"):  # fmt: skip
            setattr(total, name, getattr(own, name))
        total.processes = dict(own.processes)
        for slot in self.pool.slots:
            if slot.alive:
                total.processes.update(slot.stats.processes)
        total.querylog_dropped += own.querylog_dropped
        total.policy_generation = self.generation
        total.list_sizes = dict(own.list_sizes)
        total.list_updated = dict(own.list_updated)
        total.list_stale = dict(own.list_stale)
        for reason, count in own.dropped.items():
            total.dropped[reason] += count
        total.http_connections = own.http_connections  # the web apps run here only
        total.http_closed = own.http_closed
        total.http_bad_requests = own.http_bad_requests
        total.transfers = own.transfers  # the transfer manager runs here only
        for outcome, count in own.notifies.items():
            total.notifies[outcome] += count
        return total

    async def refresh_stats(self) -> None:
        await self.pool.pull_stats()

    async def flush_cache(self, name: str | None = None) -> int:
        return await self.pool.flush(name)

    def block_reason(self, client: str, host: str) -> Decision | None:
        serving = self.holder.serving
        if serving is None:
            return None
        snapshot, memo = serving
        name = host.lower().rstrip(".")
        decision = decide(snapshot, client, name, 1, time.time(), memo=memo)
        return decision if decision.action in BLOCKED else None

    def block_info(self, client: str, host: str) -> BlockInfo | None:
        serving = self.holder.serving
        if serving is None:
            return None
        snapshot, memo = serving
        return block_info(snapshot, client, host.lower().rstrip("."), time.time(), memo)

    def school_ca(self) -> bytes | None:
        ca = self.blockpage_tls.ca if self.blockpage_tls is not None else None
        return ca.pem if ca is not None else None

    def device_setups(self) -> list[DeviceSetup]:
        from resolver.dns.tls import certificate_info
        from resolver.http.devices import device_setups

        enc, snapshot = self.cfg.encrypted, self.holder.current
        if snapshot is None or not enc.enabled or enc.tls_cert is None:
            return []
        try:
            name = certificate_info(enc.tls_cert).base_name(enc.server_name)
        except (OSError, ValueError):
            return []
        doh = [port for _, port in enc.doh_listen]
        dot = [port for _, port in enc.dot_listen]
        return device_setups(snapshot.device_paths(), doh, dot, name)

    # -- the overlay: approvals and pauses that end by themselves ------------------------------

    def policy_now(self) -> datetime:
        zone = self.holder.current.timezone if self.holder.current else ZoneInfo(DEFAULT_TIMEZONE)
        return datetime.fromtimestamp(self.wall(), zone)

    async def overlay_entries(self) -> list[OverlayEntry]:
        from resolver.store.overlay import read_overlay

        snapshot = self._snapshot()
        if snapshot.overlay is None:
            return []
        entries = await asyncio.to_thread(read_overlay, snapshot.overlay, snapshot.timezone)
        now = self.wall()
        return [entry for entry in entries if not entry.expired(now)]

    async def overlay_add(self, entry: OverlayEntry) -> dict[str, Any]:
        from resolver.store.overlay import add_entry

        snapshot, path = self._overlay_snapshot()
        profile = snapshot.profiles.get(entry.profile)
        if profile is None:
            raise ValueError(f"unknown profile {entry.profile!r}")
        if entry.target_kind == "name":
            entry = replace(entry, target=_valid_name(entry.target))
            refusal = mandated_refusal(snapshot, entry.target)
            if refusal is not None:
                raise ValueError(refusal)
        elif entry.target_kind == "category":
            blocked = set(profile.categories).union(*(s.block for s in profile.schedules))
            if entry.target not in blocked:
                raise ValueError(f"{entry.target!r} is not blocked for profile {entry.profile!r}")
        elif entry.target not in snapshot.services:  # a service: one some profile blocks
            raise ValueError(f"service {entry.target!r} is not blocked by this policy")
        async with self._overlay_lock:
            await asyncio.to_thread(add_entry, path, entry, snapshot.timezone)
        return await self.reload(cause="overlay")

    async def overlay_remove(self, entry_id: str) -> tuple[OverlayEntry, dict[str, Any]] | None:
        from resolver.store.overlay import remove_entry

        snapshot, path = self._overlay_snapshot()
        async with self._overlay_lock:
            gone = await asyncio.to_thread(remove_entry, path, entry_id, snapshot.timezone)
        if gone is None:
            return None
        return gone, await self.reload(cause="overlay")

    async def _overlay_expired(self) -> None:
        """The timer's call: drop the entries that ended from the file (each recorded in the
        audit trail), then reload so they stop applying."""
        from resolver.store.overlay import prune_expired

        snapshot = self.holder.current
        if snapshot is not None and snapshot.overlay is not None and self.bundles is None:
            async with self._overlay_lock:
                try:
                    gone = await asyncio.to_thread(
                        prune_expired, snapshot.overlay, self.wall(), snapshot.timezone
                    )
                except (OSError, ValueError) as exc:
                    log.error("overlay %s: cannot drop expired entries: %s", snapshot.overlay, exc)
                    gone = []
            if self.querylog is not None:
                for entry in gone:
                    text = entry.describe(snapshot.timezone)
                    record_overlay(self.querylog, "expired", "expiry", text, entry_id=entry.id)
        await self.reload(cause="expiry")

    def _overlay_snapshot(self) -> tuple[PolicySnapshot, Path]:
        """The snapshot and its overlay file, when this server may change that file; else
        ValueError."""
        snapshot = self._snapshot()
        if self.bundles is not None:
            raise ValueError(
                "this server takes its policy from a bundle: approve on the policy host"
            )
        if snapshot.overlay is None:
            raise ValueError("the policy has no `overlay:` file to record approvals in")
        return snapshot, snapshot.overlay

    def policy_snapshot(self) -> PolicySnapshot | None:
        return self.holder.current

    def _snapshot(self) -> PolicySnapshot:
        if self.holder.current is None:
            raise ValueError("no policy is loaded")
        return self.holder.current


def _valid_name(name: str) -> str:
    """`name` normalized (lower case, no trailing dot), or ValueError saying why not."""
    from resolver.lists.normalize import InvalidName, normalize_name

    try:
        return normalize_name(name)
    except InvalidName as exc:
        raise ValueError(f"invalid name {name!r}: {exc}") from None


class CountedRequests:
    """The request store as the web apps see it, counting for the reports what they decide:
    unblock requests approved or rejected, content reports received (counts only; the rows
    themselves have their own, shorter retention)."""

    def __init__(self, store: RequestStore, rollups: RollupFold) -> None:
        self._store = store
        self._rollups = rollups

    def add_unblock(self, host: str, profile: str, category: str | None, note: str) -> int | None:
        return self._store.add_unblock(host, profile, category, note)

    def list_unblock(
        self, status: str | None = "pending", limit: int = 200
    ) -> list[dict[str, Any]]:
        return self._store.list_unblock(status, limit)

    def get_unblock(self, request_id: int) -> dict[str, Any] | None:
        return self._store.get_unblock(request_id)

    def list_content_reports(self, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        return self._store.list_content_reports(limit, offset)

    def count_content_reports(self) -> int:
        return self._store.count_content_reports()

    def delete_content_reports(self, ids: Sequence[int]) -> int:
        return self._store.delete_content_reports(ids)

    def expire(self, unblock_before: float, reports_before: float) -> int:
        return self._store.expire(unblock_before, reports_before)

    def close(self) -> None:
        self._store.close()

    def set_unblock_status(self, request_id: int, status: str, decided_by: str = "admin") -> bool:
        done = self._store.set_unblock_status(request_id, status, decided_by)
        if done:
            self._rollups.note_request(f"unblock_{status}", time.time())
        return done

    def add_content_report(self, url: str, note: str) -> int | None:
        found = self._store.add_content_report(url, note)
        if found is not None:
            self._rollups.note_request("content_report", time.time())
        return found


def shrink_refusal(current: PolicySnapshot | None, new: PolicySnapshot, accept: bool) -> str | None:
    """Why `new` must not replace `current`: the mandated list would shrink below the
    policy's `lists.min_keep_ratio` of what is serving (an empty or truncated delivery, a
    deleted file with no last good copy). None when it may go live."""
    if current is None or accept:
        return None
    serving = current.list_sizes.get(MANDATED, 0)
    coming = new.list_sizes.get(MANDATED, 0)
    if serving and coming < serving * new.keep_ratio:
        return (
            f"the mandated list would shrink from {serving} to {coming} rules (below "
            f"lists.min_keep_ratio {new.keep_ratio:g} of what is serving): refused; if the "
            "authority really removed them, reload with accept_shrink=1 "
            "(POST /api/v1/reload?accept_shrink=1) or restart the resolver"
        )
    return None


def list_times(snapshot: PolicySnapshot) -> dict[str, float]:
    """Per category, when its newest list file changed (`lists update` replaces files whole)."""
    times: dict[str, float] = {}
    for source in snapshot.sources:
        try:
            mtime = os.stat(source["path"]).st_mtime
        except OSError:
            continue
        times[source["category"]] = max(mtime, times.get(source["category"], 0.0))
    return times


def worker_count(setting: int | str) -> int:
    """`workers: N`, or `auto`: the CPUs this process may run on."""
    if setting == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, int(setting))


def concrete_listeners(listen: tuple[tuple[str, int], ...]) -> list[tuple[str, int]]:
    """The DNS listeners with port 0 replaced by a port free for UDP and TCP, so that every
    worker binds the same one."""
    out = []
    for host, port in listen:
        if port == 0:
            port = _free_port(host)
        out.append((host, port))
    return out


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError(f"no free port on {host} for UDP and TCP")


async def serve(cfg: ServerConfig) -> int:
    sup = Supervisor(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first: a stop during start-up is a stop
        loop.add_signal_handler(sig, sup.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(sup.reload(cause="sighup")))
    sup.notifier.status("loading the policy")
    launching = loop.create_task(sup.pool.launch())
    errors = await sup.load_initial()
    if errors:
        with contextlib.suppress(Exception):
            await launching
        await sup.pool.abandon()
        for line in errors:
            print(line, file=sys.stderr)
        return 2
    try:
        await launching
        await sup.start()
    except (OSError, StartError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        await sup.stop()
        return 1
    # systemd: READY only now, with the policy loaded, every worker listening and SIGHUP
    # handled (`systemctl reload` right after start must not kill us); watchdog pings from
    # this loop, while the supervisor replaces a worker whose own loop stops reporting.
    sup.notifier.ready(sup.systemd_status())
    sup.notifier.start_watchdog()
    if sup.transfers is not None:
        await sup.transfers.start()  # pulls in the background; NOTIFYs reach it from now on
        sup.pool.tell({"op": "primaries", "addresses": sup.primaries()})
    await sup.stopping.wait()
    sup.notifier.stopping()
    log.warning("stopping: draining %d workers", len(sup.pool.slots))
    await sup.stop()
    sup.notifier.close()
    return 0
