"""Bounded walk over an upstream reply: validate its structure and find what the cache needs.

Upstream replies are untrusted bytes. Before anything else touches them (the cache, or dnslib on
the slow path) this walk checks every name with a bounded number of backward-only pointer hops,
every record length, and records where each TTL sits so cached answers can be aged in place.
"""

from __future__ import annotations

import struct

from resolver.dns.packet import HEADER, TYPE_OPT

_RR_FIXED = struct.Struct("!HHIH")
_SOA_TAIL = struct.Struct("!IIIII")  # serial, refresh, retry, expire, minimum
TYPE_SOA = 6
TYPE_CNAME = 5
MAX_POINTER_HOPS = 32
# Types whose RDATA holds a (compressible) name, and the offset where that name starts.
_RDATA_NAME_AT = {2: 0, 5: 0, 6: 0, 12: 0, 15: 2, 33: 6, 39: 0}  # NS CNAME SOA PTR MX SRV DNAME
MAX_RECORDS = 1024


class BadReply(Exception):
    """The reply cannot be used; `reason` is counted per upstream."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reply:
    """Offsets and facts about one validated reply."""

    __slots__ = (
        "ancount",
        "arcount",
        "data",
        "flags",
        "min_ttl",
        "neg_ttl",
        "nscount",
        "opt",
        "qend",
        "qid",
        "rcode",
        "ttl_offsets",
    )

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.qid = 0
        self.flags = 0
        self.rcode = 0
        self.ancount = 0
        self.nscount = 0
        self.arcount = 0
        self.qend = 12
        self.ttl_offsets: list[int] = []  # offsets of the TTL field of every non-OPT record
        self.min_ttl: int | None = None  # smallest TTL in the answer section
        self.neg_ttl: int | None = None  # RFC 2308: min(SOA TTL, SOA MINIMUM) from authority
        self.opt: tuple[int, int] | None = None  # (start, end) of the OPT record


def name_end(data: bytes, pos: int) -> int:
    """Offset just past a possibly-compressed name, after checking where its pointers lead.

    Pointers must point backwards, and at most MAX_POINTER_HOPS are followed, so loops and
    hop-chains that make other parsers spin are refused here.
    """
    end = len(data)
    result = -1
    hops = 0
    wire_len = 0
    while True:
        if pos >= end:
            raise BadReply("truncated")
        length = data[pos]
        if length == 0:
            return pos + 1 if result < 0 else result
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= end:
                raise BadReply("truncated")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= pos:
                raise BadReply("forward-pointer")
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise BadReply("pointer-hops")
            if result < 0:
                result = pos + 2
            pos = target
            continue
        if kind:
            raise BadReply("bad-label")
        wire_len += length + 1
        if wire_len > 255:
            raise BadReply("name-too-long")
        pos += length + 1


def scan_reply(data: bytes) -> Reply:
    """Validate a reply and collect TTL offsets, the OPT span and negative-caching TTL."""
    if len(data) < 12:
        raise BadReply("short")
    reply = Reply(data)
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if qdcount != 1:
        raise BadReply("qdcount")
    if ancount + nscount + arcount > MAX_RECORDS:
        raise BadReply("too-many-records")
    reply.qid = qid
    reply.flags = flags
    reply.rcode = flags & 0x000F
    reply.ancount, reply.nscount, reply.arcount = ancount, nscount, arcount
    pos = name_end(data, 12)
    if pos + 4 > len(data):
        raise BadReply("truncated")
    pos += 4
    reply.qend = pos
    offsets = reply.ttl_offsets
    answer_end = ancount
    authority_end = ancount + nscount
    for index in range(ancount + nscount + arcount):
        start = pos
        pos = name_end(data, pos)
        if pos + 10 > len(data):
            raise BadReply("truncated")
        rtype, _rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        rdata = pos + 10
        end = rdata + rdlen
        if end > len(data):
            raise BadReply("truncated")
        skip = _RDATA_NAME_AT.get(rtype)
        # Names inside RDATA get the same checks: dnslib follows them on the slow path.
        if skip is not None and rdlen and name_end(data, rdata + skip) > end:
            raise BadReply("bad-rdata")
        if rtype == TYPE_OPT:
            if reply.opt is not None or index < authority_end:
                raise BadReply("bad-opt")
            reply.opt = (start, end)
        else:
            if ttl & 0x80000000:
                ttl = 0  # RFC 2181 8: a TTL with the top bit set is treated as zero
            offsets.append(pos + 4)
            if index < answer_end:
                if reply.min_ttl is None or ttl < reply.min_ttl:
                    reply.min_ttl = ttl
            elif index < authority_end and rtype == TYPE_SOA:
                reply.neg_ttl = min(ttl, _soa_minimum(data, rdata, end))
        pos = end
    if pos != len(data):
        raise BadReply("trailing-bytes")
    return reply


def _soa_minimum(data: bytes, rdata: int, end: int) -> int:
    pos = name_end(data, rdata)
    pos = name_end(data, pos)
    if pos + 20 != end:
        raise BadReply("bad-soa")
    return _SOA_TAIL.unpack_from(data, pos)[4]


def question_matches(reply: bytes, qend: int, name_lower: bytes, type_class: bytes) -> bool:
    """Does the reply's question equal ours? Names compare case-insensitively, the rest exactly.

    Only the name is lower-cased: type and class bytes must not be folded (0x41 is HTTPS).
    """
    return (
        qend - 16 == len(name_lower)
        and reply[qend - 4 : qend] == type_class
        and reply[12 : qend - 4].lower() == name_lower
    )
