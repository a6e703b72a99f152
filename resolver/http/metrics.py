"""Prometheus exposition of `resolver.stats.Stats`, read at scrape time.

The DNS path only adds to plain ints (see `resolver.stats`); this collector turns them into
metric families when Prometheus scrapes `/metrics`. It is registered in its own
`CollectorRegistry`, so tests and several resolvers in one process never collide in the global
registry. Every label value comes from a bounded set (transport, query type, action, profile,
category, upstream address from the config, malformed reason): never a domain or client address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
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

        rules = GaugeMetricFamily(
            P + "list_rules", "Rules loaded per category", labels=["category"]
        )
        for category, size in list(s.list_sizes.items()):
            rules.add_metric([category], size)
        yield rules
        updated = GaugeMetricFamily(
            P + "list_updated_timestamp_seconds", "When a category's lists last changed",
            labels=["category"],
        )  # fmt: skip
        for category, ts in list(s.list_updated.items()):
            updated.add_metric([category], ts)
        yield updated

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
            family = CounterMetricFamily(P + name, doc, labels=["reason"])
            for reason, count in list(table.items()):
                family.add_metric([reason], count)
            yield family
        yield from _http_families(s)
        yield GaugeMetricFamily(P + "start_time_seconds", "Process start (unix time)", s.started)


def _http_families(s: Stats) -> Iterator[Metric]:
    """The block page and admin listeners: connections, why they were closed, bad requests."""
    open_now = GaugeMetricFamily(
        P + "http_connections", "HTTP connections open now", labels=["listener"]
    )
    for listener, count in list(s.http_connections.items()):
        open_now.add_metric([listener], count)
    yield open_now
    closed = CounterMetricFamily(
        P + "http_connections_closed",
        "HTTP connections closed or refused by the connection guard, by reason",
        labels=["listener", "reason"],
    )
    for (listener, reason), count in list(s.http_closed.items()):
        closed.add_metric([listener, reason], count)
    yield closed
    bad = CounterMetricFamily(
        P + "http_bad_requests", "HTTP requests the parser rejected with 400", labels=["listener"]
    )
    for listener, count in list(s.http_bad_requests.items()):
        bad.add_metric([listener], count)
    yield bad


def make_registry(get_stats: Callable[[], Stats]) -> CollectorRegistry:
    """A fresh registry holding only the resolver's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(get_stats))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return generate_latest(registry)
