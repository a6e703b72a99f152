"""The connection guard on real loopback sockets: timeouts, per-client and total caps, TLS.

A tiny app stands in for the block page so a request can be held busy on purpose; clients
connect from several 127.0.0.x source addresses to look like several pupils. Waits are
deadline-based: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from support.certs import client_context, make_cert

from resolver.http.errorlog import BadRequestLog
from resolver.http.limits import HttpLimits
from resolver.http.metrics import make_registry, render
from resolver.http.runner import server_tls_context, start_http
from resolver.stats import Stats

DEADLINE = 15.0  # seconds: generous, only reached when something is wrong
LONG = 600.0  # a timeout that never runs out during a test
HEAD = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"


class Held:
    """`GET /hold` waits until released: a connection that stays busy as long as we like."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.changed = asyncio.Event()

    async def hold(self, request: web.Request) -> web.Response:
        self.started += 1
        self.changed.set()
        await self.release.wait()
        return web.Response(text="held\n")

    async def wait_started(self, count: int) -> None:
        async with asyncio.timeout(DEADLINE):
            while self.started < count:
                self.changed.clear()
                await self.changed.wait()


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="hello\n")


@pytest.fixture
def held() -> Held:
    return Held()


@pytest.fixture
async def serve(held: Held) -> AsyncIterator:
    """serve(limits, tls=None) -> (plain port, TLS port or None, stats)."""
    runners: list[web.AppRunner] = []

    async def start(limits: HttpLimits, tls=None):
        app = web.Application()
        app.router.add_get("/hold", held.hold)
        app.router.add_route("*", "/", hello)
        stats = Stats()
        runner = await start_http(
            app, [("127.0.0.1", 0)], tls_listens=[("127.0.0.1", 0)] if tls else (), tls=tls,
            name="test", limits=limits, stats=stats,
        )  # fmt: skip
        runners.append(runner)
        ports = [address[1] for address in runner.addresses]
        return ports[0], (ports[1] if tls else None), stats

    yield start
    held.release.set()
    for runner in runners:
        await runner.cleanup()


async def connect(port: int, source: str = "127.0.0.1", ssl=None):
    return await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0), ssl=ssl,
        server_hostname="localhost" if ssl else None,
    )  # fmt: skip


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Read until the server closes (EOF or reset); what it sent. Fails after DEADLINE."""
    data = b""
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionResetError, BrokenPipeError):
                return data
            if not chunk:
                return data
            data += chunk


async def answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send one request on an open connection; its status line."""
    writer.write(HEAD)
    async with asyncio.timeout(DEADLINE):
        status = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        await reader.readexactly(len(b"hello\n"))
    return status


def closed(stats: Stats, reason: str) -> int:
    return stats.http_closed[("test", reason)]


async def test_idle_slow_header_and_kept_alive_connections_are_closed_on_time(serve):
    port, _, stats = await serve(HttpLimits(header_timeout=0.3, keepalive_timeout=0.6))
    idle_r, _idle_w = await connect(port)  # (a dropped StreamWriter may close its socket)
    slow_r, slow_w = await connect(port)
    slow_w.write(b"GET / HTTP/1.1\r\nHo")

    async def trickle() -> None:  # a byte every 0.1 s must not keep the head alive
        while not slow_r.at_eof():
            slow_w.write(b"x")
            await asyncio.sleep(0.1)

    trickler = asyncio.create_task(trickle())
    kept_r, kept_w = await connect(port)
    assert await answered(kept_r, kept_w) == b"HTTP/1.1 200 OK\r\n"
    for reader in (idle_r, slow_r, kept_r):
        await closed_by_server(reader)
    trickler.cancel()
    assert closed(stats, "header_timeout") == 1
    assert closed(stats, "idle_timeout") == 2  # never sent a byte; waited after its answer
    assert stats.http_connections["test"] == 0


async def test_a_slow_body_gets_408_and_the_connection_closes(serve):
    port, _, stats = await serve(HttpLimits(body_timeout=0.3, keepalive_timeout=LONG))
    reader, writer = await connect(port)
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nfirst bytes")
    reply = await closed_by_server(reader)
    assert reply.startswith(b"HTTP/1.1 408 ") and closed(stats, "body_timeout") == 1
    reader, writer = await connect(port)  # a whole body in time is served as usual
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    assert (await reader.readline()) == b"HTTP/1.1 200 OK\r\n"


