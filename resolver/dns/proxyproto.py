"""PROXY protocol version 2 (HAProxy's proxy-protocol.txt, section 2.2): the binary header a
load balancer (dnsdist with `useProxyProtocol=true`) puts before every UDP query, and once at
the start of every TCP connection, naming the client it relays for.

    12 bytes  signature \\r\\n\\r\\n\\0\\r\\nQUIT\\n
     1 byte   version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
     1 byte   address family (high nibble: 1 IPv4, 2 IPv6) and protocol (low: 1 TCP, 2 UDP)
     2 bytes  length of what follows (big-endian): addresses, ports, then TLVs
    IPv4: source, destination (4 bytes each), source port, destination port (2 bytes each)
    IPv6: the same with 16-byte addresses

LOCAL is a connection the balancer made on its own behalf (dnsdist's health checks): the
receiver uses the real peer address. Pure: bytes in, the client's address out; whether a peer
may send a header at all is the listener's question (`resolver.dns.proxygate`). Only the
source address is used; ports and TLVs are checked for shape and otherwise ignored.
"""

from __future__ import annotations

import ipaddress
import struct
from socket import AF_INET, AF_INET6, inet_ntop  # address formatting only (~0.3 µs), no I/O

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FIXED = 16  # signature, version and command, family and protocol, length
_LENGTH = struct.Struct("!H")
_V2 = 0x2
_LOCAL, _PROXY = 0x0, 0x1
_INET, _INET6 = 0x1, 0x2
_STREAM, _DGRAM = 0x1, 0x2
_V4_MAPPED = bytes(10) + b"\xff\xff"
# Malformed-header reasons (metric labels: a fixed set).
REASONS = ("signature", "truncated", "version", "command", "family", "protocol", "address", "tlv")


class ProxyError(ValueError):
    """Not a well-formed PROXY v2 header; `reason` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"PROXY v2 header: {reason}")
        self.reason = reason


def header_length(data: bytes | bytearray) -> int | None:
    """The whole header's length in bytes, read from its fixed part; None while `data` holds
    fewer than FIXED bytes. Raises ProxyError when `data` does not start with the signature."""
    if len(data) < FIXED:
        if not SIGNATURE.startswith(bytes(data[:12])):
            raise ProxyError("signature")
        return None
    if not data.startswith(SIGNATURE):
        raise ProxyError("signature")
    length: int = _LENGTH.unpack_from(data, 14)[0]
    return FIXED + length


def parse(data: bytes) -> tuple[str | None, bytes]:
    """(client address, what follows the header) for `data` starting with a header. The
    address is None for a LOCAL header (use the peer's own). IPv4-mapped IPv6 addresses come
    back as IPv4, so access lists and client networks match them as written."""
    end = header_length(data)
    if end is None or end > len(data):
        raise ProxyError("truncated")
    version_command = data[12]
    if version_command >> 4 != _V2:
        raise ProxyError("version")
    command = version_command & 0x0F
    if command == _LOCAL:
        return None, data[end:]
    if command != _PROXY:
        raise ProxyError("command")
    family, protocol = data[13] >> 4, data[13] & 0x0F
    if protocol != _STREAM and protocol != _DGRAM:
        raise ProxyError("protocol")
    if family == _INET:
        size = 4
    elif family == _INET6:
        size = 16
    else:  # UNSPEC or UNIX: no client address to use
        raise ProxyError("family")
    addresses = FIXED + 2 * size + 4
    if addresses > end:
        raise ProxyError("address")
    _check_tlvs(data, addresses, end)
    raw = data[FIXED : FIXED + size]
    if size == 4:
        client = inet_ntop(AF_INET, raw)
    elif raw.startswith(_V4_MAPPED):
        client = inet_ntop(AF_INET, raw[12:])
    else:
        client = inet_ntop(AF_INET6, raw)
    return client, data[end:]


def _check_tlvs(data: bytes, pos: int, end: int) -> None:
    """Type-length-value records must fill the rest of the header exactly."""
    while pos < end:
        if pos + 3 > end:
            raise ProxyError("tlv")
        pos += 3 + _LENGTH.unpack_from(data, pos + 1)[0]
    if pos != end:
        raise ProxyError("tlv")


def build(
    client: str | None,
    client_port: int = 0,
    server: str | None = None,
    server_port: int = 53,
    *,
    stream: bool = False,
    tlvs: bytes = b"",
) -> bytes:
    """A header as a load balancer sends it (LOCAL when `client` is None): for tests, the
    benchmark and tools that speak for a balancer."""
    if client is None:
        return SIGNATURE + bytes((_V2 << 4 | _LOCAL, 0)) + _LENGTH.pack(len(tlvs)) + tlvs
    source = ipaddress.ip_address(client)
    target = ipaddress.ip_address(server or ("::" if source.version == 6 else "0.0.0.0"))
    family = _INET if source.version == 4 else _INET6
    body = source.packed + target.packed + struct.pack("!HH", client_port, server_port) + tlvs
    protocol = _STREAM if stream else _DGRAM
    return (
        SIGNATURE
        + bytes((_V2 << 4 | _PROXY, family << 4 | protocol))
        + _LENGTH.pack(len(body))
        + body
    )
