"""The TCP transport (RFC 1035, RFC 7766) around the `Handler`, and the in-flight task set.

TCP reads 2-byte framed messages, handles several queries per connection concurrently and
writes each answer as it is ready (out of order). It defends itself against clients that hold
connections without asking (idle timeout counted in answered queries, the idlest connection
closed for a newcomer at the cap) and against clients that ask without reading (reading paused
while answers are unread, then the connection cut). UDP is `resolver.dns.udp`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from resolver.dns.handler import Handler
from resolver.dns.proxygate import ProxyGate, Refused
from resolver.stats import Stats

log = logging.getLogger(__name__)
_LEN = struct.Struct("!H")
READ_CHUNK = 16_384  # bytes taken from a TCP socket at a time


@dataclass(frozen=True, slots=True)
class TcpConfig:
    # Seconds without a query we answer or an answer written before we close (RFC 7766 6.2.3);
    # partial frames and frames too short to answer do not count. Also how long answers may
    # sit unread before we close.
    idle_timeout: float = 10.0
    max_connections: int = 1000  # at the cap a new client closes the idlest (RFC 7766 6.2.3)
    # Per connection: request bytes awaiting answers, and answer bytes the client has not read,
    # before we stop reading from it.
    max_queued_bytes: int = 65_536
    max_pending: int = 100  # queries in progress per connection before pausing reads


class InFlight:
    """The tasks (and, for UDP, the futures) answering queries, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


class TcpServer:
    """Factory for TCP connections; tracks them so the cap and shutdown can see them all."""

    def __init__(
        self,
        handler: Handler,
        inflight: InFlight,
        stats: Stats,
        config: TcpConfig,
        gate: ProxyGate | None = None,
        label: str = "tcp",
    ) -> None:
        """`gate`: the PROXY v2 gate (plain TCP); None where no load balancer speaks PROXY v2
        (DoT: its streams are opened by TLS)."""
        self.handler = handler
        self.inflight = inflight
        self.stats = stats
        self.config = config
        self.label = label  # the transport in metrics and the query log: "tcp", or "dot"
        self.gate = gate
        # Least recently active first: a complete query moves its connection to the end.
        self.connections: OrderedDict[TcpConnection, None] = OrderedDict()
        # Every connection reads into this one buffer and copies its bytes out at once: a read
        # never holds more than READ_CHUNK, even from a client that writes far ahead of us.
        self.read_buffer = memoryview(bytearray(READ_CHUNK))

    def __call__(self) -> TcpConnection:
        return TcpConnection(self)

    def identify(self, transport: asyncio.BaseTransport) -> str | None:
        """The encrypted-DNS identity a connection presented; None for plain TCP."""
        return None

    def admit(self, conn: TcpConnection) -> bool:
        """Track a new connection; at the cap, close the idlest one not busy answering to make
        room (RFC 7766 6.2.3), so connections that never finish a query cannot lock out new
        clients. False when every connection has answers in progress."""
        connections = self.connections
        if len(connections) >= self.config.max_connections:
            for idlest in connections:
                if not idlest.pending:
                    break
            else:
                self.stats.dropped["tcp-connection-cap"] += 1
                return False
            self.stats.tcp_closed["evicted"] += 1
            idlest.shut()
        connections[conn] = None
        return True

    def close_idle(self) -> None:
        for conn in list(self.connections):
            conn.close_when_idle()


