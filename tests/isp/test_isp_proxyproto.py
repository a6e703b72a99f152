"""The PROXY v2 reader (resolver/dns/proxyproto.py) and the gate deciding who may send one
(resolver/dns/proxygate.py), by plain calls: every header shape dnsdist sends, every way a
header can be malformed, and arbitrary bytes."""

from __future__ import annotations

import logging
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.dns.proxygate import ProxyGate, Refused
from resolver.dns.proxyproto import (
    FIXED,
    REASONS,
    SIGNATURE,
    ProxyError,
    build,
    header_length,
    parse,
)
from resolver.stats import Stats

QUERY = bytes.fromhex("12340100000100000000000003777777076578616d706c65036f72670000010001")
# What dnsdist 1.7 sends as a health check with useProxyProtocol=true (captured): LOCAL.
DNSDIST_HEALTH_CHECK = bytes.fromhex("0d0a0d0a000d0a515549540a20000000") + QUERY


def test_ipv4_ipv6_and_mapped_clients() -> None:
    assert parse(build("100.64.1.2", 5353, "10.0.0.1") + QUERY) == ("100.64.1.2", QUERY)
    assert parse(build("2001:db8::7", stream=True) + QUERY) == ("2001:db8::7", QUERY)
    assert parse(build("::ffff:198.51.100.4") + QUERY) == ("198.51.100.4", QUERY)


def test_local_names_no_client_and_tlvs_are_skipped() -> None:
    assert parse(DNSDIST_HEALTH_CHECK) == (None, QUERY)
    tlvs = bytes([0xE0]) + struct.pack("!H", 3) + b"abc" + bytes([0x01, 0, 0])
    assert parse(build("192.0.2.1", tlvs=tlvs) + QUERY) == ("192.0.2.1", QUERY)


def _mutate(header: bytes, at: int, value: int) -> bytes:
    return header[:at] + bytes([value]) + header[at + 1 :]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\r\n\r\n\x00\r\nQUIX\n" + bytes(20), "signature"),
        (build("192.0.2.1")[:20], "truncated"),
        (_mutate(build("192.0.2.1"), 12, 0x11), "version"),
        (_mutate(build("192.0.2.1"), 12, 0x22), "command"),
        (_mutate(build("192.0.2.1"), 13, 0x32), "family"),  # AF_UNIX
        (_mutate(build("192.0.2.1"), 13, 0x02), "family"),  # AF_UNSPEC with PROXY
        (_mutate(build("192.0.2.1"), 13, 0x13), "protocol"),
        (SIGNATURE + bytes((0x21, 0x12)) + struct.pack("!H", 8) + bytes(8), "address"),
        (build("192.0.2.1", tlvs=b"\xe0\x00\x05ab"), "tlv"),
        (
            SIGNATURE + bytes((0x21, 0x12)) + struct.pack("!H", 14) + bytes(12) + b"\xe0\x00",
            "tlv",
        ),
    ],
)
def test_malformed_headers_name_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyError) as caught:
        parse(data + QUERY if reason != "truncated" else data)
    assert caught.value.reason == reason and reason in REASONS


def test_header_length_needs_the_fixed_part() -> None:
    header = build("192.0.2.1")
    assert header_length(header[: FIXED - 1]) is None
    assert header_length(header[:FIXED]) == len(header) == FIXED + 12
    with pytest.raises(ProxyError):
        header_length(b"\x00\x1d")


@given(st.binary(max_size=80))
def test_arbitrary_bytes_after_the_signature_only_raise_proxy_error(tail: bytes) -> None:
    try:
        client, payload = parse(SIGNATURE + tail)
    except ProxyError as exc:
        assert exc.reason in REASONS
    else:
        assert payload == (SIGNATURE + tail)[header_length(SIGNATURE + tail) or 0 :]
        assert client is None or isinstance(client, str)


# -- the gate -------------------------------------------------------------------------------------


def test_gate_opens_datagrams_from_trusted_balancers_only(caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    gate = ProxyGate(["127.0.0.1/32"], stats)
    assert gate.open_datagram(build("100.64.0.9") + QUERY, "127.0.0.1") == (QUERY, "100.64.0.9")
    assert gate.open_datagram(DNSDIST_HEALTH_CHECK, "127.0.0.1") == (QUERY, "127.0.0.1")
    with caplog.at_level(logging.WARNING, "resolver.dns.proxygate"):
        for _ in range(5):
            assert gate.open_datagram(build("100.64.0.9") + QUERY, "127.0.0.5") is None
        assert gate.open_datagram(QUERY, "127.0.0.1") is None  # a balancer must send a header
        assert (
            gate.open_datagram(_mutate(build("100.64.0.9"), 12, 0x11) + QUERY, "127.0.0.1") is None
        )
    assert dict(stats.proxy_refused) == {"untrusted": 5, "missing": 1, "version": 1}
    assert len(caplog.records) == 1  # once a minute at most, however many
    assert "127.0.0.5" in caplog.records[0].getMessage()


def test_gate_without_balancers_refuses_every_header() -> None:
    stats = Stats()
    gate = ProxyGate([], stats)
    assert gate.trusted is None
    assert gate.open_datagram(build("100.64.0.9") + QUERY, "127.0.0.1") is None
    assert stats.proxy_refused["untrusted"] == 1


def test_gate_opens_streams() -> None:
    stats = Stats()
    gate = ProxyGate(["127.0.0.0/30"], stats)
    header = build("2001:db8::5", stream=True)
    framed = struct.pack("!H", len(QUERY)) + QUERY
    assert gate.open_stream(header[:10], "127.0.0.1") is None  # more bytes needed
    assert gate.open_stream(header[:-1], "127.0.0.1") is None
    assert gate.open_stream(header + framed, "127.0.0.1") == ("2001:db8::5", len(header))
    # Untrusted: a plain stream passes at once (a query is longer than the signature)...
    assert gate.open_stream(framed, "127.0.0.9") == ("127.0.0.9", 0)
    assert gate.open_stream(SIGNATURE[:5], "127.0.0.9") is None
    # ...one starting with the signature is closed, as is a trusted one without a header.
    with pytest.raises(Refused):
        gate.open_stream(header + framed, "127.0.0.9")
    with pytest.raises(Refused):
        gate.open_stream(framed + bytes(20), "127.0.0.1")
    assert dict(stats.proxy_refused) == {"untrusted": 1, "missing": 1}
