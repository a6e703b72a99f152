"""The cache as clients and the upstream see it: TTL countdown, clamps, negative and SERVFAIL
caching, coalescing of identical in-flight queries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import dns.rcode
import dns.rdatatype
from dnslib import RCODE
from support.authority import Authority, Fault
from support.resolver_proc import ResolverFactory, ResolverProc, unique_name


def _ttl(resp) -> int:
    return min(rrset.ttl for rrset in resp.answer)


def test_ttl_counts_down_and_second_query_is_cached(
    shared_resolver: ResolverProc, authority: Authority
) -> None:
    name = unique_name("ttl")
    first = shared_resolver.query(name, "A")
    assert _ttl(first) <= 300
    time.sleep(2.1)
    second = shared_resolver.query(name, "A")
    assert _ttl(second) <= _ttl(first) - 1
    assert [r.to_text() for r in second.answer[0]] == ["192.0.2.200"]
    assert authority.count(name, "A") == 1


def test_cache_is_case_insensitive(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("ci")
    shared_resolver.query(name, "A")
    shared_resolver.query(name.upper(), "A")
    assert authority.count(name, "A") == 1


def test_cache_key_includes_type(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("types")
    shared_resolver.query(name, "A")
    resp = shared_resolver.query(name, "AAAA")
    assert [r.to_text() for r in resp.answer[0]] == ["2001:db8::200"]
    assert authority.count(name) == 2


def test_min_and_max_ttl_clamps(resolver_proc: ResolverFactory, authority: Authority) -> None:
    rp = resolver_proc([authority.address], cache={"min_ttl": 60, "max_ttl": 100})
    short = rp.query("short.example.org", "A")  # upstream TTL 1
    assert 50 <= _ttl(short) <= 60
    long = rp.query("long.example.org", "A")  # upstream TTL 604800
    assert 90 <= _ttl(long) <= 100
    time.sleep(1.5)  # past the upstream TTL of 1 s: still cached thanks to min_ttl
    rp.query("short.example.org", "A")
    assert authority.count("short.example.org", "A") == 1


def test_nxdomain_cached_from_soa(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("nx", zone="example.org")
    first = shared_resolver.query(name, "A")
    assert first.rcode() == dns.rcode.NXDOMAIN
    soa = [r for r in first.authority if r.rdtype == dns.rdatatype.SOA]
    assert soa and soa[0].ttl <= 60  # RFC 2308: min(SOA TTL, SOA MINIMUM)
    second = shared_resolver.query(name, "A")
    assert second.rcode() == dns.rcode.NXDOMAIN
    assert authority.count(name) == 1


def test_nodata_cached_from_soa(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("nodata")  # the wildcard has A and AAAA only
    first = shared_resolver.query(name, "TXT")
    assert first.rcode() == dns.rcode.NOERROR and not first.answer
    assert any(r.rdtype == dns.rdatatype.SOA for r in first.authority)
    second = shared_resolver.query(name, "TXT")
    assert second.rcode() == dns.rcode.NOERROR and not second.answer
    assert authority.count(name, "TXT") == 1


def test_negative_ttl_capped(resolver_proc: ResolverFactory, authority: Authority) -> None:
    rp = resolver_proc([authority.address], cache={"negative_max_ttl": 10})
    resp = rp.query(unique_name("nxcap", zone="example.org"), "A")
    assert resp.rcode() == dns.rcode.NXDOMAIN
    assert all(r.ttl <= 10 for r in resp.authority)


def test_servfail_cached_briefly(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("sf")
    authority.set_fault(Fault(rcode=RCODE.SERVFAIL), name)
    assert shared_resolver.query(name, "A").rcode() == dns.rcode.SERVFAIL
    asked = authority.count(name)
    assert asked >= 1
    assert shared_resolver.query(name, "A").rcode() == dns.rcode.SERVFAIL
    assert authority.count(name) == asked  # served from the short SERVFAIL cache


def test_identical_concurrent_queries_coalesced(
    shared_resolver: ResolverProc, authority: Authority
) -> None:
    name = unique_name("coalesce")
    authority.set_fault(Fault(delay_ms=300), name)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: shared_resolver.query(name, "A"), range(20)))
    assert all(a.rcode() == 0 and a.answer for a in answers)
    assert authority.count(name, "A") == 1
