"""The UDP fast path in a running resolver (compiled and pure, see conftest.py): repeated
queries get the answer the first one got, with their own ID and name case, and count in
/metrics exactly as answers from Python do; a cache flush forgets them; bad input is still
counted and answered as before."""

from __future__ import annotations

import json
import random
import socket
import struct
import time
import urllib.request
from typing import Any

import dns.message
import dns.query
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, unique_name

DEADLINE = 30.0  # seconds a condition may take on a loaded machine


def start(resolver_proc: ResolverFactory, authority: Authority) -> tuple[ResolverProc, str]:
    admin = free_port()
    rp = resolver_proc([authority.address], admin={"listen": [f"127.0.0.1:{admin}"]})
    return rp, f"http://127.0.0.1:{admin}"


def http(url: str, data: bytes | None = None) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        return str(resp.read().decode())


def metrics(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(http(f"{admin}/metrics")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def recased(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def test_repeats_get_the_first_answer_and_count_the_same(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp, admin = start(resolver_proc, authority)
    rng = random.Random(16)
    name = unique_name("fast")
    before = metrics(admin)
    asked = 30
    for _ in range(asked):
        query = dns.message.make_query(recased(name, rng), "A")
        resp = dns.query.udp(query, rp.host, port=rp.port, timeout=3)
        assert resp.id == query.id
        assert resp.question[0].name.labels == query.question[0].name.labels  # 0x20 case kept
        assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.200"]
        assert 0 < resp.answer[0].ttl <= 300
    after = metrics(admin)
    assert authority.count(name) == 1
    fast = delta(before, after, "safe_resolver_fast_answers_total")
    assert fast == asked - 2  # the first went upstream, the second was the first cache hit
    labels = {"transport": "udp", "qtype": "A", "profile": "", "category": ""}
    assert delta(before, after, "safe_resolver_queries_total", action="allowed", **labels) == 1
    assert delta(before, after, "safe_resolver_queries_total", action="cached", **labels) == 29
    assert delta(before, after, "safe_resolver_cache_hits_total") == asked - 1
    assert delta(before, after, "safe_resolver_query_latency_seconds_count") == asked
    first_bucket = delta(before, after, "safe_resolver_query_latency_seconds_bucket", le="0.0001")
    assert first_bucket >= fast


def test_a_cache_flush_forgets_repeated_answers(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp, admin = start(resolver_proc, authority)
    name = unique_name("flush")
    for _ in range(5):
        rp.query(name, "A")
    assert authority.count(name) == 1
    assert json.loads(http(f"{admin}/api/v1/cache/flush", data=b""))["flushed"] >= 1
    resp = rp.query(name, "A")
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.200"]
    assert authority.count(name) == 2


def test_bad_input_is_still_counted_beside_repeated_answers(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp, admin = start(resolver_proc, authority)
    name = unique_name("beside")
    rp.query(name, "A")
    head = struct.pack("!HHHHHH", 0x4242, 0x8180, 1, 0, 0, 0)  # a response: never answered
    response = head + b"\x07example\x03org\x00\x00\x01\x00\x01"
    rng = random.Random(468)
    garbage = [rng.randbytes(rng.randrange(0, 300)) for _ in range(300)]
    before = metrics(admin)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in [b"\x42", b"", *[response] * 20, *garbage]:
            sock.sendto(packet, (rp.host, rp.port))
    expect_short = 2 + sum(len(g) < 12 for g in garbage)
    expect_response = 20 + sum(len(g) >= 12 and g[2] & 0x80 != 0 for g in garbage)
    deadline = time.monotonic() + DEADLINE
    while True:
        after = metrics(admin)
        short = delta(before, after, "safe_resolver_malformed_total", reason="short-header")
        responses = delta(before, after, "safe_resolver_malformed_total", reason="response")
        if (short, responses) == (expect_short, expect_response) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (short, responses) == (expect_short, expect_response)
    resp = rp.query(name.upper(), "A")  # still serving, repeated answer included
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.200"]
