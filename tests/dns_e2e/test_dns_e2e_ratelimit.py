"""UDP rate limiting end to end: a flooding client gets TC=1 (or nothing) beyond its burst and
rate while its neighbours are answered as usual, an override lifts the limit for one address, a
prefix limit catches clients that share a /24, TCP is never limited, and /metrics counts it all.

Clients are loopback addresses bound as sources (127.0.0.0/8 is all ours on Linux). How many
queries may pass depends on how long the flood took, so the bound is computed from the time
measured, never assumed."""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, metric

NAME = "example.org"
QPS, BURST = 5, 20


def _ask(rp: ResolverProc, source: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(NAME, "A")
    if tcp:
        return dns.query.tcp(query, rp.host, port=rp.port, timeout=3, source=source)
    return dns.query.udp(query, rp.host, port=rp.port, timeout=3, source=source)


def _flood(rp: ResolverProc, source: str, count: int) -> tuple[int, int, float]:
    """Ask `count` times in turn; (full answers, TC=1 replies, seconds it took)."""
    answered = truncated = 0
    start = time.monotonic()
    for _ in range(count):
        resp = _ask(rp, source)
        if resp.flags & dns.flags.TC:
            assert resp.answer == [] and resp.rcode() == dns.rcode.NOERROR
            truncated += 1
        else:
            assert resp.answer, resp
            answered += 1
    return answered, truncated, time.monotonic() - start


def test_flooding_client_is_truncated_others_are_answered(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        admin={"listen": [f"127.0.0.1:{admin}"]},
        ratelimit={
            "client_qps": QPS,
            "client_burst": BURST,
            "prefix_qps": 100_000,
            "prefix_burst": 100_000,
            "overrides": [{"network": "127.0.0.3/32", "unlimited": True}],
        },
    )
    answered, truncated, took = _flood(rp, "127.0.0.2", 100)
    assert answered <= BURST + QPS * took + 1, (answered, took)
    assert truncated == 100 - answered and truncated > 0
    # The neighbour in the same /24 is answered as usual, and TCP is never limited.
    assert not _ask(rp, "127.0.0.4").flags & dns.flags.TC
    assert _ask(rp, "127.0.0.2", tcp=True).answer
    # An unlimited override.
    assert _flood(rp, "127.0.0.3", 100)[1] == 0
    limited = metric(admin, "safe_resolver_ratelimited_total", scope="client", action="truncate")
    assert limited == truncated


def test_prefix_limit_drops_the_excess_of_a_network(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        admin={"listen": [f"127.0.0.1:{admin}"]},
        ratelimit={
            "action": "drop",
            "client_qps": 100_000,
            "client_burst": 100_000,
            "prefix_qps": QPS,
            "prefix_burst": BURST,
        },
    )
    assert _ask(rp, "127.0.1.1").answer  # cached: every query of the flood is answered at once
    probe = dns.message.make_query(NAME, "A").to_wire()
    sent, replies = 0, 0
    start = time.monotonic()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as two,
    ):
        one.bind(("127.0.0.5", 0))
        two.bind(("127.0.0.6", 0))  # another address in the same /24
        for sock in (one, two) * 50:
            sock.sendto(probe, (rp.host, rp.port))
            sent += 1
        # Every reply that will come has come once a query sent after the flood is answered.
        assert _ask(rp, "127.0.1.1").answer  # another /24: not limited
        took = time.monotonic() - start
        for sock in (one, two):
            sock.setblocking(False)
            while True:
                try:
                    sock.recv(4096)
                except BlockingIOError:
                    break
                replies += 1
    assert 0 < replies <= BURST + QPS * took + 1, (replies, took)
    dropped = metric(admin, "safe_resolver_ratelimited_total", scope="prefix", action="drop")
    assert dropped == sent - replies
