"""DNS over TCP for tests that speak it with raw sockets (RFC 7766 framing)."""

from __future__ import annotations

import socket


def read_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes from `sock`; ConnectionResetError if the server closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("closed by the server")
        data += chunk
    return data
