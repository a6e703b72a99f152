"""Counters the DNS path bumps with plain integer adds, read by /metrics and the admin API.

Prometheus' own counters cost a label lookup and a lock per increment; on a path that answers
100k queries a second we add to dicts of ints instead and let a collector read them at scrape time.
Label values here are bounded by construction: transports, query-type names, actions, profile and
category ids from the policy, reasons from a fixed set. Never a domain or a client address.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace

# Upper bounds (seconds) of the DNS answer latency histogram.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass(slots=True)
class UpstreamStats:
    """One upstream server's health and traffic, as the forwarder sees it."""

    address: str
    queries: int = 0
    errors: int = 0  # timeouts, refused connections, unusable replies
    timeouts: int = 0
    spoofed: int = 0  # replies dropped because ID, question or source did not match
    truncated: int = 0  # replies with TC=1 that were retried over TCP
    latency_sum: float = 0.0
    latency_count: int = 0
    healthy: bool = True


_UPSTREAM_COUNTERS = tuple(
    f.name for f in fields(UpstreamStats) if f.name not in ("address", "healthy")
)


@dataclass(slots=True)
class Stats:
    """All counters of one resolver process."""

    started: float = field(default_factory=time.time)
    # (transport, qtype, action, profile, category) -> count; action is one of allowed, blocked,
    # rewritten, refused, cached, servfail, formerr, nxdomain, nodata.
    queries: defaultdict[tuple[str, str, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    malformed: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # by reason
    dropped: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # by reason
    cache_hits: int = 0
    cache_misses: int = 0
    cache_stale_served: int = 0
    cache_size: int = 0
    fast_answers: int = 0  # of the queries above, those the UDP fast path repeated (fastpath.py)
    upstreams: dict[str, UpstreamStats] = field(default_factory=dict)
    mandated_hits: int = 0
    reloads: int = 0
    reload_failures: int = 0
    reload_seconds_last: float = 0.0
    reload_last_error: str = ""
    policy_generation: int = 0
    list_sizes: dict[str, int] = field(default_factory=dict)  # category -> rules
    list_updated: dict[str, float] = field(default_factory=dict)  # category -> unix time
    querylog_dropped: int = 0
    querylog_written: int = 0
    querylog_failed_batches: int = 0  # write attempts that failed (database down, bad batch)
    # HTTP listeners (block page, admin): connections open now, connections closed or refused
    # by reason (resolver.http.guard), requests the parser rejected (resolver.http.errorlog).
    http_connections: dict[str, int] = field(default_factory=dict)  # listener -> open now
    http_closed: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    http_bad_requests: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Stats) -> None:
        """Add `other`'s counters to these (one process's share of the traffic). Gauges that
        describe the whole service (generation, list sizes, reload state) are the
        supervisor's own and are left alone; cache entries add up; an upstream counts as
        healthy only while every process finds it so."""
        for table, more in ((self.queries, other.queries), (self.malformed, other.malformed),
                            (self.dropped, other.dropped)):  # fmt: skip
            for key, count in more.items():
                table[key] += count
        for i, count in enumerate(other.latency_buckets):
            self.latency_buckets[i] += count
        self.latency_sum += other.latency_sum
        self.latency_count += other.latency_count
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
        self.cache_stale_served += other.cache_stale_served
        self.cache_size += other.cache_size
        self.fast_answers += other.fast_answers
        self.mandated_hits += other.mandated_hits
        self.querylog_dropped += other.querylog_dropped
        for label, theirs in other.upstreams.items():
            ours = self.upstreams.get(label)
            if ours is None:
                self.upstreams[label] = replace(theirs)
                continue
            for name in _UPSTREAM_COUNTERS:
                setattr(ours, name, getattr(ours, name) + getattr(theirs, name))
            ours.healthy = ours.healthy and theirs.healthy

    def observe_latency(self, seconds: float) -> None:
        """Add one answer's latency to the histogram (non-cumulative buckets)."""
        self.latency_sum += seconds
        self.latency_count += 1
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
