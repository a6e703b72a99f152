"""The TCP transport (RFC 1035, RFC 7766) around the `Handler`, and the in-flight task set.

TCP reads 2-byte framed messages, handles several queries per connection concurrently and
writes each answer as it is ready (out of order), closes idle connections, caps connections and
the bytes a connection may have queued. UDP is `resolver.dns.udp`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass

from resolver.dns.handler import Handler
from resolver.stats import Stats

log = logging.getLogger(__name__)
_LEN = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class TcpConfig:
    idle_timeout: float = 10.0  # seconds without a complete query before we close (RFC 7766 6.2.3)
    max_connections: int = 1000
    max_queued_bytes: int = 65_536  # unanswered request bytes per connection before pausing reads
    max_pending: int = 100  # queries in progress per connection before pausing reads


class InFlight:
    """The tasks answering queries, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: object) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


class TcpServer:
    """Factory for TCP connections; tracks them so the cap and shutdown can see them all."""

    def __init__(self, handler: Handler, inflight: InFlight, stats: Stats, config: TcpConfig):
        self.handler = handler
        self.inflight = inflight
        self.stats = stats
        self.config = config
        self.connections: set[TcpConnection] = set()

    def __call__(self) -> TcpConnection:
        return TcpConnection(self)

    def close_idle(self) -> None:
        for conn in list(self.connections):
            conn.close_when_idle()


class TcpConnection(asyncio.Protocol):
    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.buffer = bytearray()
        self.pending = 0
        self.queued_bytes = 0
        self.paused = False
        self.closing = False
        self.idle_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if len(self.server.connections) >= self.server.config.max_connections:
            self.server.stats.dropped["tcp-connection-cap"] += 1
            transport.close()
            return
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        if self.idle_handle is not None:
            self.idle_handle.cancel()

    def _arm_idle(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        loop = asyncio.get_running_loop()
        self.idle_handle = loop.call_later(self.server.config.idle_timeout, self._idle)

    def _idle(self) -> None:
        if self.pending:
            self._arm_idle()
        elif self.transport is not None:
            self.transport.close()

    def close_when_idle(self) -> None:
        """Shutdown: stop reading; close once the answers in progress are written."""
        self.closing = True
        if self.transport is None:
            return
        if self.pending == 0:
            self.transport.close()
        elif not self.paused:
            self.transport.pause_reading()
            self.paused = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm_idle()
        buffer = self.buffer
        while len(buffer) >= 2 and not self.closing:
            (length,) = _LEN.unpack_from(buffer)
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            self._handle(message)
        if len(buffer) > self.server.config.max_queued_bytes:
            # A frame that cannot fit our limit is never going to be a DNS query.
            self.server.stats.dropped["tcp-oversized"] += 1
            self.transport.close()  # type: ignore[union-attr]

    def _handle(self, message: bytes) -> None:
        try:
            result = self.server.handler.answer(message, self.client, "tcp")
        except Exception:
            self.server.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            return
        if result is None:
            return
        if result.__class__ is bytes:
            self._write(result)  # type: ignore[arg-type]
            return
        self.pending += 1
        self.queued_bytes += len(message)
        cfg = self.server.config
        if (
            self.pending >= cfg.max_pending or self.queued_bytes >= cfg.max_queued_bytes
        ) and not self.paused:
            self.transport.pause_reading()  # type: ignore[union-attr]
            self.paused = True
        self.server.inflight.spawn(self._answer_later(result, len(message)))

    async def _answer_later(self, pending: object, size: int) -> None:
        try:
            resp = await pending  # type: ignore[misc]
        except Exception:
            self.server.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            resp = None
        self.pending -= 1
        self.queued_bytes -= size
        if resp is not None:
            self._write(resp)
        if self.closing and self.pending == 0:
            if self.transport is not None:
                self.transport.close()
        elif self.paused and self.pending < self.server.config.max_pending // 2:
            self.transport.resume_reading()  # type: ignore[union-attr]
            self.paused = False

    def _write(self, resp: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_LEN.pack(len(resp)) + resp)
