"""Header flags on every kind of reply: RA says whether we offer recursion to this client, and an
opcode we do not implement gets NOTIMP with nothing else echoed (ISC genreport's `opcode` and
`opcodeflg` probes, sent here as raw packets and with dig)."""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, dig, unique_name

QID = 0x5151
QR, AA, TC, RD, RA, Z, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010
OPCODE_15 = 15 << 11
NOTIMP, FORMERR = 4, 1
EXAMPLE_A = b"\x07example\x03org\x00" + struct.pack("!HH", 1, 1)


def _raw(rp: ResolverProc, packet: bytes, source: str = "127.0.0.1") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(3)
        sock.sendto(packet, (rp.host, rp.port))
        return sock.recv(65535)


def _header(reply: bytes) -> tuple[int, int, int, int, int, int]:
    return struct.unpack("!HHHHHH", reply[:12])


@pytest.mark.parametrize(
    "flags",
    [OPCODE_15, OPCODE_15 | AA | TC | RD | RA | Z | AD | CD],
    ids=["opcode", "opcodeflg"],
)
def test_unknown_opcode_without_question_gets_notimp_and_no_flags(
    shared_resolver: ResolverProc, flags: int
) -> None:
    reply = _raw(shared_resolver, struct.pack("!HHHHHH", QID, flags, 0, 0, 0, 0))
    qid, rflags, qd, an, ns, ar = _header(reply)
    assert qid == QID
    assert rflags == QR | OPCODE_15 | NOTIMP, hex(rflags)  # no AA TC RD RA Z AD CD
    assert (qd, an, ns, ar) == (0, 0, 0, 0) and len(reply) == 12


def test_unknown_opcode_with_question_gets_notimp_and_no_flags(
    shared_resolver: ResolverProc,
) -> None:
    query = struct.pack("!HHHHHH", QID, OPCODE_15 | RD | CD, 1, 0, 0, 0) + EXAMPLE_A
    reply = _raw(shared_resolver, query)
    assert _header(reply)[:2] == (QID, QR | OPCODE_15 | NOTIMP)


def test_dig_genreport_opcode_probe(shared_resolver: ResolverProc) -> None:
    out = dig(shared_resolver, "+noedns", "+header-only", "+opcode=15", "+rec", "+raflag")
    assert "opcode: RESERVED15, status: NOTIMP" in out, out
    assert ";; flags: qr;" in out, out  # neither rd nor ra


def test_ra_on_answers_and_formerr_for_clients_we_serve(shared_resolver: ResolverProc) -> None:
    for rdtype in ("A", "ANY", "AXFR"):
        resp = shared_resolver.query(unique_name("ra"), rdtype)
        assert resp.flags & dns.flags.RA, (rdtype, resp)
    reply = _raw(shared_resolver, struct.pack("!HHHHHH", QID, RD, 2, 0, 0, 0))  # QDCOUNT 2
    assert _header(reply)[1] == QR | RD | RA | FORMERR


def test_no_ra_for_clients_outside_the_access_list(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], access={"allow": ["127.0.0.1/32"]})
    outsider = "127.0.0.2"
    query = dns.message.make_query(unique_name("out"), "A")
    resp = dns.query.udp(query, rp.host, port=rp.port, timeout=3, source=outsider)
    assert resp.rcode() == dns.rcode.REFUSED
    assert not resp.flags & dns.flags.RA and resp.flags & dns.flags.RD
    reply = _raw(rp, struct.pack("!HHHHHH", QID, RD, 2, 0, 0, 0), source=outsider)
    assert _header(reply)[1] == QR | RD | FORMERR
    assert rp.query(unique_name("in"), "A").flags & dns.flags.RA  # 127.0.0.1 is served
