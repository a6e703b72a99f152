"""A DNS worker process: binds every DNS listener itself and answers queries.

The supervisor (`resolver.supervisor`) starts N of these. Each one binds the configured UDP and
TCP addresses with SO_REUSEPORT, so the kernel spreads clients over the workers and, when one
dies, over the others. A worker serves the snapshot the supervisor names (mapped read-only, so
the lists sit in the page cache once for all workers), swaps generations when the supervisor
commits one, pushes its counters every second, and sends query-log events in batches: the
supervisor holds the only query-log writer. It exits when the supervisor goes away.

With the counters go the roll-up counts since the last push (`resolver.rollup.Rollup`: taken
and reset, so each count travels once) and this process's resources and event-loop lag
(`resolver.procstats`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from datetime import tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from resolver import logs
from resolver.config import ServerConfig
from resolver.control import Channel, ChannelClosed, Message
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.fastanswers import FastAnswers
from resolver.dns.fastpath import PyFastPath, describe, new_fastpath
from resolver.dns.handler import Handler
from resolver.dns.proxygate import ProxyGate
from resolver.dns.ratelimit import RateLimiter, for_identities
from resolver.dns.server import InFlight, TcpServer
from resolver.dns.udp import UdpListener
from resolver.dns.upstream import Forwarder
from resolver.holder import SnapshotHolder
from resolver.policy.decide import decide
from resolver.policy.schema import DEFAULT_TIMEZONE
from resolver.procstats import LagProbe, ProcessSampler
from resolver.rollup import Rollup
from resolver.stats import Stats
from resolver.store.events import QueryEvent
from resolver.transfer.overlay import Increments

if TYPE_CHECKING:
    from resolver.dns.encrypted import EncryptedListeners

log = logging.getLogger("resolver.worker")
_DEFAULT_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
SHUTDOWN_GRACE = 5.0  # seconds in-flight queries get to finish on SIGTERM
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024  # bytes; see grow_receive_buffer
STATS_EVERY = 1.0  # seconds between counter pushes to the supervisor
LOG_EVERY = 0.2  # seconds between query-log batches
LOG_BATCH = 512  # events per batch at most


class LogRelay:
    """The query-log sink of a worker: events go to the supervisor's writer in batches.

    `submit` is what the DNS path calls: an append, never blocking. When `limit` events wait
    (the supervisor is not reading), new ones are dropped and counted, as the writer does."""

    def __init__(self, channel: Channel, stats: Stats, limit: int) -> None:
        self.channel = channel
        self.stats = stats
        self.limit = limit
        self.waiting: list[QueryEvent] = []

    def submit(self, event: QueryEvent) -> None:
        if len(self.waiting) >= self.limit:
            self.stats.querylog_dropped += 1
            return
        self.waiting.append(event)

    def flush(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:LOG_BATCH], self.waiting[LOG_BATCH:]
            self.channel.notify({"op": "log", "events": batch})


class NotifyRelay:
    """The handler's NOTIFY sink in a worker: a NOTIFY goes up to the supervisor, whose transfer
    manager knows the primaries, zones and keys, and its answer comes back. Only while some
    zone is transferred (the supervisor says which primaries there are)."""

    TIMEOUT = 5.0  # seconds the supervisor may take to answer

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.primaries: frozenset[str] = frozenset()

    def wants(self, client: str) -> bool:
        return bool(self.primaries)

    async def notify(self, data: bytes, client: str) -> bytes | None:
        try:
            reply = await self.channel.request(
                {"op": "notify", "data": data, "client": client}, self.TIMEOUT
            )
        except (ChannelClosed, TimeoutError):
            return None
        answer = reply.get("answer")
        return answer if isinstance(answer, bytes) else None


class Worker:
    """One worker's DNS side: handler, cache, forwarder, listeners and its snapshot holder."""

    def __init__(self, cfg: ServerConfig, number: int, channel: Channel) -> None:
        self.cfg = cfg
        self.number = number
        self.channel = channel
        self.stats = Stats()
        self.holder = SnapshotHolder(self.stats)
        self.increments = Increments()  # zone-transfer IXFRs not compiled in yet
        self.holder.transform = self.increments.apply
        self.notify = NotifyRelay(channel)
        self.relay = LogRelay(channel, self.stats, cfg.querylog.queue_size)
        self.rollup = Rollup() if cfg.querylog.enabled else None
        self.lag = LagProbe()
        self.sampler = ProcessSampler()
        addresses = [ipaddress.ip_address(a) for a in blockpage_addresses(cfg)]
        self.gate = ProxyGate(cfg.proxy_protocol_from, self.stats)
        limiter = RateLimiter(cfg.ratelimit) if cfg.ratelimit.enabled else None
        udp = cfg.udp
        self.fastpath = new_fastpath(udp.batch, udp.fast_answers, udp.fast_clients)
        self.fast = FastAnswers(
            self.fastpath,
            self.holder if cfg.serves_policy else None,
            clients=udp.fast_clients,
            named=udp.fast_answers,
            limiter=limiter,
            balancers=self.gate.trusted,
            names=self.rollup is not None,  # blocked names matter to the roll-up alone
        )
        compiled = not isinstance(self.fastpath, PyFastPath)
        self.datapath = describe(compiled, udp.batch, udp.fast_answers)
        self.handler = Handler(
            acl=AccessList(cfg.access),
            cache=AnswerCache(cfg.cache),
            forwarder=Forwarder(list(cfg.upstreams), cfg.upstream, self.stats),
            stats=self.stats,
            policy=self.holder if cfg.serves_policy else None,
            decide=decide if cfg.serves_policy else None,
            querylog=self.relay if cfg.querylog.enabled else None,
            rollup=self.rollup,
            blockpage_v4=[a.packed for a in addresses if a.version == 4],
            blockpage_v6=[a.packed for a in addresses if a.version == 6],
            identity=f"safe-resolver worker {number}",
            limiter=limiter,
            identity_limiter=identity_limiter(cfg),
            fast=self.fast,
        )
        self.handler.notify_sink = self.notify
        self.inflight = InFlight()
        self.tcp = TcpServer(self.handler, self.inflight, self.stats, cfg.tcp, self.gate)
        self.udp_listeners: list[UdpListener] = []
        self.tcp_servers: list[asyncio.AbstractServer] = []
        self.stopping = asyncio.Event()
        self.encrypted = encrypted_listeners(self)

    async def start(self, listen: list[tuple[str, int]]) -> list[str]:
        """Bind every listener (SO_REUSEPORT beside the other workers); what was bound."""
        loop = asyncio.get_running_loop()
        bound = []
        for host, port in listen:
            sock = udp_socket(host, port)
            listener = UdpListener(
                sock, self.fastpath, self.handler, self.inflight, self.stats, self.gate
            )
            self.udp_listeners.append(listener)
            server = await loop.create_server(self.tcp, sock=tcp_socket(host, port), backlog=1024)
            self.tcp_servers.append(server)
            bound.append(f"{host}:{port}")
        if self.encrypted is not None:
            bound += await self.encrypted.start(self.number, tcp_socket, udp_socket)
        return bound

    async def set_increments(self, pending: list[Any]) -> None:
        """Serve the supervisor's pending IXFR increments beside the mandated index."""
        self.increments.pending = list(pending)
        await self.holder.in_thread(self.increments.compose)
        self.holder.refresh()
        self.fast.clear()  # the mandated list changed: no answer of the old one after

    async def handle(self, message: Message) -> Message | None:
        """The supervisor's requests."""
        op = message.get("op")
        if op == "load":
            await self.holder.prepare(message["generation"], message["path"])
            return {}
        if op == "commit":
            generation = message["generation"]
            if not self.holder.commit(generation):  # started after the prepare round
                await self.holder.prepare(generation, message["path"])
                self.holder.commit(generation)
            self.fast.clear()  # in the same turn of the loop: no answer of the old policy after
            return {"generation": generation}
        if op == "abort":
            self.holder.abort(message.get("generation"))
            return {}
        if op == "flush":
            count = self.handler.cache.flush(message.get("name"))
            self.fast.clear()
            self.stats.cache_size = len(self.handler.cache)
            return {"flushed": count}
        if op == "stats":
            self.collect_stats()
            return {"stats": self.stats}
        if op == "warm":  # for a worker replacing one that died (supervisor.WorkerPool._spawn)
            cache = self.handler.cache
            return {"entries": cache.hottest(message["limit"], message["bytes"], time.monotonic())}
        if op == "tls":
            return reload_tls(self)
        if op == "primaries":
            self.notify.primaries = frozenset(message["addresses"])
            return None
        if op == "increments":
            await self.set_increments(message["pending"])
            return None
        if op == "stop":
            self.stopping.set()
            return {}
        return {"ok": False, "error": f"unknown request {op!r}"}

    def zone(self) -> tzinfo:
        """The time zone roll-up days are cut in: the policy's."""
        snapshot = self.holder.current
        return snapshot.timezone if snapshot is not None else _DEFAULT_ZONE

    async def push_loop(self) -> None:
        """Counters every STATS_EVERY seconds and query-log batches every LOG_EVERY."""
        next_stats = 0.0
        while not self.stopping.is_set():
            if self.rollup is not None:
                self.rollup.clock(time.time(), self.zone())
            self.relay.flush()
            now = time.monotonic()
            if now >= next_stats:
                self.push_stats()
                next_stats = now + STATS_EVERY
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOG_EVERY):
                    await self.stopping.wait()

    def push_stats(self) -> None:
        self.collect_stats()
        self.stats.processes = {f"worker-{self.number}": self.sampler.sample(self.lag.take())}
        message = {"op": "stats", "stats": self.stats}
        if self.rollup is not None:
            self.rollup.clock(time.time(), self.zone())
            message["rollup"] = self.rollup.take()
        self.channel.notify(message)

    def collect_stats(self) -> None:
        """Bring the counters up to date: the fast path's answers, the cache's size."""
        self.fast.watch_clock()
        self.fast.harvest_into(self.stats, self.rollup)
        self.stats.cache_size = len(self.handler.cache)

    async def stop(self) -> None:
        for server in self.tcp_servers:
            server.close()
        self.tcp.close_idle()
        if self.encrypted is not None:
            self.encrypted.close()
        await self.inflight.drain(SHUTDOWN_GRACE)
        for listener in self.udp_listeners:
            listener.close()
        for server in self.tcp_servers:
            await server.wait_closed()
        if self.encrypted is not None:
            await self.encrypted.stop()
        self.relay.flush()
        self.push_stats()
        await self.channel.drain()
        self.holder.close()


