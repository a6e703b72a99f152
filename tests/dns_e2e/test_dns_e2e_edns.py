"""EDNS(0) as a forwarder must do it (RFC 6891), and ANY queries (RFC 8482)."""

from __future__ import annotations

import dns.edns
import dns.rcode
import dns.rdatatype
from support.resolver_proc import ResolverProc, dig, unique_name


def test_advertises_1232(shared_resolver: ResolverProc) -> None:
    resp = shared_resolver.query(unique_name("edns"), "A", use_edns=0, payload=4096)
    assert resp.edns == 0
    assert resp.payload == 1232


def test_no_opt_when_query_had_none(shared_resolver: ResolverProc) -> None:
    resp = shared_resolver.query(unique_name("noedns"), "A", use_edns=False)
    assert resp.edns == -1
    assert resp.rcode() == 0


def test_unknown_option_not_echoed(shared_resolver: ResolverProc) -> None:
    opt = dns.edns.GenericOption(65001, b"\xab\xcd")
    resp = shared_resolver.query(unique_name("opt"), "A", use_edns=0, options=[opt])
    assert resp.rcode() == 0
    assert all(o.otype != 65001 for o in resp.options)


def test_edns_version_1_badvers(shared_resolver: ResolverProc) -> None:
    resp = shared_resolver.query(unique_name("v1"), "A", use_edns=1)
    assert resp.rcode() == dns.rcode.BADVERS
    assert resp.edns == 0


def test_any_gets_minimal_answer(shared_resolver: ResolverProc) -> None:
    resp = shared_resolver.query("example.org", "ANY")
    assert resp.rcode() == 0
    hinfo = [rd for rrset in resp.answer if rrset.rdtype == dns.rdatatype.HINFO for rd in rrset]
    assert len(hinfo) == 1 and hinfo[0].cpu == b"RFC8482"


def test_dig_edns_cases(shared_resolver: ResolverProc) -> None:
    out = dig(shared_resolver, "example.org", "A")
    assert "udp: 1232" in out
    out = dig(shared_resolver, "example.org", "A", "+noedns")
    assert "OPT PSEUDOSECTION" not in out and "status: NOERROR" in out
    out = dig(shared_resolver, "example.org", "A", "+ednsopt=65001:abcd")
    opt_section = out.split("OPT PSEUDOSECTION")[1].split("QUESTION SECTION")[0]
    assert "65001" not in opt_section
    out = dig(shared_resolver, "example.org", "A", "+edns=1", "+noednsnegotiation")
    assert "status: BADVERS" in out
    out = dig(shared_resolver, "secure.example.org", "DS", "+dnssec")
    assert "RRSIG" in out and "flags: do;" in out
