"""Forwarding through the real resolver: every record type intact, header flags, 0x20 case."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest
from support.authority import Authority
from support.resolver_proc import ResolverProc, dig, unique_name


def _direct(authority: Authority, name: str, rdtype: str, **kw) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    return dns.query.tcp(q, authority.host, port=authority.port, timeout=3)


def _rrsets(msg: dns.message.Message) -> set[str]:
    """Answer records as text without TTLs (TTLs legitimately count down in a cache)."""
    return {
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
        for rrset in msg.answer
        for rd in rrset
    }


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("example.org", "A"),
        ("example.org", "AAAA"),
        ("www.example.org", "A"),  # CNAME chain www -> web -> host
        ("www.example.org", "CNAME"),
        ("example.org", "MX"),
        ("example.org", "TXT"),
        ("_sip._tcp.example.org", "SRV"),
        ("1.2.0.192.in-addr.arpa", "PTR"),
        ("example.org", "HTTPS"),
        ("svc.example.org", "SVCB"),
        ("example.org", "CAA"),
    ],
)
def test_record_type_forwarded_intact(
    shared_resolver: ResolverProc, authority: Authority, name: str, rdtype: str
) -> None:
    got = shared_resolver.query(name, rdtype, use_edns=0)
    want = _direct(authority, name, rdtype, use_edns=0)
    assert got.rcode() == 0
    assert _rrsets(got) == _rrsets(want) != set()


def test_cname_chain_order_kept(shared_resolver: ResolverProc) -> None:
    got = shared_resolver.query("www.example.org", "A")
    chain = [(str(r.name), dns.rdatatype.to_text(r.rdtype)) for r in got.answer]
    assert chain == [
        ("www.example.org.", "CNAME"),
        ("web.example.org.", "CNAME"),
        ("host.example.org.", "A"),
    ]


def test_ds_and_rrsig_pass_through_with_do(shared_resolver: ResolverProc) -> None:
    plain = shared_resolver.query("secure.example.org", "DS", use_edns=0)
    assert {dns.rdatatype.to_text(r.rdtype) for r in plain.answer} == {"DS"}
    signed = shared_resolver.query("secure.example.org", "DS", want_dnssec=True)
    assert {dns.rdatatype.to_text(r.rdtype) for r in signed.answer} == {"DS", "RRSIG"}
    assert signed.ednsflags & dns.flags.DO


def test_do_bit_forwarded_upstream(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("do")
    shared_resolver.query(name, "A", want_dnssec=True)
    seen = authority.seen(name)
    assert seen and all(s.do for s in seen)


def test_flags_rd_copied_ra_set_aa_cleared(shared_resolver: ResolverProc) -> None:
    resp = shared_resolver.query(unique_name("flags"), "A")
    assert resp.flags & dns.flags.RD
    assert resp.flags & dns.flags.RA
    assert not resp.flags & dns.flags.AA  # the authority set AA; a forwarder must clear it
    assert resp.flags & dns.flags.QR


def test_rd_clear_is_copied(shared_resolver: ResolverProc) -> None:
    q = dns.message.make_query("example.org", "A")
    q.flags &= ~dns.flags.RD
    resp = dns.query.udp(q, shared_resolver.host, port=shared_resolver.port, timeout=3)
    assert not resp.flags & dns.flags.RD
    assert not resp.flags & dns.flags.AA


@pytest.mark.parametrize("tcp", [False, True])
def test_0x20_case_echoed(shared_resolver: ResolverProc, tcp: bool) -> None:
    resp = shared_resolver.query("ExAmPlE.oRg", "A", tcp=tcp)
    assert resp.question[0].name.to_text() == "ExAmPlE.oRg."
    assert resp.rcode() == 0 and resp.answer


def test_0x20_case_echoed_from_cache(shared_resolver: ResolverProc) -> None:
    name = unique_name("case")
    shared_resolver.query(name, "A")
    mixed = name.upper()
    resp = shared_resolver.query(mixed, "A")
    assert resp.question[0].name.to_text() == mixed + "."


def test_dig_udp_and_tcp(shared_resolver: ResolverProc) -> None:
    assert dig(shared_resolver, "example.org", "A", "+short").split() == ["192.0.2.1"]
    assert dig(shared_resolver, "example.org", "AAAA", "+short", "+tcp").split() == ["2001:db8::1"]
    out = dig(shared_resolver, "ExAmPlE.oRg", "MX")
    assert "status: NOERROR" in out
    assert ";ExAmPlE.oRg.\t" in out  # question section keeps the asked case
    flags = next(line for line in out.splitlines() if line.startswith(";; flags:"))
    assert " ra" in flags and " aa" not in flags
