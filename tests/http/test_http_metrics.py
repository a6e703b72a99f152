"""/metrics scraped over HTTP and parsed with the Prometheus text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from resolver.http.admin import make_admin_app

ALLOWED_LABELS = {"transport", "qtype", "action", "profile", "category", "upstream", "reason", "le",
                  "quantile"}  # fmt: skip


async def scrape(aiohttp_client, control) -> dict:
    client = await aiohttp_client(make_admin_app(control, token=None, store=None, querylog=None))
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(await resp.text())}


def value(family, name: str, **labels) -> float:
    for s in family.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_reflect_stats_at_scrape_time(aiohttp_client, control):
    families = await scrape(aiohttp_client, control)
    q = families["safe_resolver_queries"]
    assert q.type == "counter"
    assert value(q, "safe_resolver_queries_total", action="blocked", category="adult") == 7
    assert value(q, "safe_resolver_queries_total", transport="tcp", qtype="AAAA") == 3
    lat = families["safe_resolver_query_latency_seconds"]
    assert lat.type == "histogram"
    buckets = [s.value for s in lat.samples if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == 5  # cumulative, +Inf holds all
    assert value(lat, "safe_resolver_query_latency_seconds_bucket", le="0.0025") == 3
    assert value(lat, "safe_resolver_query_latency_seconds_count") == 5
    cache = families["safe_resolver_cache_hits"]
    assert value(cache, "safe_resolver_cache_hits_total") == 60
    assert value(families["safe_resolver_cache_entries"], "safe_resolver_cache_entries") == 3
    healthy = families["safe_resolver_upstream_healthy"]
    assert value(healthy, "safe_resolver_upstream_healthy", upstream="198.51.100.53:53") == 0
    up_lat = families["safe_resolver_upstream_latency_seconds"]
    assert value(up_lat, "safe_resolver_upstream_latency_seconds_count",
                 upstream="192.0.2.53:53") == 40  # fmt: skip
    rules = families["safe_resolver_list_rules"]
    assert value(rules, "safe_resolver_list_rules", category="adult") == 1200
    assert "safe_resolver_list_updated_timestamp_seconds" in families
    dropped = families["safe_resolver_querylog_dropped"]
    assert value(dropped, "safe_resolver_querylog_dropped_total") == 5
    malformed = families["safe_resolver_malformed"]
    assert value(malformed, "safe_resolver_malformed_total", reason="short-header") == 4

    control.stats().reloads += 1  # read live, not a snapshot taken at start
    families = await scrape(aiohttp_client, control)
    assert value(families["safe_resolver_reloads"], "safe_resolver_reloads_total") == 1


async def test_labels_are_bounded(aiohttp_client, control):
    families = await scrape(aiohttp_client, control)
    for family in families.values():
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
            assert "127.0.0.1" not in sample.labels.values()
