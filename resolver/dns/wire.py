"""The one module that uses dnslib: re-packing whole records on the slow path.

Only bytes already validated by `message.scan_reply` (bounded, backward-only pointers, checked
lengths) reach dnslib here, and the composed answers are cached as bytes afterwards.
"""

from __future__ import annotations

import ipaddress
import struct

from dnslib import DNSBuffer, DNSError, DNSLabelError, DNSRecord

from resolver.dns.packet import HEADER, Query, encode_name
from resolver.dns.synth import reply_flags

_RR_HEAD = struct.Struct("!HHHIH")
TYPE_CNAME = 5


class ComposeError(Exception):
    """The target's reply could not be re-packed (counted; the client gets SERVFAIL)."""


def compose_rewrite(query: Query, target: str, target_reply: bytes | None, ttl: int) -> bytes:
    """CNAME from the question name to `target`, followed by the target's own answer records.

    This is how safe search works: www.google.com.vn -> forcesafesearch.google.com plus that
    name's addresses, so clients that do not chase CNAMEs themselves still connect. The answer
    carries no OPT record (the caller adds its own) and echoes the question as the client sent it.
    """
    target_wire = encode_name(target)
    cname = _RR_HEAD.pack(0xC00C, TYPE_CNAME, 1, ttl, len(target_wire)) + target_wire
    rcode = 0
    records = []
    try:
        if target_reply is not None:
            upstream = DNSRecord.parse(target_reply)
            rcode = upstream.header.rcode
            records = upstream.rr
        # Pack after our own prefix so dnslib's compression pointers get the right offsets.
        buffer = DNSBuffer()
        buffer.append(bytes(12) + query.data[12 : query.qend] + cname)
        for record in records:
            record.pack(buffer)
    except (DNSError, DNSLabelError, RecursionError, UnicodeError, ValueError) as exc:
        raise ComposeError(str(exc)) from exc
    header = HEADER.pack(query.qid, reply_flags(query.flags, rcode), 1, 1 + len(records), 0, 0)
    return header + bytes(buffer.data[12:])


def address_rdata(target: str, qtype: int) -> bytes | None:
    """RDATA for a rewrite whose target is an IP literal, if it fits the query type."""
    try:
        addr = ipaddress.ip_address(target)
    except ValueError:
        return None
    if (qtype == 1 and addr.version == 4) or (qtype == 28 and addr.version == 6):
        return addr.packed
    return None


# SvcParamKeys (RFC 9460 14.3.2; dohpath RFC 9461 5)
SVC_ALPN, SVC_PORT, SVC_IPV4HINT, SVC_IPV6HINT, SVC_DOHPATH = 1, 3, 4, 6, 7


def svcb_rdata(
    priority: int,
    target: str,
    *,
    alpn: tuple[str, ...] = (),
    port: int | None = None,
    addresses: tuple[str, ...] = (),
    dohpath: str | None = None,
) -> bytes:
    """The RDATA of one SVCB record (RFC 9460 2.2): priority, uncompressed target name, then
    the SvcParams in increasing key order."""
    params: list[tuple[int, bytes]] = []
    if alpn:
        params.append((SVC_ALPN, b"".join(bytes((len(a),)) + a.encode() for a in alpn)))
    if port is not None:
        params.append((SVC_PORT, struct.pack("!H", port)))
    ips = [ipaddress.ip_address(a) for a in addresses]
    v4 = b"".join(ip.packed for ip in ips if ip.version == 4)
    v6 = b"".join(ip.packed for ip in ips if ip.version == 6)
    if v4:
        params.append((SVC_IPV4HINT, v4))
    if v6:
        params.append((SVC_IPV6HINT, v6))
    if dohpath is not None:
        params.append((SVC_DOHPATH, dohpath.encode()))
    out = struct.pack("!H", priority) + encode_name(target)
    for key, value in params:
        out += struct.pack("!HH", key, len(value)) + value
    return out
