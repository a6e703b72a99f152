"""Query rate limits per client address and per network prefix, so one client cannot starve the
others. Checked for UDP only: a TCP handshake proves the source address, and a client told to
retry over TCP (TC=1) is answered there.

Each bucket is one float, its theoretical arrival time (GCRA, the same limit as a token bucket
of `burst` tokens refilled at `qps`): a query passes when the bucket's time is less than `burst`
intervals ahead of now, and moves it one interval (1/qps) on. A client's entry holds its prefix's
bucket, so a query from a known client costs one dict lookup and a few float operations; a new
client pays once for reading its address and finding its override.

Memory is bounded under a flood of spoofed sources: when `max_clients` clients are tracked, the
ones whose buckets have refilled are forgotten (a full bucket carries no state), and if active
clients still fill half the table it starts over; prefix buckets are kept while they carry state
or a tracked client uses them.

Rates are fixed at construction. With several worker processes sharing the traffic
(SO_REUSEPORT) each worker has its own limiter: limits apply per process, or the supervisor
passes each worker its share of the rates.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace
from typing import Any

from resolver.netaddr import client_ip

CLIENT, PREFIX = "client", "prefix"  # which limit a query hit
ACTIONS = ("truncate", "drop")
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class RateOverride:
    """Other limits for the clients in `network` (the most specific override wins); a rate left
    None is the default's. `unlimited`: never limited (a known forwarder, a monitoring host)."""

    network: str
    client_qps: int | None = None
    client_burst: int | None = None
    prefix_qps: int | None = None
    prefix_burst: int | None = None
    unlimited: bool = False


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    # Defaults, per worker process. They must not throttle a school of 1,000 pupils behind one
    # NAT address (or a dnsmasq forwarding for all of them): ~0.1-1 q/s per device on average,
    # and when a lesson starts 1,000 devices loading pages at once send some 30,000 queries in a
    # few seconds. 2,000 q/s sustained with 40,000 in hand covers that with room to spare; one
    # abusive host is held to a few per cent of what a worker answers from cache. Unbound's
    # ip-ratelimit and BIND's response rate limiting are off by default, and the RRL rates
    # usually quoted (5-20 identical responses/s per /24) are for authoritative servers, far
    # below what a recursive resolver's clients need. The prefix (/24 and /56 as in RRL: a /56
    # is one site's IPv6 delegation, so a host cannot escape by rotating addresses) allows five
    # such schools, or a CGNAT /24 of 254 subscribers. A limited client gets TC=1 and retries
    # over TCP, which is not limited: it is answered more slowly, never silently dropped.
    enabled: bool = True
    action: str = "truncate"  # truncate: TC=1 with the question only; drop: no answer
    client_qps: int = 2_000
    client_burst: int = 40_000
    prefix_qps: int = 10_000
    prefix_burst: int = 200_000
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    # Client addresses tracked before a sweep: 250-500 bytes each with their prefix buckets
    # (~35 MB at most here). Set it above the number of addresses that query a worker within a
    # few seconds, or every query of theirs pays for being tracked afresh.
    max_clients: int = 65_536
    overrides: tuple[RateOverride, ...] = ()


@dataclass(frozen=True, slots=True)
class _Rule:
    """The limits that apply to a client, as bucket parameters: interval and tolerance (s)."""

    index: int  # prefix buckets are shared only by clients under the same rule
    client: tuple[float, float]
    prefix: tuple[float, float]


def _bucket(qps: int, burst: int) -> tuple[float, float]:
    """(interval, tolerance): the `burst`-th query at once lands (burst - 1) intervals ahead;
    half an interval of slack keeps float rounding from taking one query off a burst."""
    interval = 1.0 / qps
    return interval, (burst - 0.5) * interval


_UNLIMITED = _Rule(-1, (0.0, _INF), (0.0, _INF))


def for_identities(config: RateLimitConfig) -> RateLimitConfig:
    """Limits keyed by encrypted-DNS identity rather than address: each identity gets the
    client rate; identities share no prefix bucket (they are not addresses) and no override."""
    return replace(config, prefix_qps=10_000_000, prefix_burst=100_000_000, overrides=())


