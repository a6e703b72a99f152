"""Answers we write ourselves, byte by byte: errors, blocks, ANY, truncation.

Blocked and refused answers are on the hot path (an ISP sees millions), so they are built from
the query's own question bytes plus a few packed fields instead of going through dnslib.
"""

from __future__ import annotations

import functools
import struct
from typing import Final

from resolver.dns.packet import HEADER, OPCODE_MASK, QR, RA, RD, TC, Query

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS: Final = 16
TYPE_A, TYPE_AAAA, TYPE_HINFO, TYPE_TXT = 1, 28, 13, 16
ADVERTISED_UDP_SIZE: Final = 1232  # DNS Flag Day 2020: no IP fragmentation

# RFC 8914 Extended DNS Error info-codes we use.
EDE_STALE_ANSWER: Final = 3
EDE_CENSORED: Final = 16  # blocked because an outside authority requires it (the mandated list)
EDE_FILTERED: Final = 17  # blocked because the client's own filtering profile asks for it
EDE_PROHIBITED: Final = (
    18  # the client may not ask us (unknown encrypted-DNS identity, over its rate)
)
EDE_NOT_SUPPORTED: Final = 21
EDE_NO_REACHABLE_AUTHORITY: Final = 22
EDE_NETWORK_ERROR: Final = 23  # an upstream's reply could not be used

_OPT: Final = struct.Struct(
    "!BHHIH"
)  # root name, TYPE, CLASS (udp size), TTL (ext-rcode/version/flags), RDLEN
_RR_HEAD: Final = struct.Struct("!HHHIH")  # name pointer, type, class, ttl, rdlength
_EDE_HEAD: Final = struct.Struct("!HHH")  # option code 15, length, info-code
_NAME_PTR: Final = 0xC00C  # pointer to the question name at offset 12


@functools.lru_cache(maxsize=4096)
def opt_record(do: bool, ede: tuple[int, str] | None = None, ext_rcode: int = 0) -> bytes:
    """Our OPT record: advertise 1232 bytes, echo DO, carry an Extended DNS Error if given."""
    options = b""
    if ede is not None:
        text = ede[1].encode("utf-8")[:200]
        options = _EDE_HEAD.pack(15, 2 + len(text), ede[0]) + text
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return _OPT.pack(0, 41, ADVERTISED_UDP_SIZE, ttl, len(options)) + options


OPT_PLAIN: Final = opt_record(False)
OPT_DO: Final = opt_record(True)


def reply_flags(query_flags: int, rcode: int) -> int:
    """Header flags for our answer to a QUERY from a client we serve: QR set, RA set (recursion
    is what we offer it), opcode and RD copied, AA never set."""
    return QR | (query_flags & (OPCODE_MASK | RD)) | RA | (rcode & 0xF)


def _finish(
    query: Query,
    rcode: int,
    flags: int,
    answers: bytes,
    ancount: int,
    ede: tuple[int, str] | None,
) -> bytes:
    opt = b""
    arcount = 0
    if query.edns:
        if ede is None and rcode < 16:
            opt = OPT_DO if query.do else OPT_PLAIN
        else:
            opt = opt_record(query.do, ede, rcode >> 4)
        arcount = 1
    header = HEADER.pack(query.qid, flags, 1, ancount, 0, arcount)
    return header + query.data[12 : query.qend] + answers + opt


def error_response(query: Query, rcode: int, ede: tuple[int, str] | None = None) -> bytes:
    """REFUSED, SERVFAIL, NXDOMAIN, NOTIMP... with the question echoed and EDE when EDNS."""
    return _finish(query, rcode, reply_flags(query.flags, rcode), b"", 0, ede)


def not_served(query: Query, ede: tuple[int, str] | None = None) -> bytes:
    """REFUSED for a client outside the access list: RA clear, recursion is not offered to it."""
    flags = QR | (query.flags & (OPCODE_MASK | RD)) | REFUSED
    return _finish(query, REFUSED, flags, b"", 0, ede)


def notimp(query: Query) -> bytes:
    """NOTIMP for an opcode other than QUERY: QR and the opcode only. RD, RA, AD and CD mean
    something for QUERY alone, so none is echoed or offered (ISC genreport's `opcode` and
    `opcodeflg` checks)."""
    return _finish(query, NOTIMP, QR | (query.flags & OPCODE_MASK) | NOTIMP, b"", 0, None)


def nodata(query: Query, ede: tuple[int, str] | None = None) -> bytes:
    return _finish(query, NOERROR, reply_flags(query.flags, NOERROR), b"", 0, ede)


def address_answer(
    query: Query, rtype: int, rdatas: list[bytes], ttl: int, ede: tuple[int, str] | None = None
) -> bytes:
    """A or AAAA records for the question name (owner is a pointer to the question)."""
    body = b"".join(_RR_HEAD.pack(_NAME_PTR, rtype, 1, ttl, len(r)) + r for r in rdatas)
    return _finish(query, NOERROR, reply_flags(query.flags, NOERROR), body, len(rdatas), ede)


def any_answer(query: Query) -> bytes:
    """RFC 8482: answer ANY with one synthesized HINFO record instead of everything."""
    rdata = b"\x07RFC8482\x00"
    body = _RR_HEAD.pack(_NAME_PTR, TYPE_HINFO, 1, 3600, len(rdata)) + rdata
    return _finish(query, NOERROR, reply_flags(query.flags, NOERROR), body, 1, None)


def txt_answer(query: Query, text: str) -> bytes:
    """One TXT record for the question (its own class: CH for `id.server`), never cached."""
    raw = text.encode("utf-8")[:255]
    rdata = bytes((len(raw),)) + raw
    body = _RR_HEAD.pack(_NAME_PTR, TYPE_TXT, query.qclass, 0, len(rdata)) + rdata
    return _finish(query, NOERROR, reply_flags(query.flags, NOERROR), body, 1, None)


def badvers(query: Query) -> bytes:
    """EDNS version above 0: BADVERS (extended RCODE 16), question echoed."""
    header = HEADER.pack(query.qid, reply_flags(query.flags, 0), 1, 0, 0, 1)
    return header + query.data[12 : query.qend] + opt_record(query.do, None, BADVERS >> 4)


def unreadable(data: bytes, qid: int, served: bool) -> bytes:
    """Header-only answer to a packet whose question we could not read. The opcode decides what
    the rest of a message means, so an opcode other than QUERY gets NOTIMP whatever follows
    (genreport sends opcode 15 with no question); a QUERY gets FORMERR, with RA only for a client
    we serve."""
    flags = (data[2] << 8 | data[3]) if len(data) >= 4 else 0
    if flags & OPCODE_MASK:
        return HEADER.pack(qid, QR | (flags & OPCODE_MASK) | NOTIMP, 0, 0, 0, 0)
    reply = reply_flags(flags, FORMERR)
    return HEADER.pack(qid, reply if served else reply & ~RA, 0, 0, 0, 0)


def truncated(query: Query) -> bytes:
    """An answer too big for the client's UDP size: TC=1 with the question only."""
    opt = (OPT_DO if query.do else OPT_PLAIN) if query.edns else b""
    flags = reply_flags(query.flags, NOERROR) | TC
    header = HEADER.pack(query.qid, flags, 1, 0, 0, 1 if opt else 0)
    return header + query.data[12 : query.qend] + opt
