"""A DNS worker process: binds every DNS listener itself and answers queries.

The supervisor (`resolver.supervisor`) starts N of these. Each one binds the configured UDP and
TCP addresses with SO_REUSEPORT, so the kernel spreads clients over the workers and, when one
dies, over the others. A worker serves the snapshot the supervisor names (mapped read-only, so
the lists sit in the page cache once for all workers), swaps generations when the supervisor
commits one, pushes its counters every second, and sends query-log events in batches: the
supervisor holds the only query-log writer. It exits when the supervisor goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import time

from resolver import logs
from resolver.config import ServerConfig
from resolver.control import Channel, Message
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.fastanswers import FastAnswers
from resolver.dns.fastpath import PyFastPath, describe, new_fastpath
from resolver.dns.handler import Handler
from resolver.dns.server import InFlight, TcpServer
from resolver.dns.udp import UdpListener
from resolver.dns.upstream import Forwarder
from resolver.holder import SnapshotHolder
from resolver.policy.decide import decide
from resolver.stats import Stats
from resolver.store.events import QueryEvent

log = logging.getLogger("resolver.worker")
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


class Worker:
    """One worker's DNS side: handler, cache, forwarder, listeners and its snapshot holder."""

    def __init__(self, cfg: ServerConfig, number: int, channel: Channel) -> None:
        self.cfg = cfg
        self.number = number
        self.channel = channel
        self.stats = Stats()
        self.holder = SnapshotHolder(self.stats)
        self.relay = LogRelay(channel, self.stats, cfg.querylog.queue_size)
        addresses = [ipaddress.ip_address(a) for a in blockpage_addresses(cfg)]
        udp = cfg.udp
        self.fastpath = new_fastpath(udp.batch, udp.fast_answers, udp.fast_clients)
        policy = self.holder if cfg.policy is not None else None
        self.fast = FastAnswers(self.fastpath, policy, clients=udp.fast_clients)
        compiled = not isinstance(self.fastpath, PyFastPath)
        self.datapath = describe(compiled, udp.batch, udp.fast_answers)
        self.handler = Handler(
            acl=AccessList(cfg.access),
            cache=AnswerCache(cfg.cache),
            forwarder=Forwarder(list(cfg.upstreams), cfg.upstream, self.stats),
            stats=self.stats,
            policy=self.holder if cfg.policy is not None else None,
            decide=decide if cfg.policy is not None else None,
            querylog=self.relay if cfg.querylog.enabled else None,
            blockpage_v4=[a.packed for a in addresses if a.version == 4],
            blockpage_v6=[a.packed for a in addresses if a.version == 6],
            identity=f"safe-resolver worker {number}",
            fast=self.fast,
        )
        self.inflight = InFlight()
        self.tcp = TcpServer(self.handler, self.inflight, self.stats, cfg.tcp)
        self.udp_listeners: list[UdpListener] = []
        self.tcp_servers: list[asyncio.AbstractServer] = []
        self.stopping = asyncio.Event()

    async def start(self, listen: list[tuple[str, int]]) -> list[str]:
        """Bind every listener (SO_REUSEPORT beside the other workers); what was bound."""
        loop = asyncio.get_running_loop()
        bound = []
        for host, port in listen:
            sock = udp_socket(host, port)
            listener = UdpListener(sock, self.fastpath, self.handler, self.inflight, self.stats)
            self.udp_listeners.append(listener)
            server = await loop.create_server(self.tcp, sock=tcp_socket(host, port), backlog=1024)
            self.tcp_servers.append(server)
            bound.append(f"{host}:{port}")
        return bound

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
        if op == "stop":
            self.stopping.set()
            return {}
        return {"ok": False, "error": f"unknown request {op!r}"}

    async def push_loop(self) -> None:
        """Counters every STATS_EVERY seconds and query-log batches every LOG_EVERY."""
        next_stats = 0.0
        while not self.stopping.is_set():
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
        self.channel.notify({"op": "stats", "stats": self.stats})

    def collect_stats(self) -> None:
        """Bring the counters up to date: the fast path's answers, the cache's size."""
        self.fast.watch_clock()
        self.fast.harvest_into(self.stats)
        self.stats.cache_size = len(self.handler.cache)

    async def stop(self) -> None:
        for server in self.tcp_servers:
            server.close()
        self.tcp.close_idle()
        await self.inflight.drain(SHUTDOWN_GRACE)
        for listener in self.udp_listeners:
            listener.close()
        for server in self.tcp_servers:
            await server.wait_closed()
        self.relay.flush()
        self.push_stats()
        await self.channel.drain()
        self.holder.close()


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


def worker_command(args: argparse.Namespace) -> int:
    """`safe-resolver serve-worker --control-fd FD`: started by the supervisor, never by hand."""
    import uvloop  # the serving processes' event loop

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
        if first.get("path"):
            await worker.holder.prepare(first["generation"], first["path"])
            worker.holder.commit(first["generation"])
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
    gone = loop.create_task(channel.closed.wait())
    stopping = loop.create_task(worker.stopping.wait())
    await asyncio.wait((gone, stopping), return_when=asyncio.FIRST_COMPLETED)
    worker.stopping.set()
    await pushing
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
