"""Upstream handling: failover, all-dead SERVFAIL with EDE, spoofed and bogus replies, and the
randomness of upstream query IDs and source ports."""

from __future__ import annotations

from collections.abc import Iterator

import dns.edns
import dns.rcode
import pytest
from dnslib import RCODE
from support.authority import Authority, Fault
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, unique_name

SPOOF_ADDR = "6.6.6.6"


@pytest.fixture
def second_authority() -> Iterator[Authority]:
    with Authority() as authority:
        yield authority


def _addrs(resp) -> list[str]:
    return [rd.to_text() for rrset in resp.answer for rd in rrset]


def test_failover_when_first_upstream_dead(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([f"127.0.0.1:{free_port()}", authority.address])
    for _ in range(5):
        resp = rp.query(unique_name("fo"), "A", timeout=4)
        assert _addrs(resp) == ["192.0.2.200"]


def test_failover_when_first_upstream_drops(
    resolver_proc: ResolverFactory, authority: Authority, second_authority: Authority
) -> None:
    second_authority.set_fault(Fault(drop=True, udp_only=False))
    rp = resolver_proc([second_authority.address, authority.address])
    for _ in range(5):
        assert _addrs(rp.query(unique_name("fo"), "A", timeout=4)) == ["192.0.2.200"]
    assert authority.count() >= 5


def test_failover_on_refused(
    resolver_proc: ResolverFactory, authority: Authority, second_authority: Authority
) -> None:
    second_authority.set_fault(Fault(rcode=RCODE.REFUSED, udp_only=False))
    rp = resolver_proc([second_authority.address, authority.address])
    assert _addrs(rp.query(unique_name("ref"), "A", timeout=4)) == ["192.0.2.200"]


def test_all_upstreams_dead_servfail_with_ede(resolver_proc: ResolverFactory) -> None:
    rp = resolver_proc([f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"])
    resp = rp.query(unique_name("dead"), "A", use_edns=0, timeout=5)
    assert resp.rcode() == dns.rcode.SERVFAIL
    assert any(opt.otype == dns.edns.OptionType.EDE for opt in resp.options)


@pytest.mark.parametrize("spoof", ["id", "question"])
def test_spoof_ignored_genuine_answer_used(
    shared_resolver: ResolverProc, authority: Authority, spoof: str
) -> None:
    name = unique_name("spoof")
    authority.set_fault(Fault(spoof=spoof, then_answer=True, delay_ms=20), name)
    assert _addrs(shared_resolver.query(name, "A")) == ["192.0.2.200"]
    assert _addrs(shared_resolver.query(name, "A")) == ["192.0.2.200"]  # cache is clean too


@pytest.mark.parametrize("spoof", ["id", "question"])
def test_spoof_only_times_out_and_is_never_cached(
    shared_resolver: ResolverProc, authority: Authority, spoof: str
) -> None:
    name = unique_name("spoofonly")
    authority.set_fault(Fault(spoof=spoof), name)
    first = shared_resolver.query(name, "A", timeout=5)
    assert first.rcode() == dns.rcode.SERVFAIL
    assert SPOOF_ADDR not in _addrs(first)
    authority.clear_faults()
    assert SPOOF_ADDR not in _addrs(shared_resolver.query(name, "A", timeout=5))


@pytest.mark.parametrize("source", ["port", "address"])
def test_reply_from_other_source_ignored(
    shared_resolver: ResolverProc, authority: Authority, source: str
) -> None:
    name = unique_name("src")
    authority.set_fault(Fault(other_source=source), name)
    resp = shared_resolver.query(name, "A", timeout=5)
    assert resp.rcode() == dns.rcode.SERVFAIL


def test_garbage_reply_survived(shared_resolver: ResolverProc, authority: Authority) -> None:
    name = unique_name("garbage")
    authority.set_fault(Fault(garbage=True), name)
    resp = shared_resolver.query(name, "A", timeout=5)
    assert resp.rcode() == dns.rcode.SERVFAIL
    assert _addrs(shared_resolver.query(unique_name("after"), "A")) == ["192.0.2.200"]


def test_upstream_ids_and_ports_random(shared_resolver: ResolverProc, authority: Authority) -> None:
    n = 40
    for _ in range(n):
        shared_resolver.query(unique_name("rand"), "A")
    seen = [s for s in authority.seen() if s.transport == "udp"]
    assert len(seen) >= n
    assert len({s.qid for s in seen}) >= n - 2  # 16-bit IDs: a collision or two is chance
    # Spread over the upstream's pool of sockets (8, each on a random port; their rotation is
    # tested in tests/dns/test_dns_upstream_pool.py).
    assert len({s.src_port for s in seen}) >= 4
