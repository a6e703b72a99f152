"""Forwarding to upstream resolvers: random IDs and ports, reply checks, failover, coalescing.

Each upstream has a small pool of *connected* UDP sockets (the kernel then drops datagrams from
any other source address and port); each socket is replaced after `SOCKET_USES` queries so the
source port keeps changing, and every query gets a fresh 16-bit ID from the OS random source.
A reply is accepted only if its ID is one we are waiting for on that socket and its question is
ours; anything else is counted as spoofed and ignored while we keep waiting. A truncated reply
is retried over TCP. Identical queries in flight share one upstream exchange.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct
import time
from dataclasses import dataclass

from resolver.dns.message import question_matches
from resolver.dns.packet import CD, HEADER, QR, RD, TC
from resolver.dns.synth import OPT_DO, OPT_PLAIN
from resolver.stats import Stats, UpstreamStats

log = logging.getLogger(__name__)

SOCKET_USES = 200  # queries per UDP socket before it is replaced (new random source port)
POOL_SIZE = 4  # UDP sockets per upstream
MAX_TCP_MESSAGE = 65535
_LEN = struct.Struct("!H")


class UpstreamFailure(Exception):
    """No upstream produced a usable answer."""


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    timeout_ms: int = 1500  # per attempt
    attempts: int = 3  # tries per query, moving to the next upstream each time
    tcp_timeout_ms: int = 3000
    down_after: int = 3  # consecutive failures before an upstream is considered down


class _RandomIds:
    """16-bit IDs from os.urandom, fetched in blocks (one syscall per 1024 IDs)."""

    def __init__(self) -> None:
        self._ids: list[int] = []

    def next(self) -> int:
        if not self._ids:
            self._ids = list(struct.unpack("!1024H", os.urandom(2048)))
        return self._ids.pop()


class _UdpSocket(asyncio.DatagramProtocol):
    """One connected UDP socket to one upstream, with the queries waiting on it."""

    def __init__(self, stats: UpstreamStats) -> None:
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future[bytes], bytes, bytes]] = {}
        self.uses = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or not data[2] & 0x80:
            self.stats.spoofed += 1
            return
        qid = (data[0] << 8) | data[1]
        waiting = self.pending.get(qid)
        if waiting is None:
            self.stats.spoofed += 1
            return
        future, name_lower, type_class = waiting
        qend = 12 + len(name_lower) + 4
        if len(data) < qend or not question_matches(data, qend, name_lower, type_class):
            self.stats.spoofed += 1
            return
        del self.pending[qid]
        if not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: fail everything waiting here at once.
        for future, _, _ in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionRefusedError(str(exc)))
        self.pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error_received(exc or ConnectionError("socket closed"))


class Upstream:
    """One upstream server and what we know of its health."""

    def __init__(self, host: str, port: int, stats: UpstreamStats) -> None:
        self.host = host
        self.port = port
        self.stats = stats
        self.fails = 0
        self.down_until = 0.0
        self.srtt = 0.05  # smoothed round-trip time, seconds
        self.pool: list[_UdpSocket] = []

    def is_up(self, now: float) -> bool:
        return self.down_until <= now

    def record_success(self, rtt: float) -> None:
        self.fails = 0
        self.down_until = 0.0
        self.srtt = self.srtt * 0.8 + rtt * 0.2
        self.stats.healthy = True
        self.stats.latency_sum += rtt
        self.stats.latency_count += 1

    def record_failure(self, now: float, down_after: int) -> None:
        self.fails += 1
        self.stats.errors += 1
        if self.fails >= down_after:
            # Back off exponentially, capped at a minute; one query probes it when time is up.
            self.down_until = now + min(60.0, 2.0 ** (self.fails - down_after))
            self.stats.healthy = False


class Forwarder:
    def __init__(self, servers: list[tuple[str, int]], config: UpstreamConfig, stats: Stats):
        if not servers:
            raise ValueError("at least one upstream server is needed")
        self.config = config
        self.stats = stats
        self.upstreams: list[Upstream] = []
        for host, port in servers:
            label = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            ustats = stats.upstreams.setdefault(label, UpstreamStats(label))
            self.upstreams.append(Upstream(host, port, ustats))
        self._ids = _RandomIds()
        self._inflight: dict[tuple[bytes, bytes, bool, bool], asyncio.Future[bytes]] = {}
        self._closing = False

    async def resolve(self, name_lower: bytes, type_class: bytes, do: bool, cd: bool) -> bytes:
        """Reply bytes for the question; identical questions in flight share one exchange."""
        key = (name_lower, type_class, do, cd)
        shared = self._inflight.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            reply = await self._exchange(name_lower, type_class, do, cd)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else UpstreamFailure("stopped"))
            future.exception()  # mark retrieved: waiters may be gone
            raise
        else:
            future.set_result(reply)
            return reply
        finally:
            del self._inflight[key]

    def _order(self, now: float) -> list[Upstream]:
        up = [u for u in self.upstreams if u.is_up(now)]
        if not up:
            # Everything is marked down: try them anyway, soonest-to-recover first.
            return sorted(self.upstreams, key=lambda u: u.down_until)
        up.sort(key=lambda u: u.srtt)
        return up + [u for u in self.upstreams if not u.is_up(now)]

    async def _exchange(self, name_lower: bytes, type_class: bytes, do: bool, cd: bool) -> bytes:
        cfg = self.config
        order = self._order(time.monotonic())
        last_error = "no upstream tried"
        for attempt in range(cfg.attempts):
            upstream = order[attempt % len(order)]
            qid = self._ids.next()
            wire = (
                HEADER.pack(qid, RD | (CD if cd else 0), 1, 0, 0, 1)
                + name_lower
                + type_class
                + (OPT_DO if do else OPT_PLAIN)
            )
            started = time.monotonic()
            upstream.stats.queries += 1
            try:
                reply = await self._udp(upstream, qid, wire, name_lower, type_class)
                if reply[2] & (TC >> 8):
                    upstream.stats.truncated += 1
                    reply = await self._tcp(upstream, qid, wire, name_lower, type_class)
            except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, TimeoutError):
                    upstream.stats.timeouts += 1
                upstream.record_failure(time.monotonic(), cfg.down_after)
                last_error = f"{upstream.stats.address}: {type(exc).__name__}"
                continue
            upstream.record_success(time.monotonic() - started)
            return reply
        raise UpstreamFailure(last_error)

    async def _socket(self, upstream: Upstream) -> _UdpSocket:
        pool = upstream.pool
        if len(pool) < POOL_SIZE:
            sock = await self._open_socket(upstream)
            pool.append(sock)
            return sock
        index = random.randrange(POOL_SIZE)
        sock = pool[index]
        if sock.closed or sock.uses >= SOCKET_USES:
            old = sock
            sock = await self._open_socket(upstream)
            pool[index] = sock
            self._retire(old)
        return sock

    async def _open_socket(self, upstream: Upstream) -> _UdpSocket:
        loop = asyncio.get_running_loop()
        proto = _UdpSocket(upstream.stats)
        await loop.create_datagram_endpoint(
            lambda: proto, remote_addr=(upstream.host, upstream.port)
        )
        return proto

    def _retire(self, sock: _UdpSocket) -> None:
        """Close a used-up socket once its last pending query is answered or timed out."""
        if not sock.pending and sock.transport is not None:
            sock.transport.close()
        elif sock.transport is not None:
            asyncio.get_running_loop().call_later(
                self.config.timeout_ms / 1000 + 0.1, sock.transport.close
            )

    async def _udp(
        self, upstream: Upstream, qid: int, wire: bytes, name_lower: bytes, type_class: bytes
    ) -> bytes:
        sock = await self._socket(upstream)
        while qid in sock.pending:
            qid = self._ids.next()
            wire = _LEN.pack(qid) + wire[2:]
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        sock.pending[qid] = (future, name_lower, type_class)
        sock.uses += 1
        assert sock.transport is not None
        sock.transport.sendto(wire)
        try:
            return await asyncio.wait_for(future, self.config.timeout_ms / 1000)
        finally:
            sock.pending.pop(qid, None)

    async def _tcp(
        self, upstream: Upstream, qid: int, wire: bytes, name_lower: bytes, type_class: bytes
    ) -> bytes:
        async with asyncio.timeout(self.config.tcp_timeout_ms / 1000):
            reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
            try:
                writer.write(_LEN.pack(len(wire)) + wire)
                await writer.drain()
                while True:
                    (length,) = _LEN.unpack(await reader.readexactly(2))
                    reply = await reader.readexactly(length)
                    qend = 12 + len(name_lower) + 4
                    if (
                        length >= qend
                        and (reply[0] << 8 | reply[1]) == qid
                        and reply[2] & (QR >> 8)
                        and question_matches(reply, qend, name_lower, type_class)
                    ):
                        return reply
                    upstream.stats.spoofed += 1
            finally:
                writer.close()

    async def close(self) -> None:
        for upstream in self.upstreams:
            for sock in upstream.pool:
                if sock.transport is not None:
                    sock.transport.close()
            upstream.pool.clear()