class RateLimiter:
    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self.max_clients = config.max_clients
        self._default = _Rule(
            0,
            _bucket(config.client_qps, config.client_burst),
            _bucket(config.prefix_qps, config.prefix_burst),
        )
        # (IP version, prefix length, network >> host bits, rule), most specific first, so the
        # first that holds a client is its override.
        overrides = []
        for i, o in enumerate(config.overrides, 1):
            rule = _UNLIMITED
            if not o.unlimited:
                rule = _Rule(
                    i,
                    _bucket(
                        o.client_qps or config.client_qps, o.client_burst or config.client_burst
                    ),
                    _bucket(
                        o.prefix_qps or config.prefix_qps, o.prefix_burst or config.prefix_burst
                    ),
                )
            net = ipaddress.ip_network(o.network, strict=False)
            shift = net.max_prefixlen - net.prefixlen
            overrides.append((net.version, net.prefixlen, int(net.network_address) >> shift, rule))
        overrides.sort(key=lambda item: item[1], reverse=True)
        self._overrides = overrides
        # client -> [arrival time, interval, tolerance, prefix bucket]
        self._clients: dict[str, list[Any]] = {}
        # (rule, IP version, prefix) -> [arrival time, interval, tolerance]
        self._prefixes: dict[tuple[int, int, int], list[float]] = {}

    def check(self, client: str, now: float) -> str | None:
        """None if the query may be answered, else the limit it hit (CLIENT or PREFIX).
        `now` is monotonic seconds; only a query that passes is counted."""
        entry = self._clients.get(client)
        if entry is None:
            entry = self._track(client, now)
        tat, interval, tolerance, bucket = entry
        if tat < now:
            tat = now  # refilled: the burst is all there (tolerance > 0)
        elif tat - now > tolerance:
            return CLIENT
        prefix_tat, prefix_interval, prefix_tolerance = bucket
        if prefix_tat < now:
            prefix_tat = now
        elif prefix_tat - now > prefix_tolerance:
            return PREFIX
        entry[0] = tat + interval
        bucket[0] = prefix_tat + prefix_interval
        return None

    def lease(self, client: str, now: float, want: int) -> int:
        """Charge `client` for up to `want` queries at once, as if each had passed `check`, and
        say how many (-1: no limit applies). The UDP fast path answers that many of the
        client's queries without asking again (`resolver.dns.fastanswers`)."""
        entry = self._clients.get(client)
        if entry is None:
            entry = self._track(client, now)
        tat, interval, tolerance, bucket = entry
        if interval == 0.0:
            return -1
        prefix_tat, prefix_interval, prefix_tolerance = bucket
        tat = max(tat, now)
        prefix_tat = max(prefix_tat, now)
        granted = min(
            want,
            _room(tat - now, interval, tolerance),
            _room(prefix_tat - now, prefix_interval, prefix_tolerance),
        )
        if granted > 0:
            entry[0] = tat + granted * interval
            bucket[0] = prefix_tat + granted * prefix_interval
        return granted

    def refund(self, client: str, queries: int) -> None:
        """Give back `queries` of a lease that were not used."""
        entry = self._clients.get(client)
        if entry is not None and queries > 0:
            entry[0] -= queries * entry[1]
            entry[3][0] -= queries * entry[3][1]

    def __len__(self) -> int:
        return len(self._clients)

    def _track(self, client: str, now: float) -> list[Any]:
        if len(self._clients) >= self.max_clients:
            self._sweep(now)
        version, value = _address(client)
        rule = self._default
        for net_version, length, network, override in self._overrides:
            bits = 32 if net_version == 4 else 128
            if version == net_version and value >> (bits - length) == network:
                rule = override
                break
        if version == 4:
            key = (rule.index, 4, value >> (32 - self.config.ipv4_prefix))
        else:
            key = (rule.index, version, value >> (128 - self.config.ipv6_prefix))
        bucket = self._prefixes.get(key)
        if bucket is None:
            bucket = self._prefixes[key] = [now, *rule.prefix]
        entry = self._clients[client] = [now, *rule.client, bucket]
        return entry

    def _sweep(self, now: float) -> None:
        """Forget the clients whose buckets have refilled; start over if that is not enough."""
        clients = {k: e for k, e in self._clients.items() if e[0] > now}
        if len(clients) > self.max_clients // 2:
            clients = {}
        used = {id(e[3]) for e in clients.values()}
        prefixes = {k: b for k, b in self._prefixes.items() if b[0] > now or id(b) in used}
        if len(prefixes) > self.max_clients:
            prefixes = {k: b for k, b in prefixes.items() if id(b) in used}
        self._prefixes = prefixes
        self._clients = clients


def _room(ahead: float, interval: float, tolerance: float) -> int:
    """Queries a bucket `ahead` seconds ahead of now lets pass at once."""
    if interval == 0.0:
        return 1 << 30
    if ahead > tolerance:
        return 0
    return int((tolerance - ahead) / interval) + 1


def _address(client: str) -> tuple[int, int]:
    """(IP version, address as an int) of a client, read as `netaddr.client_ip` reads it
    (IPv4-mapped IPv6 is IPv4, a zone index is dropped); (0, 0) if it is not an address (never
    from a socket). Socket addresses in dotted-quad form, the common case, skip `ipaddress`:
    a new client costs half as much, which counts under a flood of forged sources."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, client), "big")
    except OSError:
        ip = client_ip(client)
    if ip is None:
        return 0, 0
    return ip.version, int(ip)
