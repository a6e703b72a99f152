"""DNS over QUIC (RFC 9250) with aioquic: one query per client-initiated bidirectional stream.

A stream carries one 2-byte-length-prefixed query and the client's FIN; we answer on it with one
2-byte-length-prefixed message and our FIN, through the same `Handler.answer` as UDP (transport
"doq"). A stream that carries more than one message or a length that does not match closes the
connection with DOQ_PROTOCOL_ERROR (RFC 9250 4.3.3); everything is counted.

Why one worker: QUIC keeps a connection's state (keys, streams) in the process that accepted it,
and identifies the connection by its connection ID, not by the client's address and port. The
kernel's SO_REUSEPORT spreads UDP packets by address and port: a client behind a NAT whose
mapping changes, or any change in the set of worker sockets (a worker replaced), sends a live
connection's packets to a process that does not know it, and the connection dies. Steering by
connection ID needs an eBPF program in the kernel (as nginx's `quic_bpf` does). DoQ clients are
few (AdGuard's apps, some routers), so worker 1 alone serves DoQ: correct by construction.

The TLS server name the client sent is its identity, as for DoT. aioquic's server does not keep
the ClientHello's server name, so `_note_server_name` reads it from the ClientHello aioquic has
just received, with aioquic's own parser, before aioquic handles it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from functools import partial
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived
from aioquic.tls import pull_client_hello

from resolver.dns.handler import Handler
from resolver.dns.server import InFlight
from resolver.dns.tls import ALPN_DOQ, EncryptedConfig, identity_from_sni
from resolver.stats import Stats

log = logging.getLogger(__name__)
_LEN = struct.Struct("!H")
DOQ_PROTOCOL_ERROR = 0x2  # RFC 9250 4.3
MAX_STREAM = 2 + 65_535  # one length-prefixed DNS message


class DoqConnection(QuicConnectionProtocol):
    """One client's QUIC connection: queries on streams in, answers on the same streams."""

    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *, server: DoqServer):
        super().__init__(quic, stream_handler)
        self.server = server
        self.client = ""
        self.server_name: str | None = None
        self.streams: dict[int, bytearray] = {}
        initialize = quic._initialize

        def _initialize(peer_cid: bytes) -> None:
            initialize(peer_cid)
            _note_server_name(self, quic)

        quic._initialize = _initialize  # type: ignore[method-assign]

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self.client = addr[0]
        super().datagram_received(data, addr)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            buffer = self.streams.setdefault(event.stream_id, bytearray())
            buffer += event.data
            if len(buffer) > MAX_STREAM:
                self._violation("doq-oversized")
            elif event.end_stream:
                del self.streams[event.stream_id]
                self._query(event.stream_id, bytes(buffer))
        elif isinstance(event, ConnectionTerminated):
            self.streams.clear()

    def _violation(self, reason: str) -> None:
        self.server.stats.dropped[reason] += 1
        self.streams.clear()
        self._quic.close(error_code=DOQ_PROTOCOL_ERROR, reason_phrase=reason)
        self.transmit()

    def _query(self, stream_id: int, data: bytes) -> None:
        if len(data) < 2 or _LEN.unpack_from(data)[0] != len(data) - 2:
            self._violation("doq-bad-length")
            return
        server = self.server
        identity = identity_from_sni(self.server_name, server.base_name)
        try:
            result = server.handler.answer(data[2:], self.client, "doq", identity)
        except Exception:
            server.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            result = None
        if result is None or isinstance(result, bytes):
            self._send(stream_id, result)
        else:
            server.inflight.spawn(self._send_later(stream_id, result))

    async def _send_later(self, stream_id: int, pending: Any) -> None:
        try:
            resp = await pending
        except Exception:
            self.server.stats.dropped["internal-error"] += 1
            log.exception("query handling failed")
            resp = None
        self._send(stream_id, resp)

    def _send(self, stream_id: int, resp: bytes | None) -> None:
        """The answer and FIN on the query's stream; no answer (a dropped query): a reset."""
        try:
            if resp is None:
                self._quic.reset_stream(stream_id, DOQ_PROTOCOL_ERROR)
            else:
                self._quic.send_stream_data(stream_id, _LEN.pack(len(resp)) + resp, True)
        except (AssertionError, ValueError):  # the stream or connection is gone meanwhile
            return
        self.transmit()


def _note_server_name(conn: DoqConnection, quic: QuicConnection) -> None:
    """Have `conn.server_name` set from the ClientHello before aioquic's TLS handles it."""
    tls = quic.tls
    handle_hello = tls._server_handle_hello

    def server_handle_hello(input_buf: Any, *rest: Any) -> None:
        start = input_buf.tell()
        try:
            conn.server_name = pull_client_hello(input_buf).server_name
        except Exception:  # aioquic itself rejects what it cannot read, just below
            conn.server_name = None
        input_buf.seek(start)
        handle_hello(input_buf, *rest)

    tls._server_handle_hello = server_handle_hello  # type: ignore[method-assign,assignment]


class DoqServer:
    """A DoQ listener: aioquic's `QuicServer` on a socket we bound, our connection class."""

    def __init__(
        self,
        handler: Handler,
        inflight: InFlight,
        stats: Stats,
        cfg: EncryptedConfig,
        base_name: str,
        *,
        idle: float,
    ) -> None:
        self.handler, self.inflight, self.stats = handler, inflight, stats
        self.cfg, self.base_name = cfg, base_name
        self.configuration = QuicConfiguration(
            is_client=False, alpn_protocols=list(ALPN_DOQ), idle_timeout=idle,
            max_stream_data=MAX_STREAM,
        )  # fmt: skip
        self._load(self.configuration)
        self.transport: asyncio.BaseTransport | None = None
        self.quic: QuicServer | None = None

    def _load(self, configuration: QuicConfiguration) -> None:
        assert self.cfg.tls_cert is not None and self.cfg.tls_key is not None
        configuration.load_cert_chain(self.cfg.tls_cert, self.cfg.tls_key)

    async def start(self, sock: socket.socket) -> None:
        def make() -> QuicServer:
            self.quic = QuicServer(
                configuration=self.configuration,
                create_protocol=partial(DoqConnection, server=self),
            )
            return self.quic

        self.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            make, sock=sock
        )

    def reload(self) -> None:
        """New connections get the certificate and key as the files are now (raises on a bad
        file, and then nothing changes); connections already open keep theirs."""
        fresh = QuicConfiguration(is_client=False)
        self._load(fresh)
        conf = self.configuration
        conf.certificate, conf.certificate_chain = fresh.certificate, fresh.certificate_chain
        conf.private_key = fresh.private_key

    def close(self) -> None:
        if self.quic is not None:
            self.quic.close()
