"""Who may speak for other clients with a PROXY v2 header (`proxy_protocol_from`).

A header names the client whose profile, access, rate limit and query-log line a query gets,
so only the configured load balancers may send one. From them every datagram and every TCP
connection must start with a header (PROXY, or LOCAL for the balancer's own health checks):
a query without one would be served as the balancer's and give every subscriber behind it
the balancer's profile. From anyone else a datagram or connection that starts with the
signature is refused. Every refusal is counted by reason (`Stats.proxy_refused`) and logged
at most once a minute, so a misconfigured balancer or a forger cannot fill the journal.

The listeners call `open_datagram` only for a datagram from a trusted address or one that
starts with the signature (`SIGNATURE`), and `open_stream` once per TCP connection, so a
query from an ordinary client pays one `startswith` (and, where balancers are configured,
one memoized address check).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from resolver.dns.acl import AccessList
from resolver.dns.proxyproto import SIGNATURE, ProxyError, header_length, parse
from resolver.logs import Throttled
from resolver.stats import Stats

__all__ = ["SIGNATURE", "ProxyGate", "Refused"]
log = logging.getLogger(__name__)
UNTRUSTED = "untrusted"  # a header from an address not in proxy_protocol_from
MISSING = "missing"  # no header from a trusted balancer


class Refused(Exception):
    """The connection must be closed: counted and logged already."""


class ProxyGate:
    def __init__(self, trusted: Sequence[str], stats: Stats) -> None:
        # None when no balancer is configured: the listeners then skip the address check.
        self.trusted = AccessList(trusted) if trusted else None
        self.stats = stats
        self._log = Throttled(log)

    def open_datagram(self, data: bytes, source: str) -> tuple[bytes, str] | None:
        """(the DNS query, the client it is from) for a datagram from a trusted balancer or
        one starting with the signature; None when it must be dropped."""
        trusted = self.trusted
        if trusted is None or not trusted.allows(source):
            self._refuse(UNTRUSTED, source, "udp")
            return None
        if not data.startswith(SIGNATURE):
            self._refuse(MISSING, source, "udp")
            return None
        try:
            client, payload = parse(data)
        except ProxyError as exc:
            self._refuse(exc.reason, source, "udp")
            return None
        return payload, client or source

    def open_stream(self, head: bytes, source: str) -> tuple[str, int] | None:
        """For the first bytes of a TCP connection: (the client, bytes of header to skip), or
        None until enough bytes have come to tell. Raises Refused when it must be closed."""
        trusted = self.trusted
        if trusted is None or not trusted.allows(source):
            if len(head) < len(SIGNATURE) and SIGNATURE.startswith(head):
                return None  # a DNS frame is longer: waiting delays no query
            if head.startswith(SIGNATURE):
                self._refuse(UNTRUSTED, source, "tcp")
                raise Refused
            return source, 0
        try:
            end = header_length(head)
            if end is None or len(head) < end:
                return None
            client, _ = parse(head[:end])
        except ProxyError as exc:
            self._refuse(MISSING if exc.reason == "signature" else exc.reason, source, "tcp")
            raise Refused from None
        return client or source, end

    def _refuse(self, reason: str, source: str, transport: str) -> None:
        self.stats.proxy_refused[reason] += 1
        if reason == UNTRUSTED:
            why = "a PROXY header from an address not in proxy_protocol_from"
        elif reason == MISSING:
            why = "no PROXY header from a load balancer in proxy_protocol_from"
        else:
            why = f"a malformed PROXY header ({reason}) from a trusted load balancer"
        self._log.warning("%s dropped: %s, source %s", transport, why, source)
