"""The forwarder's pooled upstream sockets: many queries per socket told apart by ID and
question, random ports that rotate by count and by age, and no socket left open behind them.

A real `Forwarder` in this process asks the test authority over loopback; the pool's size and
rotation limits are lowered for each test so their effect shows in a few dozen queries.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
import uvloop
from support.authority import Authority, Fault

from resolver.dns import upstream as upstream_module
from resolver.dns.message import scan_reply
from resolver.dns.packet import encode_name
from resolver.dns.settings import UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.stats import Stats

A_IN = b"\x00\x01\x00\x01"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    yield loop
    loop.close()


def forwarder(authority: Authority) -> Forwarder:
    return Forwarder([(authority.host, authority.port)], UpstreamConfig(), Stats())


async def ask(fwd: Forwarder, name: str) -> bytes:
    deadline = time.monotonic() + fwd.config.query_budget_ms / 1000
    return await fwd.resolve(encode_name(name), A_IN, False, False, deadline)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_queries_in_flight_share_one_socket(
    authority: Authority, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "POOL_SIZE", 1)
    fwd = forwarder(authority)
    authority.set_fault(Fault(delay_ms=100))  # so that all 50 are out at once
    names = [f"inflight{i}.w.example.org" for i in range(50)]

    async def all_of_them() -> list[bytes]:
        return await asyncio.gather(*(ask(fwd, name) for name in names))

    replies = loop.run_until_complete(all_of_them())
    for name, reply in zip(names, replies, strict=True):
        info = scan_reply(reply)
        assert reply[12 : info.qend - 4].lower() == encode_name(name)
    assert len({s.src_port for s in authority.seen()}) == 1
    assert len({s.qid for s in authority.seen()}) == 50  # no two in flight with one ID


def test_ports_are_replaced_after_socket_queries(
    authority: Authority, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "SOCKET_QUERIES", 5)
    fwd = forwarder(authority)
    fds = open_fds()
    for i in range(80):
        loop.run_until_complete(ask(fwd, f"count{i}.w.example.org"))
    ports = {s.src_port for s in authority.seen()}
    assert len(ports) >= 80 // 5 - 2  # a fresh random port every 5 queries (a repeat by chance)
    assert open_fds() - fds <= upstream_module.POOL_SIZE  # the replaced ones were closed


def test_a_socket_retired_with_queries_in_flight_closes_after_its_last_reply(
    authority: Authority, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a socket reaches SOCKET_QUERIES while it still waits for replies: it must
    close when the last one comes, or every replaced socket would keep its descriptor."""
    monkeypatch.setattr(upstream_module, "POOL_SIZE", 1)
    monkeypatch.setattr(upstream_module, "SOCKET_QUERIES", 5)
    fwd = forwarder(authority)
    authority.set_fault(Fault(delay_ms=50))  # all 40 out at once: 8 sockets, retired busy
    fds = open_fds()

    async def all_of_them() -> list[bytes]:
        return await asyncio.gather(*(ask(fwd, f"busy{i}.w.example.org") for i in range(40)))

    assert len(loop.run_until_complete(all_of_them())) == 40
    assert len({s.src_port for s in authority.seen()}) >= 40 // 5 - 1
    assert open_fds() - fds <= upstream_module.POOL_SIZE


def test_ports_are_replaced_after_socket_seconds(
    authority: Authority, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "POOL_SIZE", 1)
    monkeypatch.setattr(upstream_module, "SOCKET_SECONDS", 0.3)
    fwd = forwarder(authority)
    started = time.monotonic()
    loop.run_until_complete(ask(fwd, "age0.w.example.org"))
    first = authority.seen()[0].src_port
    deadline = started + 20
    n = 0
    while authority.seen()[-1].src_port == first and time.monotonic() < deadline:
        n += 1
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.run_until_complete(ask(fwd, f"age{n}.w.example.org"))
    assert authority.seen()[-1].src_port != first
    assert time.monotonic() - started >= 0.3  # not before the socket's time was up


def test_a_refused_port_fails_the_queries_on_that_socket(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ICMP port unreachable cannot be told to belong to one query: all on the socket fail, at
    once rather than at the deadline."""
    monkeypatch.setattr(upstream_module, "POOL_SIZE", 1)
    with Authority() as gone:
        pass  # started and stopped: its port is closed now
    fwd = Forwarder([(gone.host, gone.port)], UpstreamConfig(attempts=1), Stats())
    started = time.monotonic()
    with pytest.raises(upstream_module.UpstreamFailure):
        loop.run_until_complete(ask(fwd, "refused.w.example.org"))
    assert time.monotonic() - started < fwd.config.query_budget_ms / 1000
    assert fwd.upstreams[0].stats.errors == 1
