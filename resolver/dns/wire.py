"""Safe-search answers composed from an upstream reply's validated bytes, without re-parsing them.

The one module that uses dnslib, for the one record we write ourselves on this path. A rewrite
answer is a CNAME from the question name to the target (a dnslib `RR`, packed after our own
header and question so its owner compresses to the question), followed by the answer records of
the target's own upstream reply, copied from a reply `message.scan_reply` has validated: they
never go through a parser. Only names are rewritten, since compression pointers mean nothing
outside their own message (`message.copy_record`); an owner that is the target itself becomes a
pointer to the CNAME's RDATA. Other RDATA is opaque and copied as it is, as a forwarded reply
would be, so no record an upstream can send (an NSEC with an empty type bitmap, an unknown type)
can make composing fail; what `scan_reply` refuses (RDATA without its type's shape, such as an
A record with RDLENGTH 0) never gets here.
"""

from __future__ import annotations

import ipaddress
import struct

from dnslib import CNAME, QTYPE, RR, DNSBuffer, DNSError, DNSLabel, DNSLabelError

from resolver.dns.message import BadReply, Reply, copy_record, scan_reply
from resolver.dns.packet import HEADER, Query, encode_name
from resolver.dns.synth import reply_flags

_RR_HEAD = struct.Struct("!HHHIH")  # owner pointer, type, class, ttl, rdlength
_POINTER = struct.Struct("!H")
TYPE_CNAME = 5


def compose_rewrite(query: Query, target: str, upstream: Reply, ttl: int) -> Reply:
    """CNAME from the question name to `target`, then the target's answer records, validated.

    This is how safe search works: www.google.com.vn -> forcesafesearch.google.com plus that
    name's addresses, so clients that do not chase CNAMEs themselves still connect. The answer
    carries the target's RCODE, no OPT record (the cache renders its own) and the question as the
    client sent it. `upstream` is the scanned reply for `target` (`scan_reply`).
    """
    target_wire = encode_name(target).lower()
    question = query.data[12 : query.qend]
    head = HEADER.pack(
        query.qid, reply_flags(query.flags, upstream.rcode), 1, 1 + upstream.ancount, 0, 0
    )
    try:
        cname, target_at = _cname_record(head + question, query.qname, target, ttl)
    except (DNSError, DNSLabelError, UnicodeError, ValueError) as exc:
        raise BadReply("compose") from exc
    target_pointer = _POINTER.pack(0xC000 | target_at)
    parts = [head, question, cname]
    pos = upstream.qend
    for _ in range(upstream.ancount):
        owner, rest, pos = copy_record(upstream.data, pos)
        parts += (target_pointer if owner.lower() == target_wire else owner, rest)
    return scan_reply(b"".join(parts))  # BadReply here is counted like any unusable reply


def _cname_record(prefix: bytes, owner: str, target: str, ttl: int) -> tuple[bytes, int]:
    """The CNAME record `owner` -> `target` as it follows `prefix` (our header and question,
    whose name it points at), and the offset of its target name in the message."""
    buffer = DNSBuffer(prefix)
    buffer.offset = len(prefix)
    if owner:
        buffer.names[tuple(DNSLabel(owner).label)] = 12  # the question name: a pointer to it
    RR(owner or ".", QTYPE.CNAME, ttl=ttl, rdata=CNAME(target)).pack(buffer)
    return bytes(buffer.data[len(prefix) :]), buffer.names[tuple(DNSLabel(target).label)]


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
