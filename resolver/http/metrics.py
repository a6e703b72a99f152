"""Prometheus exposition of `resolver.stats.Stats`, read at scrape time.

The DNS path only adds to plain ints (see `resolver.stats`); this collector turns them into
metric families when Prometheus scrapes `/metrics`. It is registered in its own
`CollectorRegistry`, so tests and several resolvers in one process never collide in the global
registry. Every label value comes from a bounded set (transport, query type, action, profile,
category, upstream address from the config, malformed reason): never a domain or client address.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from resolver.stats import LATENCY_BUCKETS, Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
P = "safe_resolver_"


class StatsCollector(Collector):
    """Builds every metric family from one `Stats` object per scrape."""

    def __init__(self, get_stats: Callable[[], Stats]) -> None:
        self._get_stats = get_stats

    def collect(self) -> Iterator[Metric]:
        s = self._get_stats()
        queries = CounterMetricFamily(
            P + "queries", "DNS queries answered",
            labels=["transport", "qtype", "action", "profile", "category"],
        )  # fmt: skip
        for labels, count in list(s.queries.items()):
            queries.add_metric(list(labels), count)
        yield queries

        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), s.latency_buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency = HistogramMetricFamily(
            P + "query_latency_seconds", "Time from query received to answer sent"
        )
        latency.add_metric([], buckets, s.latency_sum)
        yield latency

        yield CounterMetricFamily(P + "cache_hits", "Answers served from cache", s.cache_hits)
        yield CounterMetricFamily(P + "cache_misses", "Cache lookups that missed", s.cache_misses)
        yield CounterMetricFamily(
            P + "cache_stale_served", "Expired answers served while refreshing",
            s.cache_stale_served,
        )  # fmt: skip
        yield GaugeMetricFamily(P + "cache_entries", "Answers in the cache", s.cache_size)
        yield CounterMetricFamily(
            P + "fast_answers", "Answers the UDP fast path repeated (also in queries)",
            s.fast_answers,
        )  # fmt: skip

        ups = list(s.upstreams.values())
        for name, doc, attr in (
            ("upstream_queries", "Queries sent upstream", "queries"),
            ("upstream_errors", "Upstream timeouts, refusals and unusable replies", "errors"),
            ("upstream_timeouts", "Upstream queries that timed out", "timeouts"),
            ("upstream_spoofed", "Replies dropped as not matching the query", "spoofed"),
            ("upstream_truncated", "Truncated replies retried over TCP", "truncated"),
        ):
            family = CounterMetricFamily(P + name, doc, labels=["upstream"])
            for u in ups:
                family.add_metric([u.address], getattr(u, attr))
            yield family
        up_latency = SummaryMetricFamily(
            P + "upstream_latency_seconds", "Upstream answer time", labels=["upstream"]
        )
        healthy = GaugeMetricFamily(
            P + "upstream_healthy", "1 if the upstream is in use", labels=["upstream"]
        )
        for u in ups:
            up_latency.add_metric([u.address], u.latency_count, u.latency_sum)
            healthy.add_metric([u.address], 1.0 if u.healthy else 0.0)
        yield up_latency
        yield healthy

        yield _by_label(
            GaugeMetricFamily,
            P + "list_rules",
            "Rules loaded per category",
            "category",
            s.list_sizes,
        )
        yield _by_label(
            GaugeMetricFamily,
            P + "list_updated_timestamp_seconds",
            "When a category's lists last changed",
            "category",
            s.list_updated,
        )
        yield _by_label(
            GaugeMetricFamily,
            P + "list_stale_sources",
            "Lists served from their last good copy because their own file is missing",
            "category",
            s.list_stale,
        )

        yield CounterMetricFamily(P + "reloads", "Successful policy reloads", s.reloads)
        yield CounterMetricFamily(P + "reload_failures", "Failed policy reloads", s.reload_failures)
        yield GaugeMetricFamily(
            P + "reload_duration_seconds", "Duration of the last reload", s.reload_seconds_last
        )
        yield GaugeMetricFamily(
            P + "policy_generation", "Generation of the policy serving now", s.policy_generation
        )
        yield CounterMetricFamily(
            P + "mandated_hits", "Queries blocked by lists mandated by the authorities",
            s.mandated_hits,
        )  # fmt: skip
        yield CounterMetricFamily(
            P + "querylog_dropped", "Query-log events dropped (queue full or write error)",
            s.querylog_dropped,
        )  # fmt: skip
        yield CounterMetricFamily(
            P + "querylog_written", "Query-log events written", s.querylog_written
        )
        yield CounterMetricFamily(
            P + "querylog_failed_batches",
            "Query-log batch writes that failed (database unreachable: retried; else dropped)",
            s.querylog_failed_batches,
        )
        for name, doc, table in (
            ("malformed", "Malformed DNS messages by reason", s.malformed),
            ("dropped", "Queries dropped without an answer by reason", s.dropped),
        ):
            yield _by_label(
                CounterMetricFamily,
                P + name,
                doc,
                "reason",
                table,
            )
        yield _by_label(
            CounterMetricFamily,
            P + "tcp_closed",
            "TCP connections closed by the server by reason",
            "reason",
            s.tcp_closed,
        )
        limited = CounterMetricFamily(
            P + "ratelimited", "UDP queries over a rate limit, by limit and what was done",
            labels=["scope", "action"],
        )  # fmt: skip
        for scope_action, count in list(s.ratelimited.items()):
            limited.add_metric(list(scope_action), count)
        yield limited
        yield from _http_families(s)
        yield from _report_families(s)
        yield from _isp_families(s)
        yield GaugeMetricFamily(P + "start_time_seconds", "Process start (unix time)", s.started)
        yield from _transfer_families(s)


def _transfer_families(s: Stats) -> Iterator[Metric]:
    """Zone-transfer list sources (labelled by the policy's source id) and NOTIFYs received."""
    transfers = list(s.transfers.values())
    attempts = CounterMetricFamily(
        P + "transfer_attempts", "Zone-transfer rounds started (SOA check, then IXFR/AXFR)",
        labels=["source"],
    )  # fmt: skip
    increments = CounterMetricFamily(
        P + "transfer_increments", "IXFRs of the mandated list served at once, before the "
        "rebuild of its index", labels=["source"],
    )  # fmt: skip
    completed = CounterMetricFamily(
        P + "transfer_completed", "Zone-transfer rounds that succeeded, by style "
        "(ixfr, axfr, up-to-date)", labels=["source", "style"],
    )  # fmt: skip
    failures = CounterMetricFamily(
        P + "transfer_failures", "Zone-transfer rounds refused or failed, by reason "
        "(the last good copy kept serving)", labels=["source", "reason"],
    )  # fmt: skip
    serial = GaugeMetricFamily(
        P + "transfer_serial", "SOA serial of the zone's last good copy", labels=["source"]
    )
    rules = GaugeMetricFamily(
        P + "transfer_rules", "Rules in the zone's last good copy", labels=["source"]
    )
    age = GaugeMetricFamily(
        P + "transfer_seconds_since_success",
        "Seconds since the copy was last found current at the primary", labels=["source"],
    )  # fmt: skip
    now = time.time()
    for t in transfers:
        attempts.add_metric([t.source], t.attempts)
        increments.add_metric([t.source], t.increments)
        for style, count in list(t.completed.items()):
            completed.add_metric([t.source, style], count)
        for reason, count in list(t.failures.items()):
            failures.add_metric([t.source, reason], count)
        if t.serial is not None:
            serial.add_metric([t.source], t.serial)
        rules.add_metric([t.source], t.rules)
        if t.last_success:
            age.add_metric([t.source], now - t.last_success)
    yield from (attempts, increments, completed, failures, serial, rules, age)
    yield _by_label(
        CounterMetricFamily,
        P + "notify",
        "NOTIFY messages received, by outcome",
        "outcome",
        s.notifies,
    )


def _http_families(s: Stats) -> Iterator[Metric]:
    """The block page and admin listeners: connections, why they were closed, bad requests."""
    yield _by_label(
        GaugeMetricFamily,
        P + "http_connections",
        "HTTP connections open now",
        "listener",
        s.http_connections,
    )
    closed = CounterMetricFamily(
        P + "http_connections_closed",
        "HTTP connections closed or refused by the connection guard, by reason",
        labels=["listener", "reason"],
    )
    for (listener, reason), count in list(s.http_closed.items()):
        closed.add_metric([listener, reason], count)
    yield closed
    yield _by_label(
        CounterMetricFamily,
        P + "http_bad_requests",
        "HTTP requests the parser rejected with 400",
        "listener",
        s.http_bad_requests,
    )


def _report_families(s: Stats) -> Iterator[Metric]:
    """Roll-up writes, the last reload's outcome, and every serving process's resources."""
    yield CounterMetricFamily(
        P + "rollup_writes", "Roll-up batches written for the reports", s.rollup_writes
    )
    yield CounterMetricFamily(
        P + "rollup_failed_writes",
        "Roll-up or audit writes that failed (kept in memory and retried)",
        s.rollup_failed_writes,
    )
    yield GaugeMetricFamily(
        P + "rollup_last_write_timestamp_seconds",
        "When roll-ups were last written (unix time; 0 before the first)",
        s.rollup_written_at,
    )
    yield GaugeMetricFamily(
        P + "reload_last_success",
        "1 if the last policy reload (or the start) went live, 0 if it failed",
        1.0 if s.reload_last_ok else 0.0,
    )
    processes = sorted(s.processes.items())
    for name, doc, attr, kind in (
        ("process_resident_memory_bytes", "Resident memory per process", "resident_bytes",
         GaugeMetricFamily),
        ("process_open_fds", "Open file descriptors per process", "open_fds", GaugeMetricFamily),
        ("process_max_fds", "File descriptor limit per process", "max_fds", GaugeMetricFamily),
        ("process_cpu_seconds", "CPU time per process", "cpu_seconds", CounterMetricFamily),
        ("event_loop_lag_seconds", "Longest a due timer waited for the event loop in the last"
         " second, per process", "loop_lag", GaugeMetricFamily),
    ):  # fmt: skip
        family = kind(P + name, doc, labels=["process"])
        for process, sample in processes:
            family.add_metric([process], getattr(sample, attr))
        yield family


def _isp_families(s: Stats) -> Iterator[Metric]:
    """PROXY v2 refusals, and the policy bundle: polls, refusals, the bundle serving."""
    yield _by_label(
        CounterMetricFamily,
        P + "proxy_refused",
        "Datagrams and TCP connections dropped at the PROXY v2 gate, by reason",
        "reason",
        s.proxy_refused,
    )
    yield _by_label(
        CounterMetricFamily,
        P + "bundle_checks",
        "Polls of the policy bundle by result (unchanged, new, failed)",
        "result",
        s.bundle_checks,
    )
    yield _by_label(
        CounterMetricFamily,
        P + "bundle_refused",
        "Policy bundles refused (hash, signature, format, files, size; policy: the build failed)",
        "reason",
        s.bundle_refused,
    )
    if s.bundle_sha256:
        info = GaugeMetricFamily(
            P + "bundle_info", "The policy bundle serving now (1)", labels=["version", "sha256"]
        )
        info.add_metric([s.bundle_version, s.bundle_sha256], 1)
        yield info
        yield GaugeMetricFamily(
            P + "bundle_applied_timestamp_seconds", "When the serving bundle went live",
            s.bundle_applied,
        )  # fmt: skip
    if s.bundle_checked:
        yield GaugeMetricFamily(
            P + "bundle_last_check_timestamp_seconds",
            "The last poll that reached the policy host",
            s.bundle_checked,
        )


def _by_label(
    family: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, float],
) -> Metric:
    """A family with one sample per key of `values` (one of Stats' bounded counter dicts)."""
    metric = family(name, documentation, labels=[label])
    for key, value in list(values.items()):
        metric.add_metric([key], value)
    return metric


def make_registry(get_stats: Callable[[], Stats]) -> CollectorRegistry:
    """A fresh registry holding the resolver's collector and the standard process metrics
    (`process_*`) of this process (the supervisor, which serves /metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(get_stats))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return generate_latest(registry)
