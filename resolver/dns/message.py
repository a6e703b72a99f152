"""Bounded walk over an upstream reply: validate its structure and find what the cache needs.

Upstream replies are untrusted bytes. Before anything else touches them (the cache, or the
safe-search composer in `wire.py`) this walk checks every name with a bounded number of
backward-only pointer hops, every record length, and records where each TTL sits so cached
answers can be aged in place.
"""

from __future__ import annotations

import struct
from typing import Final

from resolver.dns.packet import HEADER, TYPE_OPT

_RR_FIXED: Final = struct.Struct("!HHIH")
_SOA_TAIL: Final = struct.Struct("!IIIII")  # serial, refresh, retry, expire, minimum
TYPE_SOA: Final = 6
TYPE_CNAME: Final = 5
MAX_POINTER_HOPS: Final = 32
MAX_MESSAGE: Final = 65_535  # what a TCP length prefix can carry
# Types whose RDATA holds (compressible) names: (bytes before the names, names, bytes after).
RDATA_NAMES: Final[dict[int, tuple[int, int, int]]] = {
    2: (0, 1, 0),  # NS
    5: (0, 1, 0),  # CNAME
    6: (0, 2, 20),  # SOA: MNAME RNAME, then serial refresh retry expire minimum
    12: (0, 1, 0),  # PTR
    15: (2, 1, 0),  # MX: preference, exchange
    33: (6, 1, 0),  # SRV: priority weight port, target
    39: (0, 1, 0),  # DNAME
}
_IN_RDATA_SIZE: Final = {1: 4, 28: 16}  # class IN A and AAAA: fixed RDATA lengths
MAX_RECORDS: Final = 1024


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

    Pointers must point backwards, past the header, and at most MAX_POINTER_HOPS are followed,
    so loops and hop-chains that make other parsers spin are refused here.
    """
    return _walk_name(data, pos, None)


def read_name(data: bytes, pos: int) -> tuple[bytes, int]:
    """(the name at `pos` in uncompressed wire form, the offset just past it): the same checks
    as `name_end`, for copying a name into another message where its pointers mean nothing."""
    out = bytearray()
    end = _walk_name(data, pos, out)
    return bytes(out), end


def _walk_name(data: bytes, pos: int, out: bytearray | None) -> int:
    end = len(data)
    result = -1
    hops = 0
    wire_len = 0
    while True:
        if pos >= end:
            raise BadReply("truncated")
        length = data[pos]
        if length == 0:
            if out is not None:
                out.append(0)
            return pos + 1 if result < 0 else result
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= end:
                raise BadReply("truncated")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= pos:
                raise BadReply("forward-pointer")
            if target < 12:  # our answer has another header: the name would change
                raise BadReply("pointer-into-header")
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
        if wire_len > 254:  # 255 octets with the root label's zero byte (RFC 1035 2.3.4)
            raise BadReply("name-too-long")
        if out is not None:
            out += data[pos : pos + length + 1]
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
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        rdata = pos + 10
        end = rdata + rdlen
        if end > len(data):
            raise BadReply("truncated")
        if rtype in RDATA_NAMES:
            _check_names(data, rtype, rdata, end)
        elif rclass == 1 and _IN_RDATA_SIZE.get(rtype, rdlen) != rdlen:
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
                reply.neg_ttl = min(ttl, _soa_minimum(data, end))
        pos = end
    if pos != len(data):
        raise BadReply("trailing-bytes")
    return reply


def copy_record(data: bytes, pos: int) -> tuple[bytes, bytes, int]:
    """The validated record at `pos` for another message: (owner, the rest, offset past it).

    Names are written out uncompressed (the owner, and those in RDATA of the types in
    RDATA_NAMES), because compression pointers mean nothing outside the message they came from.
    Any other RDATA is opaque and copied as it is.
    """
    owner, pos = read_name(data, pos)
    rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
    start = pos + 10
    end = start + rdlen
    shape = RDATA_NAMES.get(rtype)
    if shape is None:
        rdata = data[start:end]
    else:
        before, names, _after = shape  # scan_reply checked the shape
        pos = start + before
        parts = [data[start:pos]]
        for _ in range(names):
            name, pos = read_name(data, pos)
            parts.append(name)
        parts.append(data[pos:end])
        rdata = b"".join(parts)
    return owner, _RR_FIXED.pack(rtype, rclass, ttl, len(rdata)) + rdata, end


def without_opt(reply: Reply) -> Reply:
    """The reply with its OPT record taken out, validated again.

    Cutting the OPT's bytes out is enough when it is the last record, as it nearly always is;
    records after it may point into what moves, so they are copied with their names written out.
    """
    assert reply.opt is not None
    data = reply.data
    start, end = reply.opt
    parts = [
        HEADER.pack(reply.qid, reply.flags, 1, reply.ancount, reply.nscount, reply.arcount - 1),
        data[12:start],
    ]
    pos = end
    while pos < len(data):
        owner, rest, pos = copy_record(data, pos)
        parts += (owner, rest)
    return scan_reply(b"".join(parts))


def _check_names(data: bytes, rtype: int, start: int, end: int) -> None:
    """RDATA with names must have exactly its type's shape: its names get the same checks as
    owner names, since a rewrite copies them out (`wire.py`) and clients follow them."""
    before, names, after = RDATA_NAMES[rtype]
    pos = start + before
    for _ in range(names):
        if pos >= end:
            raise BadReply("bad-rdata")
        pos = name_end(data, pos)
    if pos + after != end:
        raise BadReply("bad-rdata")


def _soa_minimum(data: bytes, end: int) -> int:
    """MINIMUM, the last of the SOA's five 32-bit fields (its shape is checked already)."""
    minimum: int = _SOA_TAIL.unpack_from(data, end - 20)[4]
    return minimum


def question_matches(reply: bytes, qend: int, name_lower: bytes, type_class: bytes) -> bool:
    """Does the reply's question equal ours? Names compare case-insensitively, the rest exactly.

    Only the name is lower-cased: type and class bytes must not be folded (0x41 is HTTPS).
    """
    return (
        qend - 16 == len(name_lower)
        and reply[qend - 4 : qend] == type_class
        and reply[12 : qend - 4].lower() == name_lower
    )
