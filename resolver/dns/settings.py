"""The DNS parts' settings (`upstream`, `cache`, the UDP listener), as the server config builds
them and hands them to each worker over the control channel (pickled).

They live apart from the code that uses them so that they stay plain frozen dataclasses when that
code is compiled with mypyc (`make compiled`): a compiled frozen dataclass cannot be unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    timeout_ms: int = 800  # wait this long for an attempt before sending the next one
    attempts: int = 3  # tries per query, moving to the next upstream each time
    tcp_timeout_ms: int = 1500  # a truncated reply's retry over TCP (within the budget)
    down_after: int = 3  # consecutive failures before an upstream is considered down
    query_budget_ms: int = 2000  # every client query is answered within this, SERVFAIL at worst
    stale_answer_ms: int = 1800  # with cache.serve_stale: answer stale data after this (RFC 8767)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    size: int = 100_000
    min_ttl: int = 0
    max_ttl: int = 86_400
    negative_max_ttl: int = 3_600
    servfail_ttl: int = 5
    serve_stale: bool = False
    stale_ttl: int = 86_400  # how long past expiry an answer may still be served stale


@dataclass(frozen=True, slots=True)
class UdpConfig:
    batch: int = 64  # datagrams read per wake-up at most (one recvmmsg)
    fast_answers: int = 200_000  # answers kept for repeating, per worker
    fast_clients: int = 65_536  # client addresses whose profile the fast path knows
