"""Several worker processes on one port: each answers, a reload reaches all, a killed one is
replaced, counters add up across them and the query log gets every query exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, unique_name
from support.waiting import wait_for

POLICY = """\
version: 1
clients: {default: kids}
profiles:
  kids: {age: unrestricted, block_mode: nxdomain, deny: [%s]}
"""


def http(url: str, data: bytes | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        body = resp.read().decode()
    return json.loads(body) if body.startswith(("{", "[")) else body


def identity(rp: ResolverProc) -> str:
    """Which worker answers a query from a fresh socket (a new source port each time)."""
    query = dns.message.make_query("id.server", dns.rdatatype.TXT, dns.rdataclass.CH)
    answer = dns.query.udp(query, rp.host, port=rp.port, timeout=3)
    return answer.answer[0][0].strings[0].decode()


def start(resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path, **more: Any):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % "first.w.example.org")
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        policy=str(policy),
        workers=2,
        admin={"listen": [f"127.0.0.1:{admin}"]},
        **more,
    )
    return rp, f"http://127.0.0.1:{admin}", policy


def test_two_workers_answer_on_one_port_and_a_reload_reaches_both(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    rp, admin, policy = start(resolver_proc, authority, tmp_path)
    seen: set[str] = set()
    wait_for(lambda: seen.add(identity(rp)) or len(seen) == 2, "both workers answering")
    assert seen == {"safe-resolver worker 1", "safe-resolver worker 2"}
    workers = http(f"{admin}/api/v1/status")["workers"]
    assert [(w["worker"], w["alive"], w["generation"]) for w in workers] == [
        (1, True, 1),
        (2, True, 1),
    ]

    policy.write_text(POLICY % "second.w.example.org")
    result = http(f"{admin}/api/v1/reload", data=b"")
    assert result["ok"] and result["generation"] == 2
    status = http(f"{admin}/api/v1/status")
    assert {w["generation"] for w in status["workers"]} == {2}
    for _ in range(40):  # fresh sockets land on both workers: every one has the new policy
        assert rp.query("second.w.example.org").rcode() == dns.rcode.NXDOMAIN
        assert rp.query("first.w.example.org").rcode() == dns.rcode.NOERROR


def test_a_killed_worker_is_replaced_and_counters_never_go_back(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    rp, admin, _ = start(resolver_proc, authority, tmp_path)
    for _ in range(20):
        rp.query("first.w.example.org")

    def blocked() -> float:
        families = text_string_to_metric_families(http(f"{admin}/metrics"))
        return sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "safe_resolver_queries_total" and s.labels["action"] == "blocked"
        )

    assert blocked() == 20
    wait_for(
        lambda: all(w["alive"] for w in http(f"{admin}/api/v1/status")["workers"]),
        "both workers ready",
    )
    victim = http(f"{admin}/api/v1/status")["workers"][0]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        first = http(f"{admin}/api/v1/status")["workers"][0]
        return first["alive"] and first["pid"] != victim["pid"] and first["restarts"] == 1

    wait_for(replaced, "worker 1 replaced")
    for _ in range(20):
        assert rp.query("first.w.example.org").rcode() == dns.rcode.NXDOMAIN
    assert blocked() >= 20  # the dead worker's last counters are kept (its last second may not be)
    wait_for(lambda: blocked() >= 40 - 20 + 20, "the new worker's counters")
    text = http(f"{admin}/metrics")
    assert 'safe_resolver_dropped_total{reason="worker-exit"} 1.0' in text
    assert "worker 1 (pid" in rp.output() and "replacing it" in rp.output()


def test_a_replacement_worker_starts_with_a_siblings_cache(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    """A worker that replaces a dead one answers what its sibling had cached without asking
    upstream: it is not a cold cache taking half the traffic at once."""
    rp, admin, _ = start(resolver_proc, authority, tmp_path)
    wait_for(
        lambda: all(w["alive"] for w in http(f"{admin}/api/v1/status")["workers"]),
        "both workers ready",
    )
    name = unique_name("warm")
    for _ in range(40):  # fresh sockets: both workers get it into their caches
        assert rp.query(name).rcode() == dns.rcode.NOERROR
    asked = authority.count(name)
    victim = http(f"{admin}/api/v1/status")["workers"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_for(
        lambda: (
            http(f"{admin}/api/v1/status")["workers"][0]["pid"] not in (None, victim["pid"])
            and http(f"{admin}/api/v1/status")["workers"][0]["alive"]
        ),
        "worker 1 replaced",
    )
    by_replacement = 0
    while by_replacement < 5:  # SO_REUSEPORT keeps one source port on one worker
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            ask = dns.message.make_query("id.server", dns.rdatatype.TXT, dns.rdataclass.CH)
            worker = dns.query.udp(ask, rp.host, port=rp.port, timeout=3, sock=sock)
            if worker.answer[0][0].strings[0] != b"safe-resolver worker 1":
                continue
            answer = dns.query.udp(dns.message.make_query(name, "A"), rp.host, port=rp.port,
                                   timeout=3, sock=sock)  # fmt: skip
            assert answer.rcode() == dns.rcode.NOERROR and answer.answer
            by_replacement += 1
    assert authority.count(name) == asked
    assert "worker 1 starts with" in rp.output()


def test_counters_add_up_and_the_query_log_gets_each_query_once(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    db = tmp_path / "querylog.sqlite"
    rp, admin, _ = start(
        resolver_proc, authority, tmp_path, querylog={"path": str(db), "flush_interval": 1}
    )

    def allowed() -> float:
        families = text_string_to_metric_families(http(f"{admin}/metrics"))
        return sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "safe_resolver_queries_total" and s.labels["action"] == "allowed"
        )

    before = allowed()  # the start-up probes
    names = [unique_name("once") for _ in range(60)]
    for name in names:
        assert rp.query(name).rcode() == dns.rcode.NOERROR
    assert allowed() - before == len(names)
    assert rp.terminate() == 0
    with sqlite3.connect(db) as conn:
        logged = [row[0] for row in conn.execute("SELECT qname FROM queries")]
    assert sorted(name for name in logged if name.startswith("once-")) == sorted(names)