# -- encrypted DNS (resolver.dns.encrypted): DoT, DoH, DoQ beside the plain listeners ------------


def identity_limiter(cfg: ServerConfig) -> RateLimiter | None:
    """Rate limits per encrypted-DNS identity (a device's token), when both are on."""
    if not (cfg.ratelimit.enabled and cfg.encrypted.enabled):
        return None
    return RateLimiter(for_identities(cfg.ratelimit))


def encrypted_listeners(worker: Worker) -> EncryptedListeners | None:
    if not worker.cfg.encrypted.enabled:
        return None
    from resolver.dns.encrypted import EncryptedListeners

    return EncryptedListeners(
        worker.cfg.encrypted, worker.cfg.tcp, worker.handler, worker.inflight, worker.stats
    )


def reload_tls(worker: Worker) -> Message:
    """The supervisor's reload: read the certificate and key again for new connections."""
    if worker.encrypted is None:
        return {}
    try:
        worker.encrypted.reload_tls()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return {"ok": False, "error": f"certificate: {exc}"}
    return {}


def udp_socket(host: str, port: int) -> socket.socket:
    """A bound UDP socket sharing its address with the other workers (SO_REUSEPORT); IPv6
    ones are v6-only so "[::]:53" can sit beside "0.0.0.0:53"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        grow_receive_buffer(sock)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def tcp_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket sharing its address with the other workers (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def grow_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst of queries while the loop is busy (a reload, a GC pass).

    The kernel default (~200 kB, some 2,000 queries) overflows in a few milliseconds at ISP rates
    and the kernel then drops queries silently. As root SO_RCVBUFFORCE passes net.core.rmem_max.
    """
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:
            continue


