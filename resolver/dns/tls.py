"""DNS over TLS (RFC 7858, RFC 8310) and the TLS side every encrypted listener shares.

The certificate and key are read into an `SSLContext` at start and again at every reload. A
listener keeps the context it was started with, but that context's SNI callback hands each new
handshake the newest one: new connections get the new certificate, connections already open keep
theirs (TLS never renegotiates), and no listener is closed and reopened.

DoT connections are plain TCP connections of `resolver.dns.server` once the handshake is done:
the same RFC 7766 framing, pipelining, idle timeout, connection cap and write backpressure; the
transport label is "dot". The server name the client sent (SNI) is its identity: the first
label under the configured base name, `{device}-{profile}.dns.example.vn` (Android's "Private
DNS" form), selects a device's profile (`PolicySnapshot.identities`). A handshake not finished
within `handshake_timeout` is cut off and counted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.dns.handler import Handler
from resolver.dns.server import InFlight, TcpConfig, TcpConnection, TcpServer
from resolver.stats import Stats

log = logging.getLogger(__name__)
HostPort = tuple[str, int]
ALPN_DOT = ("dot",)
ALPN_DOH = ("h2", "http/1.1")
ALPN_DOQ = ("doq",)
DEFAULT_PORTS = {"dot": 853, "doh": 443, "doq": 853}


@dataclass(frozen=True, slots=True)
class EncryptedConfig:
    """The encrypted listeners (`dot_listen`, `doh_listen`, `doq_listen`), their certificate,
    and the base name under which a TLS server name carries a device's identity."""

    dot_listen: tuple[HostPort, ...] = ()
    doh_listen: tuple[HostPort, ...] = ()
    doq_listen: tuple[HostPort, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    server_name: str = ""  # e.g. dns.example.vn; default: the certificate's first name
    handshake_timeout: float = 10.0  # seconds a TLS (or QUIC) handshake may take

    @property
    def enabled(self) -> bool:
        return bool(self.dot_listen or self.doh_listen or self.doq_listen)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the certificate covers: its DNS names and IP addresses (for DDR's hints)."""

    names: tuple[str, ...]
    addresses: tuple[str, ...]

    def base_name(self, configured: str) -> str:
        """The name devices' labels sit under: `configured`, else the certificate's first name
        (a wildcard's parent: `*.dns.example.vn` -> `dns.example.vn`)."""
        if configured:
            return configured.lower().rstrip(".")
        for name in self.names:
            return name.removeprefix("*.").lower()
        return ""


def server_context(cert: Path, key: Path, alpn: Sequence[str]) -> ssl.SSLContext:
    """A TLS 1.2+ server context for `cert`/`key` offering `alpn`. Raises OSError or
    ssl.SSLError when the files cannot be read or do not match."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION  # RFC 7540 9.2.1; CRIME
    ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def certificate_info(cert: Path) -> CertificateInfo:
    """The DNS names and IP addresses of the leaf certificate in `cert` (PEM)."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return CertificateInfo((), ())
    names = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    addresses = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    return CertificateInfo(names, addresses)


class TlsContexts:
    """The current server context for one ALPN set, replaced whole by `reload()`.

    Every context made here has the same SNI callback: it notes the server name the client sent
    on the connection (`sni_of`) and switches the handshake to the newest context."""

    def __init__(self, cfg: EncryptedConfig, alpn: Sequence[str]) -> None:
        assert cfg.tls_cert is not None and cfg.tls_key is not None
        self.cert, self.key, self.alpn = cfg.tls_cert, cfg.tls_key, tuple(alpn)
        self.current = self.fresh()

    def fresh(self) -> ssl.SSLContext:
        """A new context from the files as they are now (raises OSError, ssl.SSLError);
        setting it as `current` makes new handshakes use it."""
        ctx = server_context(self.cert, self.key, self.alpn)
        ctx.sni_callback = self._on_sni
        return ctx

    def _on_sni(self, conn: Any, server_name: str | None, ctx: ssl.SSLContext) -> None:
        conn.sni = server_name
        if ctx is not self.current:
            conn.context = self.current


def sni_of(transport: asyncio.BaseTransport) -> str | None:
    """The server name the client of a TLS transport asked for (None: it sent none)."""
    conn = transport.get_extra_info("ssl_object")
    return getattr(conn, "sni", None)


def identity_from_sni(server_name: str | None, base: str) -> str:
    """The identity in a TLS server name under `base`: `{device}-{profile}.base` -> its first
    label, `{device}.{profile}.base` -> `profile/device` (the DoH path form); "" for none (no
    server name, the base name itself, another name, an address)."""
    if not server_name or not base:
        return ""
    name = server_name.lower().rstrip(".")
    if not name.endswith("." + base):
        return ""
    labels = name[: -len(base) - 1].split(".")
    if len(labels) == 1:
        return labels[0]
    if len(labels) == 2:
        return f"{labels[1]}/{labels[0]}"
    return name


class DotServer(TcpServer):
    """TCP connections of `TcpServer` behind TLS, labelled "dot", identified by their SNI.

    The TLS layer (asyncio's) calls a connection's `connection_made` only once its handshake
    has finished; one that never does was cut off at `handshake_timeout` or was not TLS at all,
    and is counted here when its time is up."""

    def __init__(
        self,
        handler: Handler,
        inflight: InFlight,
        stats: Stats,
        config: TcpConfig,
        *,
        base_name: str,
        handshake_timeout: float,
    ) -> None:
        super().__init__(handler, inflight, stats, config, label="dot")
        self.base_name = base_name
        self.handshake_timeout = handshake_timeout
        self.handshaking = 0

    def __call__(self) -> TcpConnection:
        conn = super().__call__()
        self.handshaking += 1
        # The TLS layer aborts the handshake at handshake_timeout; look a second later.
        asyncio.get_running_loop().call_later(self.handshake_timeout + 1.0, self._check, conn)
        return conn

    def identify(self, transport: asyncio.BaseTransport) -> str:
        return identity_from_sni(sni_of(transport), self.base_name)

    def _check(self, conn: TcpConnection) -> None:
        self.handshaking -= 1
        if conn.transport is None:
            self.stats.dropped["dot-handshake-incomplete"] += 1


def covered_addresses(info: CertificateInfo, listens: Sequence[HostPort]) -> list[str]:
    """The addresses DDR hints at: the certificate's IP addresses, else the listeners' own
    specific addresses (a wildcard listen address says nothing)."""
    if info.addresses:
        return list(info.addresses)
    found = []
    for host, _ in listens:
        if not ipaddress.ip_address(host).is_unspecified and host not in found:
            found.append(host)
    return found
