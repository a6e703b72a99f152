"""Hostile bytes over raw UDP: FORMERR when a header can be read, silence otherwise, and the
server keeps answering everyone afterwards."""

from __future__ import annotations

import socket
import struct

import pytest
from support.resolver_proc import ResolverProc, unique_name

QID = 0x4242
HEADER_1Q = struct.pack("!HHHHHH", QID, 0x0100, 1, 0, 0, 0)
A_IN = struct.pack("!HH", 1, 1)
EXAMPLE = b"\x07example\x03org\x00"


def _send(rp: ResolverProc, packet: bytes, timeout: float = 0.7) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (rp.host, rp.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


FORMERR_CASES = {
    "garbage question": HEADER_1Q + b"\xff\xfe\xfd",
    "truncated question": HEADER_1Q + b"\x07exam",
    "qdcount 2": struct.pack("!HHHHHH", QID, 0x0100, 2, 0, 0, 0) + (EXAMPLE + A_IN) * 2,
    "compression loop": HEADER_1Q + b"\xc0\x0c" + A_IN,
    "two-pointer loop": HEADER_1Q + b"\x01a\xc0\x0e" + A_IN,
    "name over 255 bytes": HEADER_1Q + (b"\x3f" + b"a" * 63) * 5 + b"\x00" + A_IN,
}

DROP_CASES = {
    "short header": b"\x42\x42\x01",
    "empty": b"",
    "response packet": struct.pack("!HHHHHH", QID, 0x8180, 1, 0, 0, 0) + EXAMPLE + A_IN,
}


@pytest.mark.parametrize("packet", FORMERR_CASES.values(), ids=FORMERR_CASES.keys())
def test_formerr_when_header_readable(shared_resolver: ResolverProc, packet: bytes) -> None:
    reply = _send(shared_resolver, packet, timeout=2)
    assert reply is not None and len(reply) >= 12
    qid, flags = struct.unpack("!HH", reply[:4])
    assert qid == QID
    assert flags & 0x8000  # QR
    assert flags & 0x000F == 1  # FORMERR
    _still_answers(shared_resolver)


@pytest.mark.parametrize("packet", DROP_CASES.values(), ids=DROP_CASES.keys())
def test_dropped_without_reply(shared_resolver: ResolverProc, packet: bytes) -> None:
    assert _send(shared_resolver, packet) is None
    _still_answers(shared_resolver)


def test_flood_of_junk_does_not_stall(shared_resolver: ResolverProc) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in [*FORMERR_CASES.values(), *DROP_CASES.values()] * 50:
            sock.sendto(packet, (shared_resolver.host, shared_resolver.port))
    # 450 datagrams at once overflow the kernel's default ~208 kB receive buffer (each small
    # datagram costs ~1 kB of it); the resolver's 8 MB buffer holds them, so nothing is lost.
    _still_answers(shared_resolver)


def _still_answers(rp: ResolverProc) -> None:
    resp = rp.query(unique_name("alive"), "A", timeout=2)
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.200"]
