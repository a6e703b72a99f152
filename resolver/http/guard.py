"""Timeouts and connection caps for the block page and admin listeners (slow-loris protection).

aiohttp has no timeout for reading a request head, and the aiohttp versions we allow start their
keep-alive timer only after a first response: a client that opens connections and sends nothing,
or trickles a head one byte at a time, held each socket for ever, and the block page shares the
process's file descriptors with DNS over TCP and the upstream sockets.

`GuardedServer` accepts connections itself, so each is admitted (caps) with its peer address
before anything else, TLS handshake included: a handshake that never ends is bounded and counted
like any other wait. `GuardedProtocol` then sits between the transport and aiohttp's
`RequestHandler`: it sees every byte that arrives and, through the guard's middleware, when a
request head is complete and when its handler is done:

    [handshake] --> idle --first byte--> head --head complete--> busy --handler done--> idle ...
    (header_timeout) (keepalive_timeout) (header_timeout)   (body_timeout for the body)

A waiting connection (idle, head, or a TLS handshake) is closed when its timer runs out; arriving
bytes never extend a timer. Connections are counted per client address at accept: over the cap,
the address's longest-waiting connection is closed to make room (a browser retries a closed idle
connection; behind a NAT the other pupils keep getting in), or, when every one of them is busy,
the new connection is closed at once. Every closing is counted by reason in `Stats.http_closed`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler

from resolver.http.limits import HttpLimits
from resolver.netaddr import client_ip
from resolver.stats import Stats

log = logging.getLogger(__name__)

# The address of the client whose connection is being served. A TLS server-name callback gets
# only the SSL object, but it runs inside its transport's callbacks, and both asyncio and uvloop
# run those in the context the transport was made in (`GuardedProtocol._connect` sets this
# first): the block page's HTTPS listener asks the policy about this client (blocktls.py).
PEER: contextvars.ContextVar[str] = contextvars.ContextVar("http_peer", default="")

# Phases of a connection; the waiting ones have a timer, named by what runs out.
TIMEOUT_REASON = {"handshake": "tls_handshake_timeout", "idle": "idle_timeout",
                  "head": "header_timeout"}  # fmt: skip


class _Client:
    """One address's connections, and the waiting ones among them, longest-waiting first."""

    __slots__ = ("conns", "waiting")

    def __init__(self) -> None:
        self.conns: set[GuardedProtocol] = set()
        self.waiting: OrderedDict[GuardedProtocol, None] = OrderedDict()


class ConnectionGuard:
    """The connections of one listener (all its sites): caps, timers, counters."""

    def __init__(self, name: str, limits: HttpLimits, stats: Stats) -> None:
        self.name = name
        self.limits = limits
        self.stats = stats
        self._clients: dict[str, _Client] = {}
        self._open: set[GuardedProtocol] = set()
        self._waiting: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self._by_handler: dict[RequestHandler, GuardedProtocol] = {}
        stats.http_connections[name] = 0

    def count(self, reason: str) -> None:
        self.stats.http_closed[(self.name, reason)] += 1

    # -- accept and release -----------------------------------------------------------------

    def admit(self, conn: GuardedProtocol) -> bool:
        """Make room for `conn` within both caps (closing a waiting one), or refuse it."""
        limits, client = self.limits, self._clients.get(conn.client)
        full = client is not None and len(client.conns) >= limits.max_connections_per_client
        if full and client is not None and not self._evict(client.waiting, "client"):
            return False
        if len(self._open) >= limits.max_connections and not self._evict(self._waiting, "total"):
            return False
        self._open.add(conn)
        self._clients.setdefault(conn.client, _Client()).conns.add(conn)
        self.stats.http_connections[self.name] = len(self._open)
        return True

    def _evict(self, waiting: OrderedDict[GuardedProtocol, None], cap: str) -> bool:
        victim = next(iter(waiting), None)
        if victim is None:
            self.count(f"refused_{cap}_cap")
            return False
        self.close(victim, f"evicted_{cap}_cap")
        return True

    def close(self, conn: GuardedProtocol, reason: str | None, abort: bool = True) -> None:
        """Forget `conn` now (its slot is free at once) and abort its socket; count `reason`."""
        if conn.phase == "closed":
            return
        if reason is not None:
            self.count(reason)
        self._forget_waiting(conn)
        conn.phase = "closed"
        conn.cancel_timer()
        self._open.discard(conn)
        client = self._clients.get(conn.client)
        if client is not None:
            client.conns.discard(conn)
            if not client.conns:
                del self._clients[conn.client]
        if conn.handler is not None:
            self._by_handler.pop(conn.handler, None)
        self.stats.http_connections[self.name] = len(self._open)
        if abort:
            conn.abort()

    def close_unattached(self) -> None:
        """At shutdown: close connections aiohttp does not know yet (in a TLS handshake)."""
        for conn in [c for c in self._open if c.handler is None]:
            self.close(conn, None)

    # -- phases -----------------------------------------------------------------------------

    def attached(self, conn: GuardedProtocol, handler: RequestHandler) -> None:
        self._by_handler[handler] = conn

    def wait(self, conn: GuardedProtocol, phase: str) -> None:
        """`conn` waits for the client (a handshake, a first byte, the rest of a head)."""
        conn.phase = phase
        conn.arm_timer(self._timeout(phase))
        if conn not in self._waiting:
            self._waiting[conn] = None
            self._clients[conn.client].waiting[conn] = None

    def _timeout(self, phase: str) -> float:
        limits = self.limits
        return limits.keepalive_timeout if phase == "idle" else limits.header_timeout

    def _forget_waiting(self, conn: GuardedProtocol) -> None:
        self._waiting.pop(conn, None)
        client = self._clients.get(conn.client)
        if client is not None:
            client.waiting.pop(conn, None)

    def begin(self, handler: object) -> GuardedProtocol | None:
        """A request head is complete: no timer while its handler runs. None: not our connection."""
        conn = self._by_handler.get(cast(RequestHandler, handler))
        if conn is None or conn.phase == "closed":
            return None
        self._forget_waiting(conn)
        conn.phase = "busy"
        conn.cancel_timer()
        return conn

    def end(self, conn: GuardedProtocol) -> None:
        """The handler is done: the connection waits for its next request."""
        if conn.phase == "busy":
            self.wait(conn, "idle")

    def expired(self, conn: GuardedProtocol) -> None:
        self.close(conn, TIMEOUT_REASON.get(conn.phase, "timeout"))

    # -- the middleware ---------------------------------------------------------------------

    @property
    def middleware(self) -> Middleware:
        """Marks requests busy and reads each body within `body_timeout` before the handler.

        aiohttp keeps the bytes for the handler's `read()`, `json()` and `post()` (our forms are
        urlencoded: a multipart body would reach `post()` already consumed).
        """
        guard = self

        @web.middleware
        async def connection_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = guard.begin(request.protocol)
            try:
                if conn is not None and request.body_exists:
                    try:
                        async with asyncio.timeout(guard.limits.body_timeout):
                            await request.read()  # kept by aiohttp for the handler's post()
                    except TimeoutError:
                        guard.count("body_timeout")
                        response = web.Response(status=408, text="request body too slow\n")
                        response.force_close()
                        return response
                return await handler(request)
            finally:
                if conn is not None:
                    guard.end(conn)

        return connection_guard