async def test_per_client_cap_closes_that_clients_longest_waiting_connection(serve):
    limits = HttpLimits(keepalive_timeout=LONG, header_timeout=LONG, max_connections_per_client=3)
    port, _, stats = await serve(limits)
    conns = [await connect(port, "127.0.0.2") for _ in range(5)]
    for reader, _ in conns[:2]:  # the two oldest made room for the two newest
        assert await closed_by_server(reader) == b""
    for reader, writer in conns[2:]:
        assert await answered(reader, writer) == b"HTTP/1.1 200 OK\r\n"
    other = await connect(port, "127.0.0.3")  # another pupil is not affected
    assert await answered(*other) == b"HTTP/1.1 200 OK\r\n"
    assert closed(stats, "evicted_client_cap") == 2 and stats.http_connections["test"] == 4


async def test_a_client_whose_connections_are_all_busy_is_refused_at_once(serve, held):
    limits = HttpLimits(keepalive_timeout=LONG, max_connections_per_client=2, max_connections=3)
    port, _, stats = await serve(limits)
    busy = []
    for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3"):
        reader, writer = await connect(port, source)
        writer.write(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
        busy.append((reader, writer))
    await held.wait_started(3)
    refused = await connect(port, "127.0.0.2")  # over its own cap, nothing to make room
    assert await closed_by_server(refused[0]) == b""
    refused = await connect(port, "127.0.0.4")  # over the total, every connection busy
    assert await closed_by_server(refused[0]) == b""
    assert closed(stats, "refused_client_cap") == 1 and closed(stats, "refused_total_cap") == 1
    held.release.set()
    for reader, _ in busy:
        assert (await reader.readline()) == b"HTTP/1.1 200 OK\r\n"
    # Now they wait for a next request: a newcomer pushes out the longest-waiting one.
    newcomer = await connect(port, "127.0.0.4")
    await closed_by_server(busy[0][0])
    assert await answered(*newcomer) == b"HTTP/1.1 200 OK\r\n"
    assert closed(stats, "evicted_total_cap") == 1


async def test_tls_handshakes_are_capped_and_timed_like_any_wait(serve, tmp_path: Path):
    cert, key = make_cert(tmp_path)
    limits = HttpLimits(header_timeout=0.3, max_connections_per_client=2)
    _, tls_port, stats = await serve(limits, server_tls_context(cert, key))
    # TCP connections that never start a handshake count against the address at once.
    silent = [await connect(tls_port, "127.0.0.2") for _ in range(3)]
    for reader, _ in silent:
        await closed_by_server(reader)
    assert closed(stats, "evicted_client_cap") == 1
    assert closed(stats, "tls_handshake_timeout") == 2
    plain_r, plain_w = await connect(tls_port, "127.0.0.3")
    plain_w.write(HEAD)  # plain HTTP to the TLS port
    await closed_by_server(plain_r)
    assert closed(stats, "tls_handshake_failed") == 1
    async with aiohttp.ClientSession() as session:  # and a real HTTPS client is served
        url = f"https://localhost:{tls_port}/"
        async with session.get(url, ssl=client_context(cert)) as resp:
            assert resp.status == 200 and await resp.text() == "hello\n"


async def test_bad_requests_are_one_counted_line_without_traceback(serve, caplog):
    port, _, stats = await serve(HttpLimits())
    caplog.set_level(logging.DEBUG)
    clients = []
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"x" * 9000 + b"\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):  # fmt: skip
        reader, writer = await connect(port)
        clients.append(writer)
        writer.write(raw)
        assert (await closed_by_server(reader)).startswith(b"HTTP/1.0 400 Bad Request")
    assert stats.http_bad_requests["test"] == 3
    lines = [r for r in caplog.records if r.name.startswith(("aiohttp", "resolver"))]
    assert [(r.name, r.levelname) for r in lines] == [("resolver.http", "WARNING")]
    assert lines[0].exc_info is None and "bad request answered 400" in lines[0].getMessage()
    assert "Traceback" not in caplog.text
    metrics = render(make_registry(lambda: stats)).decode()
    assert 'safe_resolver_http_bad_requests_total{listener="test"} 3.0' in metrics


def test_bad_request_lines_are_rate_limited_with_the_count_left_out():
    now = [100.0]
    stats = Stats()
    logger = logging.getLogger("test.badrequests")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        bad = BadRequestLog("blockpage", stats, interval=60.0, clock=lambda: now[0], logger=logger)
        error = aiohttp.http.HttpProcessingError(code=400, message="Bad status line 'x\\ny'")
        for _ in range(4):
            bad.exception("Error handling request from %s", "192.0.2.1", exc_info=error)
        now[0] += 61
        bad.debug("Error handling request from %s", "192.0.2.1", exc_info=error)
        bad.warning("something else")
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert stats.http_bad_requests["blockpage"] == 5
    assert len(messages) == 3 and "(3 more in the last 61 s)" in messages[1]
    assert "192.0.2.1" not in "".join(messages) and "\n" not in "".join(messages)
    assert messages[2] == "http blockpage: something else"  # anything else passes through
