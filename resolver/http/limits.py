"""How long an HTTP client may hold a connection without progress, and how many it may hold.

Plain data (no aiohttp import) so the configuration can build it; `resolver.http.guard` enforces
it. The defaults suit a school: a browser opens a few connections to the block page (one per
blocked host name it was sent to), so 64 per address leaves room for a class behind one NAT
while one laptop cannot take the whole file-descriptor budget it shares with DNS over TCP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpLimits:
    # Seconds from the first byte of a request (or the start of a TLS handshake) until its head
    # is complete. Bytes that trickle in do not extend it.
    header_timeout: float = 10.0
    # Seconds from the end of the request head until the whole body is in (forms are tiny).
    body_timeout: float = 10.0
    # Seconds a connection may wait for the first byte of its next request (or of its first one).
    keepalive_timeout: float = 15.0
    # Connections one client address may hold; a new one closes that address's longest-waiting
    # connection, or is refused when all of them are in the middle of a request.
    max_connections_per_client: int = 64
    # Connections the listener holds in all; the same rule, over every address.
    max_connections: int = 1024
