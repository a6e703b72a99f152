"""TC=1 to clients whose UDP size is too small, full answers over TCP, TCP retry upstream."""

from __future__ import annotations

import dns.flags
import dns.rdatatype
from support.authority import Authority, Fault
from support.resolver_proc import ResolverProc, dig, unique_name


def _txt_len(resp) -> int:
    return sum(len(s) for rrset in resp.answer for rd in rrset for s in rd.strings)


def test_big_answer_truncated_for_small_client_then_full_over_tcp(
    shared_resolver: ResolverProc, authority: Authority
) -> None:
    name = unique_name("big", zone="big.example.org")
    udp = shared_resolver.query(name, "TXT", use_edns=0, payload=512)
    assert udp.flags & dns.flags.TC
    tcp = shared_resolver.query(name, "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert _txt_len(tcp) > 2000


def test_upstream_truncation_retried_over_tcp(
    shared_resolver: ResolverProc, authority: Authority
) -> None:
    """The 2.4 kB answer does not fit the resolver's 1232-byte upstream UDP size."""
    name = unique_name("big", zone="big.example.org")
    resp = shared_resolver.query(name, "TXT", tcp=True)
    assert _txt_len(resp) > 2000
    assert authority.count(name, "TXT", "tcp") == 1


def test_forced_upstream_tc_retried_over_tcp(
    shared_resolver: ResolverProc, authority: Authority
) -> None:
    name = unique_name("tc")
    authority.set_fault(Fault(truncate=True), name)
    resp = shared_resolver.query(name, "A")
    assert not resp.flags & dns.flags.TC
    assert [r.to_text() for r in resp.answer[0]] == ["192.0.2.200"]
    assert authority.count(name, "A", "udp") >= 1
    assert authority.count(name, "A", "tcp") == 1


def test_no_edns_client_gets_tc_over_512(shared_resolver: ResolverProc) -> None:
    resp = shared_resolver.query("big.example.org", "TXT", use_edns=False)
    assert resp.flags & dns.flags.TC
    assert resp.edns == -1


def test_dig_bufsize_512_tc_and_tcp_full(shared_resolver: ResolverProc) -> None:
    out = dig(shared_resolver, "big.example.org", "TXT", "+bufsize=512", "+ignore")
    flags = next(line for line in out.splitlines() if line.startswith(";; flags:"))
    assert " tc" in flags
    full = dig(shared_resolver, "big.example.org", "TXT", "+tcp", "+short")
    assert len(full) > 2000
