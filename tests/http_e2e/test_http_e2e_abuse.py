"""The real resolver under HTTP abuse: slow-header and idle connections to the block page are
closed on time and capped per address and in all, bad requests are one log line, and DNS over
UDP and TCP keeps answering throughout. Admin over HTTPS with a configured certificate.

Clients bind 127.0.0.x source addresses to look like several pupils. Every wait is a deadline
with a generous margin; the assertions are on counts that do not depend on the machine's speed.
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.certs import make_cert
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, unique_name

DEADLINE = 30.0
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: pornhub.com\r\nUser-Agent: slow"


class Abusers:
    """Many raw client sockets; knows which ones the server has closed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.alive: dict[socket.socket, str] = {}  # socket -> source address
        self.slow: set[socket.socket] = set()  # the ones that started a request head
        self.closed: Counter[str] = Counter()
        self._selector = selectors.DefaultSelector()

    def open(self, source: str, first_bytes: bytes = b"") -> None:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.port))
        if first_bytes:
            sock.sendall(first_bytes)
            self.slow.add(sock)
        sock.setblocking(False)
        self.alive[sock] = source
        self._selector.register(sock, selectors.EVENT_READ)

    def poll(self, seconds: float) -> None:
        """Wait up to `seconds` for closings; note each."""
        for key, _ in self._selector.select(seconds):
            sock = key.fileobj
            try:
                if sock.recv(65536):  # type: ignore[union-attr]
                    continue  # an answer (not expected here); the close comes later
            except (ConnectionResetError, BlockingIOError):
                pass
            self._drop(sock)  # type: ignore[arg-type]

    def trickle(self) -> None:
        """One more byte of every unfinished head: it must not extend anything."""
        for sock in [s for s in self.alive if s in self.slow]:
            try:
                sock.send(b"x")
            except OSError:
                self._drop(sock)

    def per_source(self) -> Counter[str]:
        return Counter(self.alive.values())

    def _drop(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        self.slow.discard(sock)
        self.closed[self.alive.pop(sock)] += 1
        sock.close()

    def close(self) -> None:
        for sock in list(self.alive):
            self._drop(sock)
        self._selector.close()


class Probe:
    """DNS questions over UDP and TCP, alternately, each one checked."""

    def __init__(self, rp: ResolverProc) -> None:
        self.rp, self.answered, self.tcp = rp, 0, False

    def ask(self) -> None:
        self.tcp = not self.tcp
        reply = self.rp.query(unique_name("probe"), "A", tcp=self.tcp, timeout=3.0)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer, reply
        self.answered += 1


def metrics(admin: int) -> dict[tuple[str, ...], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("safe_resolver_http_"):
                out[(s.name, *sorted(s.labels.items()))] = s.value  # type: ignore[arg-type]
    return out


def closed(m: dict, reason: str, listener: str = "blockpage") -> float:
    key = ("safe_resolver_http_connections_closed_total", ("listener", listener),
           ("reason", reason))  # fmt: skip
    return m.get(key, 0.0)


def open_now(m: dict, listener: str = "blockpage") -> float:
    return m.get(("safe_resolver_http_connections", ("listener", listener)), 0.0)


def page(port: int, source: str) -> int:
    """A normal browser request for a blocked site, from its own address."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: pornhub.com\r\nConnection: close\r\n\r\n")
        return int(s.makefile("rb").readline().split()[1])


@contextmanager
def child_fd_limit(limit: int) -> Iterator[None]:
    """Processes started inside inherit a soft descriptor limit of `limit`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start(resolver_proc: ResolverFactory, authority: Authority, **blockpage) -> tuple:
    web, admin = free_port(), free_port()
    rp = resolver_proc(
        [authority.address],
        blockpage={"listen": [f"127.0.0.1:{web}"], **blockpage},
        admin={"listen": [f"127.0.0.1:{admin}"]},
    )
    return rp, web, admin


def test_slow_and_idle_connections_are_closed_on_time_while_dns_answers(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp, web, admin = start(
        resolver_proc, authority, header_timeout=1, keepalive_timeout=2, body_timeout=1,
        max_connections_per_client=100, max_connections=1000,
    )  # fmt: skip
    probe, abusers = Probe(rp), Abusers(web)
    try:
        for i in range(300):  # 300 slow heads from 10 addresses, 100 idle from 4 more
            abusers.open(f"127.0.0.{2 + i % 10}", SLOW_HEAD)
            if i % 30 == 0:
                probe.ask()
        for i in range(100):
            abusers.open(f"127.0.0.{12 + i % 4}")
        assert page(web, "127.0.0.20") == 200  # a real pupil still gets the page
        deadline = time.monotonic() + DEADLINE
        while abusers.alive and time.monotonic() < deadline:
            abusers.trickle()
            probe.ask()
            abusers.poll(0.3)
        assert not abusers.alive, f"{len(abusers.alive)} still open after {DEADLINE} s"
    finally:
        abusers.close()
    m = metrics(admin)
    assert closed(m, "header_timeout") == 300 and closed(m, "idle_timeout") == 100
    assert open_now(m) == 0
    assert probe.answered >= 10

    # A malformed request is answered 400 and logged once, without a traceback.
    for raw in (b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"NOT HTTP AT ALL\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", web), timeout=5) as s:
            s.sendall(raw)
            assert s.makefile("rb").readline().startswith(b"HTTP/1.0 400")
    m = metrics(admin)
    assert m[("safe_resolver_http_bad_requests_total", ("listener", "blockpage"))] == 2
    rp.terminate()
    log = rp.output()
    assert log.count("bad request answered 400") == 1, log
    assert "Traceback" not in log and "level=error" not in log, log


def test_connection_caps_hold_within_a_small_descriptor_limit_while_dns_answers(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    # 256 descriptors for the whole resolver: without the caps 500 connections would take them
    # all and DNS over TCP and the upstream sockets with them.
    with child_fd_limit(256):
        rp, web, admin = start(
            resolver_proc, authority, header_timeout=60, keepalive_timeout=60,
            max_connections_per_client=20, max_connections=150,
        )  # fmt: skip
    probe, abusers = Probe(rp), Abusers(web)
    try:
        for i in range(500):  # 25 idle connections from each of 20 addresses
            abusers.open(f"127.0.1.{1 + i // 25}")
            if i % 50 == 0:
                probe.ask()
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            m = metrics(admin)
            evicted = closed(m, "evicted_client_cap") + closed(m, "evicted_total_cap")
            if evicted == 350 and sum(abusers.closed.values()) == 350:
                break
            abusers.poll(0.3)
            probe.ask()
        assert open_now(m) == 150 and evicted == 350, m
        assert sum(abusers.closed.values()) == 350
        assert max(abusers.per_source().values()) <= 20  # no address above its cap
        assert closed(m, "evicted_client_cap") >= 5 * 20  # each address's own excess first
        for _ in range(20):
            probe.ask()
        assert page(web, "127.0.0.30") == 200  # a newcomer pushes out a waiting one
    finally:
        abusers.close()


def test_admin_listener_serves_https_with_its_certificate(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path, "admin.school.lan")
    admin = free_port()
    resolver_proc(
        [authority.address],
        admin={"listen": [f"127.0.0.1:{admin}"], "cert": str(cert), "key": str(key),
               "token": "a-long-enough-admin-token"},
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://localhost:{admin}/api/v1/health"
    with urllib.request.urlopen(url, timeout=5, context=context) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    served = ssl.get_server_certificate(("127.0.0.1", admin))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())
    with pytest.raises(OSError):  # plain HTTP is not served on that port
        urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/health", timeout=5)
