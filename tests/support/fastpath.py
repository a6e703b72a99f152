"""Helpers for the fast-path tests: both implementations, packets, and a socket pair to serve."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from resolver.dns.fastpath import FastPathLike, PyFastPath, Reply, name_end

CFastPath: Any  # the compiled type, or None where it is not built (its cases skip)
try:
    from resolver.dns._fastpath import FastPath

    CFastPath = FastPath
except ImportError:
    CFastPath = None
IMPLEMENTATIONS: list[Any] = [
    pytest.param(PyFastPath, id="twin"),
    pytest.param(
        CFastPath,
        id="compiled",
        marks=pytest.mark.skipif(CFastPath is None, reason="resolver.dns._fastpath not built"),
    ),
]
DEADLINE = 5.0  # seconds to wait for loopback datagrams (generous: the machine is shared)


def query(
    name: str, qid: int = 0x1234, qtype: int = 1, flags: int = 0x0100, edns: bytes = b""
) -> bytes:
    """A query packet; `edns` is a whole OPT record (counted in ARCOUNT) when given."""
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label)
    head = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    return head + wire + b"\0" + struct.pack("!HH", qtype, 1) + edns


def opt(udp_size: int = 1232, do: bool = False) -> bytes:
    return struct.pack("!BHHIH", 0, 41, udp_size, 0x8000 if do else 0, 0)


def key_of(packet: bytes) -> bytes:
    """The table key of a query: bytes from 2 on, the question name lower-cased."""
    end = name_end(packet)
    assert end > 0
    return packet[2:12] + packet[12:end].lower() + packet[end:]


def answer_to(packet: bytes, rdata: bytes = b"\xc0\x00\x02\x01") -> bytes:
    """An A answer echoing the question of `packet` (its ID and name case)."""
    end = name_end(packet) + 4
    head = packet[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, len(rdata)) + rdata
    return head + packet[12:end] + record


@dataclass
class Wire:
    """A non-blocking server socket and client sockets on loopback addresses."""

    server: socket.socket
    clients: dict[str, socket.socket] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.getsockname()[:2]  # type: ignore[no-any-return]

    def client(self, host: str = "127.0.0.1") -> socket.socket:
        if host not in self.clients:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            sock.connect(
                self.address
            )  # only the server's datagrams: strays from the host are not ours
            sock.setblocking(False)
            self.clients[host] = sock
        return self.clients[host]

    def exchange(
        self, fast: FastPathLike, packets: list[bytes], now: float, host: str = "127.0.0.1"
    ) -> tuple[list[Reply], list[bytes]]:
        """Send `packets` from `host`, serve until each came back as a miss or was answered:
        (misses, answers the client received)."""
        sock = self.client(host)
        for packet in packets:
            sock.send(packet)
        misses: list[Reply] = []
        answers: list[bytes] = []
        deadline = time.monotonic() + DEADLINE
        while len(misses) + len(answers) < len(packets) and time.monotonic() < deadline:
            readable, _, _ = select.select([self.server, sock], [], [], 0.05)
            if self.server in readable:
                ours = sock.getsockname()[:2]
                misses += [m for m in fast.serve(self.server, now) if m[1][:2] == ours]
            answers += drain(sock)
        return misses, answers

    def close(self) -> None:
        self.server.close()
        for sock in self.clients.values():
            sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


@contextmanager
def wire(family: int = socket.AF_INET) -> Iterator[Wire]:
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    server.setblocking(False)
    w = Wire(server)
    try:
        yield w
    finally:
        w.close()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True
