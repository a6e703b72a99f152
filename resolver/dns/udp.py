"""The UDP listener: one socket read in batches from the event loop's reader callback.

Each wake-up `FastPath.serve` reads up to `batch` queries and answers those it has stored
(`resolver.dns.fastpath`); the others go through the `Handler` here. Its synchronous answers
leave together in one `send` at the end of the wake-up. A forwarded query's answer is a future
the forwarder's reply callback completes (no task per query); answers finished in one turn of
the loop leave together too.

Behind a load balancer (`proxy_protocol_from`), the fast path repeats stored answers to
datagrams from a balancer whose PROXY v2 header names a client it knows. Every other datagram
from a trusted balancer, or one that starts with a PROXY v2 signature, goes through the
`ProxyGate` here first: the query and the client it names come out, or nothing (counted).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable
from functools import partial

from resolver.dns.fastpath import Address, FastPathLike, Reply
from resolver.dns.handler import Handler
from resolver.dns.proxygate import SIGNATURE, ProxyGate
from resolver.dns.server import InFlight
from resolver.stats import Stats

log = logging.getLogger(__name__)


class UdpListener:
    """Serves one bound, non-blocking UDP socket until `close`."""

    def __init__(
        self,
        sock: socket.socket,
        fast: FastPathLike,
        handler: Handler,
        inflight: InFlight,
        stats: Stats,
        gate: ProxyGate,
    ) -> None:
        self.sock = sock
        self.fast = fast
        self.handler = handler
        self.inflight = inflight
        self.stats = stats
        self.gate = gate
        self.balancers = gate.trusted  # None unless proxy_protocol_from is set
        self.closed = False
        self._late: list[Reply] = []  # answers that awaited, sent at the end of the loop's turn
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            misses = self.fast.serve(self.sock, time.monotonic())
        except OSError as exc:
            self.stats.dropped["udp-receive-error"] += 1
            log.debug("receive failed: %s", exc)
            return
        if not misses:
            return
        answer = self.handler.answer
        balancers = self.balancers
        replies: list[Reply] = []
        for data, addr in misses:
            client = addr[0]
            # PROXY v2: from a trusted load balancer, the query and the client it relays for;
            # from anyone else a header is refused. The answer goes back to the balancer (addr).
            if data.startswith(SIGNATURE) or (balancers is not None and balancers.allows(client)):
                opened = self.gate.open_datagram(data, client)
                if opened is None:
                    continue
                data, client = opened
            try:
                result = answer(data, client, "udp")
            except Exception:  # a bug must cost one query, never the listener
                self.stats.dropped["internal-error"] += 1
                log.exception("query handling failed")
                continue
            if result is None:
                continue
            if isinstance(result, bytes):
                replies.append((result, addr))
            elif isinstance(result, asyncio.Future):  # forwarded: completed by a callback
                self.inflight.tasks.add(result)
                result.add_done_callback(partial(self._answered, addr))
            else:
                self.inflight.spawn(self._send_later(result, addr))
        if replies:
            self.fast.send(self.sock, replies)

    async def _send_later(self, pending: Awaitable[bytes | None], addr: Address) -> None:
        try:
            resp = await pending
        except Exception:
            self.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            return
        self._reply_late(resp, addr)

    def _answered(self, addr: Address, future: asyncio.Future[bytes | None]) -> None:
        self.inflight.tasks.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.stats.dropped["internal-error"] += 1
            log.error("query handling failed", exc_info=exc)
            return
        self._reply_late(future.result(), addr)

    def _reply_late(self, resp: bytes | None, addr: Address) -> None:
        if resp is not None and not self.closed:
            if not self._late:
                self._loop.call_soon(self._send_late)
            self._late.append((resp, addr))

    def _send_late(self) -> None:
        """Send the answers that awaited, together: upstream replies arrive in bursts, so the
        answers finished in one turn of the loop share one `sendmmsg`."""
        late, self._late = self._late, []
        if late and not self.closed:
            self.fast.send(self.sock, late)

    def close(self) -> None:
        if not self.closed:
            self._send_late()
            self.closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
