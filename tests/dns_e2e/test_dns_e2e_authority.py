"""The test authority itself, checked with dnspython: the e2e tests are only as good as it is."""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from dnslib import RCODE
from support.authority import Authority, Fault
from support.resolver_proc import unique_name


def _udp(authority: Authority, name: str, rdtype: str = "A", **kw) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    return dns.query.udp(q, authority.host, port=authority.port, timeout=2)


def test_answers_and_counts(authority: Authority) -> None:
    resp = _udp(authority, "ExAmPlE.oRg")
    assert resp.flags & dns.flags.AA
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.1"]
    assert resp.question[0].name.to_text() == "ExAmPlE.oRg."
    assert authority.count("example.org", "A", "udp") == 1
    assert authority.seen()[0].qname == "ExAmPlE.oRg"


def test_negative_answers_carry_soa(authority: Authority) -> None:
    nx = _udp(authority, "nope.example.org")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].ttl == 60
    nodata = _udp(authority, "v4only.example.org", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority


def test_big_answer_truncated_over_udp_full_over_tcp(authority: Authority) -> None:
    assert _udp(authority, "big.example.org", "TXT", use_edns=0).flags & dns.flags.TC
    q = dns.message.make_query("big.example.org", "TXT")
    full = dns.query.tcp(q, authority.host, port=authority.port, timeout=2)
    assert sum(len(s) for rd in full.answer[0] for s in rd.strings) > 2000


def test_rrsig_only_with_do(authority: Authority) -> None:
    kinds = {r.rdtype for r in _udp(authority, "secure.example.org", "DS", use_edns=0).answer}
    assert kinds == {dns.rdatatype.DS}
    signed = _udp(authority, "secure.example.org", "DS", want_dnssec=True)
    assert {r.rdtype for r in signed.answer} == {dns.rdatatype.DS, dns.rdatatype.RRSIG}


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault(rcode=RCODE.SERVFAIL), lambda r: r.rcode() == dns.rcode.SERVFAIL),
        (Fault(rcode=RCODE.REFUSED), lambda r: r.rcode() == dns.rcode.REFUSED),
        (Fault(truncate=True), lambda r: r.flags & dns.flags.TC and not r.answer),
    ],
)
def test_rcode_and_truncate_faults(authority: Authority, fault: Fault, check) -> None:
    name = unique_name("fault")
    authority.set_fault(fault, name)
    assert check(_udp(authority, name))


def _raw(authority: Authority, name: str, qid: int = 0x1234) -> list[tuple[bytes, tuple]]:
    """Send one query from a raw socket and collect every datagram that comes back."""
    wire = dns.message.make_query(name, "A", id=qid).to_wire()
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(wire, (authority.host, authority.port))
        while True:
            try:
                out.append(sock.recvfrom(65535))
            except TimeoutError:
                return out


def test_spoof_then_answer(authority: Authority) -> None:
    name = unique_name("spoof")
    authority.set_fault(Fault(spoof="id", then_answer=True), name)
    (forged, _), (genuine, _) = _raw(authority, name)
    assert struct.unpack("!H", forged[:2])[0] != 0x1234
    assert struct.unpack("!H", genuine[:2])[0] == 0x1234
    authority.set_fault(Fault(spoof="question", then_answer=True), name)
    (forged, _), (genuine, _) = _raw(authority, name)
    assert str(dns.message.from_wire(forged).question[0].name) == f"spoofed.{name}."
    assert str(dns.message.from_wire(genuine).question[0].name) == f"{name}."


def test_other_source_and_drop(authority: Authority) -> None:
    name = unique_name("src")
    authority.set_fault(Fault(other_source="address"), name)
    [(_, addr)] = _raw(authority, name)
    assert addr[0] == "127.0.0.2"
    authority.set_fault(Fault(other_source="port"), name)
    [(_, addr)] = _raw(authority, name)
    assert addr[0] == "127.0.0.1" and addr[1] != authority.port
    authority.set_fault(Fault(drop=True), name)
    assert _raw(authority, name) == []


def test_garbage_keeps_id(authority: Authority) -> None:
    name = unique_name("garbage")
    authority.set_fault(Fault(garbage=True), name)
    [(reply, _)] = _raw(authority, name)
    assert reply[:2] == b"\x12\x34"
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(reply)
