"""Byte-level reader for incoming DNS queries: header, question and EDNS, nothing more.

A full dnslib parse costs ~13 µs and misbehaves on hostile input (recursion errors, unbounded
pointer hops), so the hot path reads only what it needs with explicit bounds. Everything that is
not a well-formed single-question query raises `Malformed` with a reason from `REASONS`; nothing
else ever escapes, whatever the bytes (checked with hypothesis).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Final

from resolver.match.key import NON_ASCII, NameKey
from resolver.pure import serves_compiled

HEADER: Final = struct.Struct("!HHHHHH")
_RR_FIXED: Final = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_OPT_OPTION: Final = struct.Struct("!HH")

QR: Final = 0x8000
OPCODE_MASK: Final = 0x7800
AA: Final = 0x0400
TC: Final = 0x0200
RD: Final = 0x0100
RA: Final = 0x0080
AD: Final = 0x0020
CD: Final = 0x0010

TYPE_OPT: Final = 41
OPT_ECS: Final = 8
MAX_NAME_WIRE: Final = 255
MAX_RRS_SCANNED: Final = 64  # a query has no business carrying more records than this

# reason -> whether a FORMERR answer can be sent (the header was readable and it is a query)
REASONS: Final[dict[str, bool]] = {
    "short-header": False,  # fewer than 12 bytes: nothing to answer to
    "response": False,  # QR=1: never answer a response (reflection loops)
    "qdcount": True,  # not exactly one question
    "truncated-question": True,
    "compressed-question": True,  # pointers or extended labels in the question name
    "name-too-long": True,
    "dot-in-label": True,  # a '.' byte inside a label would make the name ambiguous for matching
    "truncated-rr": True,
    "too-many-rrs": True,
    "bad-opt": True,  # OPT not at the root, twice, or with broken options
}


class Malformed(Exception):
    """The packet is not a query we can process; `formerr` says whether to answer FORMERR."""

    __slots__ = ("formerr", "qid", "reason")

    def __init__(self, reason: str, qid: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.formerr = REASONS[reason]
        self.qid = qid


class Query:
    """What the resolver needs to know about one query. Built once per packet, never mutated."""

    __slots__ = (
        "data",
        "do",
        "ecs",
        "edns",
        "edns_version",
        "flags",
        "key",
        "qclass",
        "qend",
        "qid",
        "qname",
        "qtype",
        "udp_size",
    )

    def __init__(
        self,
        data: bytes,
        qid: int,
        flags: int,
        qname: str,
        key: NameKey,
        qtype: int,
        qclass: int,
        qend: int,
    ) -> None:
        self.data = data  # the packet as received
        self.qid = qid
        self.flags = flags
        self.qname = qname  # lower-case, no trailing dot, "" for the root
        self.key = key  # qname as the matching core reads it (resolver.match.key)
        self.qtype = qtype
        self.qclass = qclass
        self.qend = qend  # offset just past the question: data[12:qend] is it, case as sent
        self.edns = False
        self.udp_size = 512
        self.do = False
        self.edns_version = 0
        self.ecs: str | None = None  # EDNS Client Subnet as "addr/prefix", if present

    @property
    def question(self) -> bytes:
        """The question section exactly as the client sent it (keeps 0x20 mixed case)."""
        return self.data[12 : self.qend]

    def own_copy(self) -> Query:
        """This parse for this packet alone: `data` with the current ID. A copy, not a second
        read: the bytes but for the ID are the ones read, so every other field holds."""
        copy = Query(self.qid.to_bytes(2, "big") + self.data[2:], self.qid, self.flags,
                     self.qname, self.key, self.qtype, self.qclass, self.qend)  # fmt: skip
        copy.edns, copy.udp_size, copy.do = self.edns, self.udp_size, self.do
        copy.edns_version, copy.ecs = self.edns_version, self.ecs
        return copy


def read_query(data: bytes) -> Query:
    """Read header, question and any OPT record of a query packet."""
    if len(data) < 12:
        raise Malformed("short-header")
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise Malformed("response", qid)
    if qdcount != 1:
        raise Malformed("qdcount", qid)
    read = question_name(data)
    if isinstance(read, str):
        raise Malformed(read, qid)
    qname, key, pos = read
    if pos + 4 > len(data):
        raise Malformed("truncated-question", qid)
    qtype = (data[pos] << 8) | data[pos + 1]
    qclass = (data[pos + 2] << 8) | data[pos + 3]
    query = Query(data, qid, flags, qname, key, qtype, qclass, pos + 4)
    if ancount or nscount or arcount:
        _read_records(query, pos + 4, ancount + nscount, arcount)
    return query


def python_question_name(data: bytes) -> tuple[str, NameKey, int] | str:
    """Decode the question name without following pointers: (name, its `name_key` pair for
    the matching core, offset after it), or the reason it is malformed. The dots come from
    the label walk the validation does anyway: a label's length byte at `pos` becomes the "."
    at `pos - 13` of the name (-1 for the first label: the walk's sentinel). The reference of
    resolver/dns/_question.c, which serves where it is built."""
    pos = 12
    end = len(data)
    dots: list[int] = []
    while True:
        if pos >= end:
            return "truncated-question"
        length = data[pos]
        if length == 0:
            break
        if length & 0xC0:
            return "compressed-question"
        dots.append(pos - 13)
        pos += length + 1
        if pos - 12 >= MAX_NAME_WIRE:
            return "name-too-long"
    if pos == 12:
        return "", (b"\n", [-1]), 13
    wire = bytearray(data[13 : pos + 1])  # the labels and the root's zero byte
    for i in dots:  # the first, -1, marks the zero byte, which becomes the "\n" below
        wire[i] = 0x2E
    wire[-1] = 0x0A
    # Label bytes may not contain '.', or "a.b" as one label would match like two. (Counted
    # after the length bytes became dots: a label of 46 octets has length byte 0x2E.)
    if wire.count(0x2E) != len(dots) - 1:
        return "dot-in-label"
    key = bytes(wire).lower()
    name = key[:-1].decode("latin-1")
    if not key.isascii():
        key = key.translate(NON_ASCII)
    return name, (key, dots), pos + 1


question_name: Callable[[bytes], tuple[str, NameKey, int] | str] = python_question_name
if serves_compiled("resolver.dns._question"):
    from resolver.dns._question import question_name


def _skip_name(data: bytes, pos: int, qid: int) -> int:
    """Offset just past a (possibly compressed) name; pointers are not followed."""
    end = len(data)
    while True:
        if pos >= end:
            raise Malformed("truncated-rr", qid)
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise Malformed("truncated-rr", qid)
        pos += length + 1


def _read_records(query: Query, pos: int, skip: int, arcount: int) -> None:
    """Walk answer/authority (skipped) and additional records, reading the OPT record."""
    data = query.data
    qid = query.qid
    if skip + arcount > MAX_RRS_SCANNED:
        raise Malformed("too-many-rrs", qid)
    for index in range(skip + arcount):
        name_start = pos
        pos = _skip_name(data, pos, qid)
        if pos + 10 > len(data):
            raise Malformed("truncated-rr", qid)
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        pos += 10
        if pos + rdlen > len(data):
            raise Malformed("truncated-rr", qid)
        if rtype == TYPE_OPT and index >= skip:
            if query.edns or data[name_start] != 0:
                raise Malformed("bad-opt", qid)
            query.edns = True
            query.udp_size = max(rclass, 512)
            query.edns_version = (ttl >> 16) & 0xFF
            query.do = bool(ttl & 0x8000)
            _read_options(query, data, pos, pos + rdlen)
        pos += rdlen


def _read_options(query: Query, data: bytes, pos: int, end: int) -> None:
    while pos < end:
        if pos + 4 > end:
            raise Malformed("bad-opt", query.qid)
        code, length = _OPT_OPTION.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise Malformed("bad-opt", query.qid)
        if code == OPT_ECS:
            query.ecs = _read_ecs(data[pos : pos + length], query.qid)
        pos += length


def _read_ecs(option: bytes, qid: int) -> str | None:
    """EDNS Client Subnet (RFC 7871) as "addr/prefix"; None when it names no address."""
    if len(option) < 4:
        raise Malformed("bad-opt", qid)
    family = (option[0] << 8) | option[1]
    prefix = option[2]
    address = option[4:]
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    if family == 1 and prefix <= 32 and len(address) <= 4:
        net = ipaddress.IPv4Network((address.ljust(4, b"\0"), prefix), strict=False)
    elif family == 2 and prefix <= 128 and len(address) <= 16:
        net = ipaddress.IPv6Network((address.ljust(16, b"\0"), prefix), strict=False)
    else:
        raise Malformed("bad-opt", qid)
    return None if prefix == 0 else str(net)


def encode_name(name: str) -> bytes:
    """Wire form of a dotted ASCII name (no compression); "" or "." is the root."""
    name = name.rstrip(".")
    if not name:
        return b"\0"
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > MAX_NAME_WIRE:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)