class GuardedProtocol(asyncio.Protocol):
    """One accepted connection: its phase and timer; everything else goes to aiohttp's handler."""

    def __init__(
        self, guard: ConnectionGuard, client: str, make_handler: Callable[[], RequestHandler]
    ) -> None:
        self.guard = guard
        self.client = client
        self.phase = "new"
        self.handler: RequestHandler | None = None
        self._make_handler = make_handler
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._setup: asyncio.Task[None] | None = None

    # -- called by the guard and the server -------------------------------------------------

    def arm_timer(self, seconds: float) -> None:
        self.cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self.guard.expired, self)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        elif self._setup is not None:
            self._setup.cancel()  # closes the socket, mid-handshake or not

    def start(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        """Hand the admitted socket to the event loop (and its TLS layer), under a timer."""
        self.guard.wait(self, "handshake" if tls else "idle")
        self._setup = asyncio.get_running_loop().create_task(self._connect(sock, tls))

    async def _connect(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.guard.limits.header_timeout + 1 if tls else None  # ours fires first
        PEER.set(self.client)  # this task's own context, which the transport copies
        try:
            await loop.connect_accepted_socket(
                lambda: self, sock, ssl=tls, ssl_handshake_timeout=timeout
            )
        except Exception:  # a failed TLS handshake, or the peer gone before we got to it
            reason = "tls_handshake_failed" if self.phase == "handshake" else None
            self.guard.close(self, reason, abort=False)
            sock.close()
        finally:
            self._setup = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self.phase == "closed":
            self._transport.abort()
            return
        handler = self._make_handler()
        self.handler = handler
        self.guard.attached(self, handler)
        if self.phase == "handshake":
            self.guard.wait(self, "idle")
        handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.phase == "idle":
            self.guard.wait(self, "head")
        if self.handler is not None:
            self.handler.data_received(data)

    def eof_received(self) -> None:
        if self.handler is not None:
            self.handler.eof_received()

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.close(self, None, abort=False)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.connection_lost(exc)


ACCEPT_RETRY = 1.0  # seconds the accept loop rests when the process is out of descriptors


class GuardedServer(asyncio.AbstractServer):
    """A listening socket whose connections are admitted by the guard before anything else.

    It accepts itself (rather than `loop.create_server`) so the peer is known, and the caps
    applied, before a TLS handshake; a refused connection is closed at once. It stands in for
    the `asyncio.Server` an aiohttp site keeps.
    """

    def __init__(
        self,
        sock: socket.socket,
        guard: ConnectionGuard,
        make_handler: Callable[[], RequestHandler],
        tls: ssl.SSLContext | None,
    ) -> None:
        self.sockets = (sock,)
        self._guard, self._make_handler, self._tls = guard, make_handler, tls
        self._task = asyncio.get_running_loop().create_task(self._accept(sock))

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: let descriptors come back
                self._guard.count("accept_failed")
                log.warning("http %s: accept failed: %s", self._guard.name, exc.strerror)
                await asyncio.sleep(ACCEPT_RETRY)
                continue
            ip = client_ip(peer[0] if isinstance(peer, tuple) and peer else None)
            conn = GuardedProtocol(self._guard, str(ip) if ip else "", self._make_handler)
            if self._guard.admit(conn):
                conn.start(sock, self._tls)
            else:
                sock.close()

    def close(self) -> None:
        """Stop accepting; the socket closes once the accept loop has let go of it."""
        self._task.cancel()
        self._task.add_done_callback(self._close_sockets)

    def _close_sockets(self, _task: asyncio.Task[None]) -> None:
        for sock in self.sockets:
            sock.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._task.get_loop()

    def is_serving(self) -> bool:
        return not self._task.done()

    async def start_serving(self) -> None:
        pass  # serving from construction

    async def serve_forever(self) -> None:
        await self._task

    async def wait_closed(self) -> None:
        await asyncio.gather(self._task, return_exceptions=True)


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket; IPv6 ones are v6-only so "[::]" and
    "0.0.0.0" can both be listed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
