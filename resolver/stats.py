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


@dataclass(slots=True)
class ProcessSample:
    """One process's resources, sampled about once a second (`resolver.procstats`)."""

    resident_bytes: float = 0.0
    open_fds: float = 0.0
    max_fds: float = 0.0
    cpu_seconds: float = 0.0
    loop_lag: float = 0.0  # seconds: the longest a due timer waited for the event loop lately


_UPSTREAM_COUNTERS = tuple(
    f.name for f in fields(UpstreamStats) if f.name not in ("address", "healthy")
)


@dataclass(slots=True)
class TransferStats:
    """One zone-transfer list source, as `resolver.transfer.manager` keeps it current."""

    source: str
    category: str
    zone: str
    primary: str
    serial: int | None = None  # of the last good copy
    rules: int = 0  # in the last good copy
    last_success: float = 0.0  # unix time the copy was last found current (0: never)
    last_change: float = 0.0  # unix time a new version last went in
    last_error: str = ""  # "" while the last attempt succeeded
    next_refresh: float = 0.0  # unix time of the next scheduled check
    attempts: int = 0
    increments: int = 0  # IXFRs served at once from a small index beside the compiled one
    completed: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # by style
    failures: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # by reason


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
    # TCP connections we closed, by reason: idle, evicted (room for a new client at the cap),
    # stalled (answers left unread)
    tcp_closed: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    # UDP queries over a rate limit: (scope, action) -> count; scope client or prefix, action
    # truncate or drop
    ratelimited: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    # Datagrams and TCP connections dropped at the PROXY v2 gate (resolver.dns.proxygate), by
    # reason: untrusted, missing, or how the header was malformed
    proxy_refused: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
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
    reload_last_ok: bool = True  # the last reload (or the start) went live
    policy_generation: int = 0
    list_sizes: dict[str, int] = field(default_factory=dict)  # category -> rules
    list_updated: dict[str, float] = field(default_factory=dict)  # category -> unix time
    list_stale: dict[str, int] = field(default_factory=dict)  # category -> lists served from
    # their last good copy (their own file is missing)
    querylog_dropped: int = 0
    querylog_written: int = 0
    querylog_failed_batches: int = 0  # write attempts that failed (database down, bad batch)
    rollup_writes: int = 0  # roll-up batches written (resolver.rollup)
    rollup_failed_writes: int = 0  # roll-up or audit writes that failed (kept, retried)
    rollup_written_at: float = 0.0  # unix time of the last roll-up write
    # HTTP listeners (block page, admin): connections open now, connections closed or refused
    # by reason (resolver.http.guard), requests the parser rejected (resolver.http.errorlog).
    http_connections: dict[str, int] = field(default_factory=dict)  # listener -> open now
    http_closed: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    http_bad_requests: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    # "supervisor", "worker-N" -> resources; each process fills its own, the supervisor's view
    # holds every live one (never summed by `add`: they are per process).
    processes: dict[str, ProcessSample] = field(default_factory=dict)
    transfers: dict[str, TransferStats] = field(default_factory=dict)  # by list source id
    notifies: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # by outcome
    # Policy bundles (resolver.bundlepoll), the supervisor's: polls by result (unchanged, new,
    # failed), bundles refused by reason, and the bundle serving now
    bundle_checks: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    bundle_refused: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    bundle_sha256: str = ""
    bundle_version: str = ""
    bundle_applied: float = 0.0  # Unix time the serving bundle went live
    bundle_checked: float = 0.0  # Unix time of the last poll that reached the policy host

    def add(self, other: Stats) -> None:
        """Add `other`'s counters to these (one worker's share of the traffic): every number
        and every table of numbers adds up, cache entries included. What describes the whole
        service (generation, list sizes, reload state, the web apps) is the supervisor's own
        (`SERVICE_FIELDS`) and left alone; an upstream counts as healthy only while every
        worker finds it so."""
        for name in _ADDED:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, defaultdict):
                for key, count in theirs.items():
                    mine[key] += count
            elif isinstance(mine, list):
                for i, count in enumerate(theirs):
                    mine[i] += count
            else:
                setattr(self, name, mine + theirs)
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


# What only the supervisor knows, not summed over workers (see `Stats.add`).
SERVICE_FIELDS = frozenset((
    "started", "upstreams", "reloads", "reload_failures", "reload_seconds_last",
    "reload_last_error", "policy_generation", "list_sizes", "list_updated", "querylog_written",
    "querylog_failed_batches", "http_connections", "http_closed", "http_bad_requests",
    "reload_last_ok", "rollup_writes", "rollup_failed_writes", "rollup_written_at", "list_stale",
    "processes", "transfers",
    "bundle_checks", "bundle_refused", "bundle_sha256", "bundle_version", "bundle_applied",
    "bundle_checked",
))  # fmt: skip
_ADDED = tuple(f.name for f in fields(Stats) if f.name not in SERVICE_FIELDS)