class TcpConnection(asyncio.BufferedProtocol):
    """One client connection: 2-byte framed queries in, answers out as each is ready.

    Reading pauses while the connection is at a limit (queries in progress, their bytes, or
    answers the client has not read) and resumes below half of it; queries already buffered are
    answered first. A client that leaves answers unread for `idle_timeout` is cut off.
    """

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.config = server.config
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.identity: str | None = None
        # The PROXY v2 gate has passed this connection (proxygate.py), or there is none.
        self.opened = server.gate is None
        self.buffer = bytearray()
        self.pending = 0
        self.queued_bytes = 0
        self.reading = True
        self.stalled = False  # the transport's write buffer is over max_queued_bytes
        self.closing = False
        self.last_active = 0.0  # loop time of the last query answered or answer written
        self.idle_handle: asyncio.TimerHandle | None = None
        self.stall_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.identity = self.server.identify(transport)
        if not self.server.admit(self):
            self.closing = True
            transport.close()
            return
        stream.set_write_buffer_limits(high=self.config.max_queued_bytes)
        loop = asyncio.get_running_loop()
        self.last_active = loop.time()
        self.idle_handle = loop.call_later(self.config.idle_timeout, self._idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.pop(self, None)
        self.closing = True
        for handle in (self.idle_handle, self.stall_handle):
            if handle is not None:
                handle.cancel()

    # -- closing ---------------------------------------------------------------------------------

    def _idle(self) -> None:
        """Timer: close once no query was answered for idle_timeout; else look again
        when that could first be true. Answers in progress keep the connection open; a client
        behind on reading is the stall timer's to close."""
        loop = asyncio.get_running_loop()
        timeout = self.config.idle_timeout
        busy = self.pending or self.stalled
        due = loop.time() + timeout if busy else self.last_active + timeout
        wait = due - loop.time()
        if wait > 0:
            self.idle_handle = loop.call_later(wait, self._idle)
        elif not self.closing:
            self.server.stats.tcp_closed["idle"] += 1
            self.shut()

    def shut(self) -> None:
        """Close now and stop counting against the cap. Answers the client left unread are
        discarded: waiting to flush them would wait on the client."""
        self.closing = True
        self.server.connections.pop(self, None)
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def close_when_idle(self) -> None:
        """Shutdown: stop reading; close once the answers in progress are written."""
        self.closing = True
        if self.transport is None:
            return
        if self.pending == 0:
            self.transport.close()
        else:
            self._flow()

    # -- reading ---------------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self.server.read_buffer[:nbytes]
        if self.opened or self._open():
            self._pump()

    def _open(self) -> bool:
        """The PROXY v2 gate, once per connection: from a trusted load balancer the stream
        starts with a header naming the client; from anyone else it must not. False while
        more bytes are needed, or when the connection was refused and closed."""
        gate = self.server.gate
        assert gate is not None  # `opened` starts True without one
        try:
            opened = gate.open_stream(bytes(self.buffer), self.client)
        except Refused:
            self.shut()
            return False
        if opened is None:
            if len(self.buffer) > self.config.max_queued_bytes:
                self.server.stats.dropped["tcp-oversized"] += 1
                self.shut()
            return False
        self.client, skip = opened
        del self.buffer[:skip]
        self.opened = True
        return True

    def _blocked(self) -> bool:
        cfg = self.config
        return (
            self.closing
            or self.stalled
            or self.pending >= cfg.max_pending
            or self.queued_bytes >= cfg.max_queued_bytes
        )

    def _pump(self) -> None:
        """Answer the complete queries buffered until a limit stops us, then read or not."""
        buffer = self.buffer
        pos = 0
        size = len(buffer)
        answered = False
        while size - pos >= 2 and not self._blocked():
            end = pos + 2 + _LEN.unpack_from(buffer, pos)[0]
            if end > size:
                break
            message = bytes(buffer[pos + 2 : end])
            pos = end
            answered |= self._handle(message)
        if pos:
            del buffer[:pos]
        if answered and not self.closing:
            # Only a query we answer makes a connection active: a trickle of partial frames,
            # or of frames too short to answer, must not keep it open or last in line for
            # closing when the cap needs room.
            self.last_active = asyncio.get_running_loop().time()
            self.server.connections.move_to_end(self)
        if not self._blocked() and len(buffer) > self.config.max_queued_bytes:
            # A frame that cannot fit our limit is never going to be a DNS query.
            self.server.stats.dropped["tcp-oversized"] += 1
            self.shut()
            return
        self._flow()

    def _flow(self) -> None:
        """Pause or resume reading to match the limits."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._blocked():
            if self.reading:
                transport.pause_reading()
                self.reading = False
        elif not self.reading:
            transport.resume_reading()
            self.reading = True

    # -- answering -------------------------------------------------------------------------------

    def _handle(self, message: bytes) -> bool:
        """Answer one message, now or when ready; False if it gets no answer."""
        try:
            server = self.server
            result = server.handler.answer(message, self.client, server.label, self.identity)
        except Exception:
            self.server.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            return False
        if result is None:
            return False
        if isinstance(result, bytes):
            self._write(result)
            return True
        self.pending += 1
        self.queued_bytes += len(message)
        self.server.inflight.spawn(self._answer_later(result, len(message)))
        return True

    async def _answer_later(self, pending: Awaitable[bytes | None], size: int) -> None:
        try:
            resp = await pending
        except Exception:
            self.server.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            resp = None
        self.pending -= 1
        self.queued_bytes -= size
        if resp is not None:
            self._write(resp)
        if self.closing:
            if self.pending == 0 and self.transport is not None:
                self.transport.close()
            return
        self.last_active = asyncio.get_running_loop().time()
        cfg = self.config
        if (
            not self.reading
            and self.pending < cfg.max_pending // 2
            and self.queued_bytes < cfg.max_queued_bytes // 2
        ):
            self._pump()

    def _write(self, resp: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_LEN.pack(len(resp)) + resp)

    # -- write-side flow control (called by the transport) ---------------------------------------

    def pause_writing(self) -> None:
        """The client is not reading its answers as fast as it asks: stop reading its queries,
        and cut it off if it is still behind after idle_timeout."""
        self.stalled = True
        self._flow()
        loop = asyncio.get_running_loop()
        self.stall_handle = loop.call_later(self.config.idle_timeout, self._stalled)

    def resume_writing(self) -> None:
        self.stalled = False
        if self.stall_handle is not None:
            self.stall_handle.cancel()
            self.stall_handle = None
        if not self.closing:
            self._pump()

    def _stalled(self) -> None:
        if self.stalled and not self.closing:
            self.server.stats.tcp_closed["stalled"] += 1
            self.shut()
