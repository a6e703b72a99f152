"""Bad DoH requests and slow TLS handshakes: each gets a clear error, is counted, and costs
nothing else (the next good query on another connection is answered as before)."""

from __future__ import annotations

import base64
import socket
import ssl
import time

import dns.message
import dns.rcode
import httpx2
import pytest
from encrypted_support import (
    AN_TOKEN,
    GAMES,
    SERVER_NAME,
    Encrypted,
    addresses,
    sni,
)
from support.resolver_proc import metric

PATH = f"/dns-query/family/{AN_TOKEN}"


def _client(enc: Encrypted) -> httpx2.Client:
    return httpx2.Client(
        http2=True, verify=ssl.create_default_context(cafile=str(enc.cert)), timeout=10
    )


def _still_answers(enc: Encrypted) -> None:
    assert addresses(enc.doh_query(GAMES, PATH)) == ["192.0.2.200"]
    assert addresses(enc.dot_query(GAMES, sni(AN_TOKEN))) == ["192.0.2.200"]


def _dropped(enc: Encrypted, reason: str) -> float:
    return metric(enc.admin, "safe_resolver_dropped_total", reason=reason)


@pytest.mark.parametrize(
    ("method", "kwargs", "status", "reason"),
    [
        ("GET", {"params": {"dns": "!!not base64!!"}}, 400, "doh-bad-param"),
        ("GET", {"params": {"dns": "AAAA"}}, 400, "doh-bad-param"),  # 3 bytes: no header
        ("GET", {}, 400, "doh-bad-param"),
        ("POST", {"content": b"\x00" * 5,
                  "headers": {"content-type": "application/dns-message"}}, 400, "doh-malformed"),
        ("POST", {"content": b"\x00" * 64, "headers": {"content-type": "text/plain"}}, 415,
         "doh-content-type"),
        ("POST", {"content": b"\x00" * 65_536,
                  "headers": {"content-type": "application/dns-message"}}, 413, "doh-too-large"),
        ("PUT", {"content": b"x"}, 405, "doh-method"),
    ],
)  # fmt: skip
def test_bad_doh_request_gets_a_clear_status(
    internet: Encrypted, method: str, kwargs: dict, status: int, reason: str
) -> None:
    before = _dropped(internet, reason)
    with _client(internet) as client:
        resp = client.request(method, internet.doh_url(PATH), **kwargs)
        assert resp.status_code == status, resp.text
        assert resp.http_version == "HTTP/2"
        assert resp.text.strip()  # says what was wrong
        # The same HTTP/2 connection serves the next request.
        query = dns.message.make_query(GAMES, "A")
        query.id = 0
        good = client.get(
            internet.doh_url(PATH),
            params={"dns": base64.urlsafe_b64encode(query.to_wire()).rstrip(b"=").decode()},
        )
        assert good.status_code == 200
        assert good.headers["content-type"] == "application/dns-message"
        max_age = int(good.headers["cache-control"].removeprefix("max-age="))
        assert 250 < max_age <= 300  # the record's TTL (300), aged in the cache
    assert _dropped(internet, reason) == before + 1
    _still_answers(internet)


def test_a_big_post_is_refused_from_its_length_before_it_is_read(internet: Encrypted) -> None:
    # HTTP/1.1 with a Content-Length of 1 MB and no body sent: the 413 comes at once.
    ctx = internet.context("http/1.1")
    with (
        socket.create_connection(("127.0.0.1", internet.doh), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
            "Content-Type: application/dns-message\r\nContent-Length: 1048576\r\n\r\n".encode()
        )
        head = tls.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head
    _still_answers(internet)


def test_a_dns_message_that_is_no_query_gets_formerr_or_400(internet: Encrypted) -> None:
    garbage = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff"  # bad name
    with _client(internet) as client:
        resp = client.post(
            internet.doh_url(PATH),
            content=garbage,
            headers={"content-type": "application/dns-message"},
        )
    if resp.status_code == 200:
        assert dns.message.from_wire(resp.content).rcode() == dns.rcode.FORMERR
    else:
        assert resp.status_code == 400
    _still_answers(internet)


def test_a_slow_tls_handshake_is_cut_off_and_counted(internet: Encrypted) -> None:
    """A client that connects and never says hello holds its socket only for
    handshake_timeout (2 s here); queries from others go on meanwhile."""
    before = _dropped(internet, "dot-handshake-incomplete")
    with socket.create_connection(("127.0.0.1", internet.dot), timeout=30) as silent:
        _still_answers(internet)
        started = time.monotonic()
        assert silent.recv(1) == b""  # the server closed it
        assert time.monotonic() - started < 20
    deadline = time.monotonic() + 20
    while _dropped(internet, "dot-handshake-incomplete") < before + 1:
        assert time.monotonic() < deadline, "the cut-off handshake was not counted"
        time.sleep(0.2)
    _still_answers(internet)