def blockpage_addresses(cfg: ServerConfig) -> list[str]:
    """Where block answers point: `blockpage.address`, else the page's own specific listen IPs."""
    if cfg.blockpage.addresses:
        return list(cfg.blockpage.addresses)
    listens = [*cfg.blockpage.listen, *cfg.blockpage.https_listen]
    return sorted({host for host, _ in listens if not ipaddress.ip_address(host).is_unspecified})


# The cyclic collector's thresholds in a worker. Each forwarded query keeps a dozen containers
# alive until its reply (thousands while many are in flight), and with Python's default (a
# collection every 700 allocations) the collector walked them every few dozen queries: 17 % of a
# worker's CPU on forwarded misses (perf). Collecting every 50,000 allocations cut a miss's CPU
# by 10-20 % (bench/README.md, "Profile"); a young collection then takes about a millisecond.
GC_THRESHOLDS = (50_000, 20, 20)


def worker_command(args: argparse.Namespace) -> int:
    """`safe-resolver serve-worker --control-fd FD`: started by the supervisor, never by hand."""
    import uvloop  # the serving processes' event loop

    gc.set_threshold(*GC_THRESHOLDS)
    return uvloop.run(run(args.control_fd))


async def run(control_fd: int) -> int:
    sock = socket.socket(fileno=control_fd)
    hello: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    worker: Worker | None = None

    async def handle(message: Message) -> Message | None:
        if message.get("op") == "hello":
            if not hello.done():
                hello.set_result(message)
            return None
        if worker is None:
            return {"ok": False, "error": "starting"}
        return await worker.handle(message)

    channel = await Channel.over(sock, handle)
    reading = asyncio.get_running_loop().create_task(channel.run())
    first = await _first(hello, channel)
    if first is None:
        return 1
    cfg: ServerConfig = first["config"]
    number = int(first["worker"])
    logs.setup(cfg.log_level, f"worker-{number}")
    worker = Worker(cfg, number, channel)
    try:
        worker.notify.primaries = frozenset(first.get("primaries") or ())
        if first.get("increments"):
            await worker.set_increments(first["increments"])
        if first.get("path"):
            await worker.holder.prepare(first["generation"], first["path"], starting=True)
            worker.holder.commit(first["generation"])
        if worker.rollup is not None:
            worker.rollup.clock(time.time(), worker.zone())
        if first.get("warm"):  # a sibling's cache, taken before the kernel sends us queries
            worker.handler.cache.adopt(first["warm"])
            worker.stats.cache_size = len(worker.handler.cache)
        listening = await worker.start(first["listen"])
    except Exception as exc:
        channel.notify({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
        await channel.drain()
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopping.set)
    channel.notify(
        {"op": "ready", "pid": os.getpid(), "listening": listening, "datapath": worker.datapath}
    )
    pushing = loop.create_task(worker.push_loop())
    probing = loop.create_task(worker.lag.run(worker.stopping))
    gone = loop.create_task(channel.closed.wait())
    stopping = loop.create_task(worker.stopping.wait())
    await asyncio.wait((gone, stopping), return_when=asyncio.FIRST_COMPLETED)
    worker.stopping.set()
    await pushing
    probing.cancel()
    await worker.stop()
    channel.close()
    reading.cancel()
    return 0


async def _first(hello: asyncio.Future[Message], channel: Channel) -> Message | None:
    """The supervisor's hello (config, worker number, snapshot, listeners), or None if it left."""
    gone = asyncio.get_running_loop().create_task(channel.closed.wait())
    await asyncio.wait((hello, gone), return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not hello.done():
        print("serve-worker: the supervisor went away before saying hello", file=sys.stderr)
        return None
    return hello.result()
