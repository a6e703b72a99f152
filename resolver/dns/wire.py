"""Safe-search answers composed from an upstream reply's validated bytes, without re-parsing them.

A rewrite answer is a CNAME from the question name to the target, followed by the answer records
of the target's own upstream reply, copied from a reply `message.scan_reply` has validated. Only
names are rewritten, since compression pointers mean nothing outside their own message
(`message.copy_record`); an owner that is the target itself becomes a pointer to the CNAME's
RDATA. Other RDATA is opaque and copied as it is, as a forwarded reply would be, so no record an
upstream can send (an NSEC with an empty type bitmap, an unknown type) can make composing fail;
what `scan_reply` refuses (RDATA without its type's shape, such as an A record with RDLENGTH 0)
never gets here.
"""

from __future__ import annotations

import ipaddress
import struct

from resolver.dns.message import Reply, copy_record, scan_reply
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
    # Where the CNAME's RDATA (the target name) lands: header, question, pointer + fixed fields.
    target_pointer = _POINTER.pack(0xC000 | (12 + len(question) + 12))
    parts = [
        HEADER.pack(
            query.qid, reply_flags(query.flags, upstream.rcode), 1, 1 + upstream.ancount, 0, 0
        ),
        question,
        _RR_HEAD.pack(0xC00C, TYPE_CNAME, 1, ttl, len(target_wire)),
        target_wire,
    ]
    pos = upstream.qend
    for _ in range(upstream.ancount):
        owner, rest, pos = copy_record(upstream.data, pos)
        parts += (target_pointer if owner.lower() == target_wire else owner, rest)
    return scan_reply(b"".join(parts))  # BadReply here is counted like any unusable reply


def address_rdata(target: str, qtype: int) -> bytes | None:
    """RDATA for a rewrite whose target is an IP literal, if it fits the query type."""
    try:
        addr = ipaddress.ip_address(target)
    except ValueError:
        return None
    if (qtype == 1 and addr.version == 4) or (qtype == 28 and addr.version == 6):
        return addr.packed
    return None
