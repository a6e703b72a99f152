"""A worker's encrypted listeners: DoT and DoH on every worker, DoQ on worker 1; DDR records.

Started by `resolver.worker` beside the plain UDP/TCP listeners, over the same `Handler`. DoT and
DoH sockets are bound with SO_REUSEPORT in every worker like UDP and TCP: the kernel spreads
connections, and a connection stays with the worker that accepted it. DoQ is bound by worker 1
only: QUIC packets of one connection must reach the process that holds its state, and the
kernel's SO_REUSEPORT spreads UDP packets by address and port, not by QUIC connection ID, so a
client whose NAT mapping changes, or any change in the set of workers (one restarted), would
send a live connection's packets to a worker that does not know it (see `resolver.dns.doq`).

`reload_tls()` (on every reload) reads the certificate and key again for new connections.
`ddr_records()` is what `_dns.resolver.arpa` SVCB answers (RFC 9461, RFC 9462).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.dns.doh import PATH, DohApp, DohServer, hypercorn_config
from resolver.dns.handler import Handler
from resolver.dns.server import InFlight, TcpConfig
from resolver.dns.tls import (
    ALPN_DOH,
    ALPN_DOQ,
    ALPN_DOT,
    CertificateInfo,
    DotServer,
    EncryptedConfig,
    TlsContexts,
    certificate_info,
    covered_addresses,
)
from resolver.dns.wire import svcb_rdata
from resolver.stats import Stats

if TYPE_CHECKING:
    from resolver.dns.doq import DoqServer

log = logging.getLogger(__name__)
DDR_NAME = "_dns.resolver.arpa"
DOQ_WORKER = 1  # the one worker that binds the DoQ listeners


class EncryptedListeners:
    def __init__(
        self,
        cfg: EncryptedConfig,
        tcp: TcpConfig,
        handler: Handler,
        inflight: InFlight,
        stats: Stats,
    ) -> None:
        self.cfg, self.tcp, self.handler = cfg, tcp, handler
        self.inflight, self.stats = inflight, stats
        self.contexts: dict[str, TlsContexts] = {}
        self.info = CertificateInfo((), ())
        self.servers: list[asyncio.AbstractServer] = []
        self.dot: DotServer | None = None
        self.doh: DohServer | None = None
        self.doq: list[DoqServer] = []

    async def start(self, number: int, tcp_socket: Any, udp_socket: Any) -> list[str]:
        """Bind this worker's encrypted listeners (socket makers from `resolver.worker`);
        what was bound, as "kind host:port"."""
        cfg = self.cfg
        self.info = certificate_info(_cert(cfg))
        base = self.info.base_name(cfg.server_name)
        self.handler.ddr = ddr_records(cfg, self.info)
        loop = asyncio.get_running_loop()
        bound = []
        if cfg.dot_listen:
            contexts = self.contexts["dot"] = TlsContexts(cfg, ALPN_DOT)
            self.dot = DotServer(
                self.handler, self.inflight, self.stats, self.tcp,
                base_name=base, handshake_timeout=cfg.handshake_timeout,
            )  # fmt: skip
            for host, port in cfg.dot_listen:
                server = await loop.create_server(
                    self.dot, sock=tcp_socket(host, port), backlog=1024,
                    ssl=contexts.current, ssl_handshake_timeout=cfg.handshake_timeout,
                )  # fmt: skip
                self.servers.append(server)
                bound.append(f"dot {_show(host, port)}")
        if cfg.doh_listen:
            contexts = self.contexts["doh"] = TlsContexts(cfg, ALPN_DOH)
            sockets = []
            for host, port in cfg.doh_listen:
                sock = tcp_socket(host, port)
                sock.listen(1024)
                sockets.append(sock)
                bound.append(f"doh {_show(host, port)}")
            config = hypercorn_config(
                contexts, sockets, idle=self.tcp.idle_timeout, handshake=cfg.handshake_timeout,
                streams=self.tcp.max_pending,
            )  # fmt: skip
            self.doh = DohServer(DohApp(self.handler, self.stats), config)
            self.doh.start()
        if cfg.doq_listen and number == DOQ_WORKER:
            from resolver.dns.doq import DoqServer

            for host, port in cfg.doq_listen:
                doq = DoqServer(
                    self.handler, self.inflight, self.stats, cfg, base, idle=self.tcp.idle_timeout
                )
                await doq.start(udp_socket(host, port))
                self.doq.append(doq)
                bound.append(f"doq {_show(host, port)}")
        return bound

    def reload_tls(self) -> None:
        """Read the certificate and key again (new connections get them). Raises OSError or
        ssl.SSLError, and then every listener keeps the old ones."""
        fresh = {kind: contexts.fresh() for kind, contexts in self.contexts.items()}
        info = certificate_info(_cert(self.cfg))
        for kind, contexts in self.contexts.items():
            contexts.current = fresh[kind]
        for doq in self.doq:
            doq.reload()
        self.info = info
        self.handler.ddr = ddr_records(self.cfg, info)

    def close(self) -> None:
        """Stop accepting; connections in progress are the caller's to drain."""
        for server in self.servers:
            server.close()
        if self.dot is not None:
            self.dot.close_idle()
        for doq in self.doq:
            doq.close()

    async def stop(self) -> None:
        for server in self.servers:
            await server.wait_closed()
        if self.doh is not None:
            await self.doh.stop()


def _cert(cfg: EncryptedConfig) -> Path:
    assert cfg.tls_cert is not None
    return cfg.tls_cert


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ddr_records(cfg: EncryptedConfig, info: CertificateInfo) -> dict[str, list[bytes]]:
    """SVCB RDATA our DDR names answer with: one record per encrypted listener port (DoQ,
    DoT, DoH in that order of priority), targeting our server name, with the addresses the
    certificate covers as hints. `_dns.resolver.arpa` and `_dns.<server name>` (RFC 9462 4)."""
    target = info.base_name(cfg.server_name)
    if not target or not cfg.enabled:
        return {}
    listens = [*cfg.dot_listen, *cfg.doh_listen, *cfg.doq_listen]
    hints = tuple(covered_addresses(info, listens))
    records: list[bytes] = []
    endpoints = (
        (ALPN_DOQ, cfg.doq_listen, None),
        (ALPN_DOT, cfg.dot_listen, None),
        (ALPN_DOH, cfg.doh_listen, PATH + "{?dns}"),
    )
    for alpn, listen, dohpath in endpoints:
        for port in dict.fromkeys(port for _, port in listen):
            records.append(
                svcb_rdata(
                    len(records) + 1, target, alpn=alpn, port=port, addresses=hints, dohpath=dohpath
                )
            )
    return {DDR_NAME: records, f"_dns.{target}": records}
