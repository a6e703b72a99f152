"""PROXY v2 end to end against the real resolver, speaking for a load balancer from 127.0.0.1
(`proxy_protocol_from`): the address in the header chooses the profile, passes or fails the
access list, has its own rate limit and is the one in the query log, over UDP and TCP. Headers
from anyone else, headers missing from a balancer and malformed ones are dropped, counted and
logged once, and the resolver goes on answering."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest
from isp_support import (
    BALANCER,
    BLOCKED,
    FAMILY,
    OUTSIDER,
    STANDARD,
    UNTRUSTED,
    answers_directly,
    api,
    ask_tcp,
    ask_udp,
    policy,
    profile_of,
    proxied_query,
    wait_for,
    wait_metric,
)
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, unique_name

from resolver.dns.proxyproto import build

REFUSED_METRIC = "safe_resolver_proxy_refused_total"


@pytest.fixture
def proxied(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> tuple[ResolverProc, int]:
    """A resolver trusting 127.0.0.1 for PROXY headers, logging full client addresses."""
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        "--proxy-protocol-from", f"{BALANCER}/32",
        policy=str(policy(tmp_path)),
        admin={"listen": [f"127.0.0.1:{admin}"]},
        querylog={"path": str(tmp_path / "q.sqlite"), "clients": "full", "flush_interval": 1},
        ratelimit={"client_qps": 5, "client_burst": 20},
        wait=False,
    )  # fmt: skip
    # Started with no header from the trusted address: probe as an ordinary client instead.
    rp.host = "127.0.0.1"
    wait_for("the resolver to answer", lambda: answers_directly(rp))
    return rp, admin


def _target(rp: ResolverProc) -> tuple[str, int]:
    return (rp.host, rp.port)


def test_the_address_in_the_header_chooses_the_profile(proxied: tuple[ResolverProc, int]) -> None:
    rp, _ = proxied
    for client, want in ((FAMILY, "family"), (STANDARD, "standard"), (FAMILY, "family")):
        wire, _ = proxied_query(BLOCKED, client)
        assert profile_of(ask_udp(wire, _target(rp))) == want
        header = build(client, 40001, BALANCER, 53, stream=True)
        tcp = ask_tcp(header, dns.message.make_query(BLOCKED, "A"), _target(rp))
        assert profile_of(tcp) == want
    # LOCAL (dnsdist's health checks): the balancer asks for itself, the default profile.
    wire, _ = proxied_query(BLOCKED, None)
    assert profile_of(ask_udp(wire, _target(rp))) == "standard"
    # Without a header the same subscriber reaches its profile directly too.
    direct = ask_udp(dns.message.make_query(BLOCKED, "A").to_wire(), _target(rp), FAMILY)
    assert profile_of(direct) == "family"


def test_access_list_rate_limit_and_query_log_see_the_client(
    proxied: tuple[ResolverProc, int],
) -> None:
    rp, admin = proxied
    wire, _ = proxied_query(unique_name("acl"), OUTSIDER)
    assert ask_udp(wire, _target(rp)).rcode() == dns.rcode.REFUSED
    # The family subscriber floods through the balancer and is limited; the standard one,
    # arriving from the same balancer address, is not.
    name = unique_name("flood")
    flooded = [ask_udp(proxied_query(name, FAMILY)[0], _target(rp)) for _ in range(60)]
    assert any(r.flags & dns.flags.TC for r in flooded)
    assert not ask_udp(proxied_query(name, STANDARD)[0], _target(rp)).flags & dns.flags.TC
    # The query log names the subscriber, not the balancer.
    logged = unique_name("log")
    ask_udp(proxied_query(logged, STANDARD)[0], _target(rp))
    rows = wait_for("the query in the log", lambda: api(admin, f"querylog?qname={logged}")["rows"])
    assert [row["client"] for row in rows] == [STANDARD]


def test_untrusted_missing_and_malformed_headers_are_dropped(
    proxied: tuple[ResolverProc, int],
) -> None:
    rp, admin = proxied
    good = dns.message.make_query("example.org", "A").to_wire()
    header = build(FAMILY, 40000, BALANCER, 53)
    bad_version = header[:12] + b"\x11" + header[13:]
    cases = [
        (UNTRUSTED, header + good, "untrusted"),
        (UNTRUSTED, header + good, "untrusted"),
        (UNTRUSTED, header + good, "untrusted"),
        (BALANCER, good, "missing"),
        (BALANCER, bad_version + good, "version"),
        (BALANCER, header[:20], "truncated"),
    ]
    sockets = {}
    for source, data, _ in cases:
        if source not in sockets:
            sockets[source] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets[source].bind((source, 0))
        sockets[source].sendto(data, _target(rp))
    for reason in ("untrusted", "missing", "version", "truncated"):
        want = sum(1 for _, _, r in cases if r == reason)
        assert wait_metric(admin, REFUSED_METRIC, want, reason=reason) == want
    # One worker reads in order: answered later queries mean no reply to those is coming.
    assert ask_udp(proxied_query("example.org", STANDARD)[0], _target(rp)).answer
    assert ask_udp(good, _target(rp), UNTRUSTED).answer
    for sock in sockets.values():
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
        sock.close()
    # TCP: an untrusted stream with a header, a trusted one without, are closed unanswered.
    query = dns.message.make_query("example.org", "A")
    with pytest.raises((ConnectionResetError, OSError)):
        ask_tcp(build(FAMILY, stream=True), query, _target(rp), UNTRUSTED)
    with pytest.raises((ConnectionResetError, OSError)):
        ask_tcp(b"", query, _target(rp), BALANCER)
    assert wait_metric(admin, REFUSED_METRIC, 4, reason="untrusted") == 4
    assert wait_metric(admin, REFUSED_METRIC, 2, reason="missing") == 2
    # Logged once (at most once a minute) for all of them, naming the source.
    lines = [line for line in rp.output().splitlines() if "PROXY header" in line]
    assert len(lines) == 1 and UNTRUSTED in lines[0], lines


def test_without_balancers_a_header_is_refused(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    """A school box (no proxy_protocol_from): nobody may speak for others."""
    admin = free_port()
    rp = resolver_proc([authority.address], admin={"listen": [f"127.0.0.1:{admin}"]})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((BALANCER, 0))
        sock.sendto(proxied_query("example.org", FAMILY)[0], _target(rp))
        assert wait_metric(admin, REFUSED_METRIC, 1, reason="untrusted") == 1
    assert rp.query("example.org").answer
    status = api(admin, "status")
    assert status["proxy_protocol_from"] == [] and status["bundle"] is None


def test_a_proxy_network_for_everyone_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("listen: ['127.0.0.1:0']\nupstreams: ['127.0.0.1']\n")
    for flag in ("0.0.0.0/0", "not-a-network"):
        result = subprocess.run(
            [sys.executable, "-m", "resolver", "serve", "--config", str(config),
             "--proxy-protocol-from", flag],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 2 and "--proxy-protocol-from" in result.stderr
