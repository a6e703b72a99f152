"""Forwarding to upstream resolvers: random IDs and ports, reply checks, failover, coalescing.

Sockets. Each upstream has a pool of POOL_SIZE (8) *connected* UDP sockets, each bound by the
kernel to its own random ephemeral port (and the kernel drops datagrams from any other address
or port). A query goes out on the socket its random 16-bit ID (from the OS random source) picks;
a socket carries many queries at once and hands each reply to the query with that ID and
question: anything else is counted as spoofed and ignored while we keep waiting. A socket takes
at most SOCKET_QUERIES (100) queries and new ones for at most SOCKET_SECONDS (5 s); then it is
retired, closed when its last query is done, and a fresh socket on a fresh random port takes its
place. So RFC 5452's odds stay what a socket per query gives (a forged reply must guess the
port its target query waits on, among ~28k, and the ID and question), while no port stays open
long enough to be found by side channels (SADDNS); and the miss path pays one send instead of
socket, connect, register, send, unregister and close per query (1.2x the forwarded q/s, see
bench/README.md).

Deadline. Each exchange has one deadline, the client's time budget (`query_budget_ms`), shared
by every attempt and by the TCP retry of a truncated reply. An attempt that has not been
answered after `timeout_ms` is followed by the next one (to the next upstream), but keeps
listening: a late reply to any attempt of the exchange is as good as a prompt one. The exchange
fails when the last attempt has had its `timeout_ms` too, or at the deadline, whichever comes
first. REFUSED or SERVFAIL, a refused port or a broken TCP reply move on to the next attempt at
once. Identical queries in flight share one upstream exchange.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from functools import partial

from resolver.dns.message import question_matches
from resolver.dns.packet import CD, HEADER, QR, RD, TC
from resolver.dns.settings import UpstreamConfig
from resolver.dns.synth import OPT_DO, OPT_PLAIN
from resolver.stats import Stats, UpstreamStats

log = logging.getLogger(__name__)

_LEN = struct.Struct("!H")
POOL_SIZE = 8  # connected UDP sockets per upstream, each on its own random port
SOCKET_QUERIES = 100  # queries one socket carries before it is replaced
SOCKET_SECONDS = 5.0  # seconds one socket takes new queries before it is replaced
SOCKET_RCVBUF = 1 << 20  # a burst of replies for many queries lands on one socket
_TRY_NEXT = frozenset((2, 5))  # SERVFAIL, REFUSED


class UpstreamFailure(Exception):
    """No upstream produced a usable answer within the time budget."""


class _RandomIds:
    """16-bit IDs from os.urandom, fetched in blocks (one syscall per 1024 IDs)."""

    def __init__(self) -> None:
        self._ids: list[int] = []

    def next(self) -> int:
        if not self._ids:
            self._ids = list(struct.unpack("!1024H", os.urandom(2048)))
        return self._ids.pop()


class Upstream:
    """One upstream server and what we know of its health."""

    def __init__(self, host: str, port: int, stats: UpstreamStats) -> None:
        self.host = host
        self.port = port
        self.stats = stats
        self.fails = 0
        self.down_until = 0.0
        self.srtt = 0.05  # smoothed round-trip time, seconds
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.pool: list[_UdpSocket | None] = [None] * POOL_SIZE

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


class _Attempt:
    """One query sent to one upstream, waiting on one of its pooled sockets."""

    __slots__ = ("exchange", "qid", "sent", "sock", "timed_out", "upstream", "wire")

    def __init__(self, upstream: Upstream, qid: int, wire: bytes, exchange: _Exchange) -> None:
        self.upstream = upstream
        self.qid = qid
        self.wire = wire
        self.exchange = exchange
        self.sock: _UdpSocket | None = None
        self.sent = time.monotonic()
        self.timed_out = False  # counted as a timeout already (it may still answer late)

    def release(self) -> None:
        """Stop waiting for a reply (answered or abandoned)."""
        if self.sock is not None:
            self.sock.forget(self)
            self.sock = None


class _UdpSocket:
    """A connected UDP socket to one upstream that carries many queries, told apart by ID.

    `connect` binds it to a random ephemeral port (the kernel's choice) and makes the kernel drop
    datagrams from any other address or port. It takes at most SOCKET_QUERIES queries and new
    ones for at most SOCKET_SECONDS, then is retired and closed once its last query is done.
    """

    __slots__ = ("_loop", "expires", "fd", "pending", "retired", "sock", "stats", "uses_left")

    def __init__(self, upstream: Upstream, loop: asyncio.AbstractEventLoop, now: float) -> None:
        sock = socket.socket(upstream.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RCVBUF)
            sock.connect((upstream.host, upstream.port))
            loop.add_reader(sock.fileno(), self._readable)
        except OSError:
            sock.close()
            raise
        self._loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.stats = upstream.stats
        self.pending: dict[int, _Attempt] = {}  # by query ID
        self.uses_left = SOCKET_QUERIES
        self.expires = now + SOCKET_SECONDS
        self.retired = False
        loop.call_later(SOCKET_SECONDS, self.retire)

    def usable(self, now: float) -> bool:
        return not self.retired and self.uses_left > 0 and now < self.expires

    def send(self, attempt: _Attempt) -> None:
        self.uses_left -= 1
        self.sock.send(attempt.wire)
        self.pending[attempt.qid] = attempt
        attempt.sock = self

    def forget(self, attempt: _Attempt) -> None:
        if self.pending.get(attempt.qid) is attempt:
            del self.pending[attempt.qid]
        if self.retired and not self.pending:
            self._close()

    def retire(self) -> None:
        """Take no new queries; close once the ones in flight are done."""
        if not self.retired:
            self.retired = True
            if not self.pending:
                self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            self._loop.remove_reader(self.fd)
            self.sock.close()
            self.fd = -1

    def _readable(self) -> None:
        """Read every waiting datagram; each that is really an answer goes to its query."""
        pending = self.pending
        while self.fd >= 0:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                break
            except OSError as exc:
                # ICMP port unreachable and the like: no telling which query it was for.
                failed = list(pending.values())
                pending.clear()
                for attempt in failed:
                    attempt.sock = None
                    attempt.exchange.deliver(attempt, exc)
                break
            waiting = pending.get(data[0] << 8 | data[1]) if len(data) >= 12 else None
            if waiting is not None:
                qend = 12 + len(waiting.exchange.name_lower) + 4
                if (
                    len(data) >= qend
                    and data[2] & 0x80
                    and question_matches(
                        data, qend, waiting.exchange.name_lower, waiting.exchange.type_class
                    )
                ):
                    del pending[waiting.qid]
                    waiting.sock = None
                    waiting.exchange.deliver(waiting, data)
                    continue
            self.stats.spoofed += 1
        if self.retired and not pending:
            self._close()


# What an exchange ends with: (the reply, "") or (None, why no upstream gave a usable one).
Done = Callable[[bytes | None, str], None]


class _Exchange:
    """One question to the upstreams, driven by callbacks: the sockets' readers deliver replies,
    one timer wakes it for the next attempt or the end, and it calls every asker's `Done` once.

    Why not a coroutine: no task, future or coroutine chain per forwarded query (about 4 % of a
    miss's CPU in the pure-Python build, bench/README.md), and plain methods are what the mypyc
    build compiles best. Only a truncated reply's TCP retry runs as a task; replies that arrive
    meanwhile wait for it to end.
    """

    __slots__ = (
        "deadline",
        "fallback",
        "finished",
        "flags",
        "fwd",
        "held",
        "key",
        "last_error",
        "loop",
        "name_lower",
        "next_send",
        "order",
        "pending",
        "question",
        "sent",
        "tcp",
        "timer",
        "timer_at",
        "type_class",
        "waiting",
    )

    def __init__(
        self,
        fwd: Forwarder,
        loop: asyncio.AbstractEventLoop,
        key: _Key,
        deadline: float,
        done: Done,
    ) -> None:
        name_lower, type_class, do, cd = key
        self.fwd = fwd
        self.loop = loop
        self.key = key
        self.name_lower = name_lower
        self.type_class = type_class
        self.flags = RD | (CD if cd else 0)
        self.question = name_lower + type_class + (OPT_DO if do else OPT_PLAIN)
        self.deadline = deadline
        self.order = fwd._order(time.monotonic())
        self.pending: list[_Attempt] = []
        self.sent = 0
        self.next_send = 0.0
        self.fallback: bytes | None = None  # a REFUSED or SERVFAIL, if nobody does better
        self.last_error = "no upstream answered in time"
        self.waiting = [done]
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.tcp: asyncio.Task[bytes] | None = None
        self.held: list[tuple[_Attempt, bytes | OSError]] = []  # came during the TCP retry
        self.finished = False

    def step(self) -> None:
        """Send the attempt that is due, or end; then sleep until the next thing to do.

        An attempt not answered after `timeout_ms` is followed by the next one (to the next
        upstream) but keeps listening; the exchange fails when the last attempt has had its
        `timeout_ms` too, or at the deadline, whichever comes first."""
        fwd = self.fwd
        cfg = fwd.config
        pending = self.pending
        while True:
            now = time.monotonic()
            if now >= self.deadline or (self.sent == cfg.attempts and now >= self.next_send):
                self._give_up(now)  # the budget is spent, or the last attempt had its time too
                return
            if self.sent < cfg.attempts and (not pending or now >= self.next_send):
                retry = cfg.timeout_ms / 1000
                for late in pending:
                    if not late.timed_out and now - late.sent >= retry:
                        fwd._timed_out(late, now)
                upstream = self.order[self.sent % len(self.order)]
                self.sent += 1
                self.next_send = now + retry
                try:
                    pending.append(fwd._send(upstream, self))
                except OSError as exc:
                    self.last_error = fwd._failed(upstream, exc)
                continue
            if not pending:
                self._give_up(now)  # every attempt failed at once and none is left
                return
            break
        at = min(self.next_send, self.deadline)
        if self.timer is not None:
            if self.timer_at == at:
                return
            self.timer.cancel()
        self.timer_at = at
        self.timer = self.loop.call_later(at - now, self._wake)

    def deliver(self, attempt: _Attempt, result: bytes | OSError) -> None:
        """A reply to one of the attempts, or the socket error that ended it."""
        if self.finished:
            return
        if self.tcp is not None:
            self.held.append((attempt, result))
            return
        self._handle(attempt, result)
        if self._idle():
            self.step()

    def _idle(self) -> bool:
        """Neither finished nor waiting for a TCP retry. (A method, not an inline test: after
        `self.tcp = None` mypy, and so a mypyc build, would take `self.tcp` to stay None across
        the calls that may start a retry.)"""
        return not self.finished and self.tcp is None

    def _wake(self) -> None:
        self.timer = None
        if self._idle():
            self.step()

    def _handle(self, attempt: _Attempt, result: bytes | OSError) -> None:
        fwd = self.fwd
        self.pending.remove(attempt)
        attempt.release()
        upstream = attempt.upstream
        if isinstance(result, OSError):
            self._failed(upstream, result)
            return
        if result[2] & (TC >> 8):
            upstream.stats.truncated += 1
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            tcp = fwd._tcp(upstream, attempt.qid, attempt.wire, self.name_lower, self.type_class,
                           self.deadline)  # fmt: skip
            self.tcp = self.loop.create_task(tcp)
            self.tcp.add_done_callback(partial(self._tcp_done, attempt))
            return
        self._replied(attempt, result)

    def _failed(self, upstream: Upstream, exc: BaseException) -> None:
        self.last_error = self.fwd._failed(upstream, exc)
        if self.sent < self.fwd.config.attempts:
            self.next_send = 0.0  # the next attempt goes out at once

    def _replied(self, attempt: _Attempt, reply: bytes) -> None:
        attempt.upstream.record_success(time.monotonic() - attempt.sent)
        if reply[3] & 0x0F in _TRY_NEXT and self.sent < self.fwd.config.attempts:
            # This server will not (REFUSED) or could not (SERVFAIL) answer: ask the next, and
            # fall back to this reply if nobody does better.
            self.fallback = reply
            self.next_send = 0.0
            return
        self._finish(reply, "")

    def _tcp_done(self, attempt: _Attempt, task: asyncio.Task[bytes]) -> None:
        self.tcp = None
        if self.finished:
            return
        exc = None if task.cancelled() else task.exception()
        if task.cancelled() or isinstance(
            exc, (TimeoutError, OSError, asyncio.IncompleteReadError)
        ):
            self._failed(attempt.upstream, exc or TimeoutError())
        elif exc is not None:
            log.error("TCP retry failed", exc_info=exc)
            self._failed(attempt.upstream, exc)
        else:
            self._replied(attempt, task.result())
        while self.held and self._idle():
            self._handle(*self.held.pop(0))
        if self._idle():
            self.step()

    def _give_up(self, now: float) -> None:
        for attempt in self.pending:
            if not attempt.timed_out:
                self.fwd._timed_out(attempt, now)
        self._finish(self.fallback, self.last_error)

    def _finish(self, reply: bytes | None, error: str) -> None:
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for attempt in self.pending:
            attempt.release()
        self.pending.clear()
        inflight = self.fwd._inflight
        if inflight.get(self.key) is self:
            del inflight[self.key]
        for done in self.waiting:
            try:
                done(reply, error)
            except Exception:  # one asker's bug must not cost the others their answer
                self.fwd.stats.dropped["internal-error"] += 1
                log.exception("answering a forwarded query failed")


_Key = tuple[bytes, bytes, bool, bool]  # name (lower case, wire form), type and class, DO, CD


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
        self._inflight: dict[_Key, _Exchange] = {}

    def start(
        self,
        name_lower: bytes,
        type_class: bytes,
        do: bool,
        cd: bool,
        deadline: float,
        done: Done,
    ) -> None:
        """Ask upstream for the question; `done` gets the reply by `deadline`
        (time.monotonic()), or None and why there is none. It is called once, from the event
        loop, possibly before this returns (when every attempt fails at once).

        Identical questions in flight share one exchange, which ends by the first asker's
        deadline, so never after a later one's.
        """
        key = (name_lower, type_class, do, cd)
        shared = self._inflight.get(key)
        if shared is not None:
            shared.waiting.append(done)
            return
        exchange = _Exchange(self, asyncio.get_running_loop(), key, deadline, done)
        self._inflight[key] = exchange
        exchange.step()

    async def resolve(
        self, name_lower: bytes, type_class: bytes, do: bool, cd: bool, deadline: float
    ) -> bytes:
        """`start`, awaited: the reply bytes, or UpstreamFailure."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def done(reply: bytes | None, error: str) -> None:
            if future.done():  # the asker was cancelled
                return
            if reply is None:
                future.set_exception(UpstreamFailure(error))
            else:
                future.set_result(reply)

        self.start(name_lower, type_class, do, cd, deadline, done)
        return await future

    def _order(self, now: float) -> list[Upstream]:
        if len(self.upstreams) == 1:
            return self.upstreams  # nothing to order (most school boxes)
        up = [u for u in self.upstreams if u.is_up(now)]
        if not up:
            # Everything is marked down: try them anyway, soonest-to-recover first.
            return sorted(self.upstreams, key=lambda u: u.down_until)
        up.sort(key=lambda u: u.srtt)
        return up + [u for u in self.upstreams if not u.is_up(now)]

    def _send(self, upstream: Upstream, exchange: _Exchange) -> _Attempt:
        """Send one attempt on one of the upstream's sockets; its reply goes to `exchange`."""
        upstream.stats.queries += 1
        qid = self._ids.next()
        slot = qid % POOL_SIZE
        sock = upstream.pool[slot]
        now = time.monotonic()
        if sock is None or not sock.usable(now):
            if sock is not None:
                sock.retire()
            sock = upstream.pool[slot] = _UdpSocket(upstream, exchange.loop, now)
        while qid in sock.pending:  # an ID this socket is already waiting for: pick another
            qid = self._ids.next()
        wire = HEADER.pack(qid, exchange.flags, 1, 0, 0, 1) + exchange.question
        attempt = _Attempt(upstream, qid, wire, exchange)
        sock.send(attempt)
        return attempt

    def _failed(self, upstream: Upstream, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            upstream.stats.timeouts += 1
        upstream.record_failure(time.monotonic(), self.config.down_after)
        return f"{upstream.stats.address}: {type(exc).__name__}"

    def _timed_out(self, attempt: _Attempt, now: float) -> None:
        attempt.timed_out = True
        attempt.upstream.stats.timeouts += 1
        attempt.upstream.record_failure(now, self.config.down_after)

    async def _tcp(
        self,
        upstream: Upstream,
        qid: int,
        wire: bytes,
        name_lower: bytes,
        type_class: bytes,
        deadline: float,
    ) -> bytes:
        """The same query over TCP, for a truncated reply. Our one query is the only thing on
        the connection, so the first frame must be its answer: anything else fails the attempt."""
        timeout = min(self.config.tcp_timeout_ms / 1000, deadline - time.monotonic())
        async with asyncio.timeout(max(timeout, 0)):
            reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
            try:
                writer.write(_LEN.pack(len(wire)) + wire)
                await writer.drain()
                (length,) = _LEN.unpack(await reader.readexactly(2))
                reply = await reader.readexactly(length)
            finally:
                writer.close()
        qend = 12 + len(name_lower) + 4
        if (
            length >= qend
            and (reply[0] << 8 | reply[1]) == qid
            and reply[2] & (QR >> 8)
            and question_matches(reply, qend, name_lower, type_class)
        ):
            return reply
        upstream.stats.spoofed += 1
        raise ConnectionError("TCP reply does not match the query")
