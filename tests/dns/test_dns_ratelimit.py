"""The rate limiter on a fake clock: bursts and rates, per client and per prefix, overrides,
bounded memory under spoofed floods, and defaults that leave a school behind one NAT alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from resolver.config import load_config
from resolver.dns.ratelimit import CLIENT, PREFIX, RateLimitConfig, RateLimiter, RateOverride
from resolver.yamlsource import ConfigError

TIGHT = RateLimitConfig(client_qps=10, client_burst=5, prefix_qps=1000, prefix_burst=1000)


def passed(limiter: RateLimiter, client: str, count: int, now: float) -> int:
    return sum(limiter.check(client, now) is None for _ in range(count))


def test_burst_then_rate() -> None:
    limiter = RateLimiter(TIGHT)
    assert passed(limiter, "10.0.0.1", 5, 100.0) == 5
    assert limiter.check("10.0.0.1", 100.0) == CLIENT
    assert limiter.check("10.0.0.1", 100.04) == CLIENT  # not a whole interval later: not yet
    assert limiter.check("10.0.0.1", 100.1) is None  # one interval (1/qps) refills one query
    assert limiter.check("10.0.0.1", 100.1) == CLIENT
    assert passed(limiter, "10.0.0.1", 100, 200.0) == 5  # refilled to the burst, never beyond


def test_steady_rate_at_the_limit_is_never_limited() -> None:
    limiter = RateLimiter(TIGHT)
    assert all(limiter.check("10.0.0.1", 5.0 + i / 10) is None for i in range(1000))


def test_limited_queries_do_not_count() -> None:
    limiter = RateLimiter(TIGHT)
    passed(limiter, "10.0.0.1", 5, 0.0)
    assert passed(limiter, "10.0.0.1", 10_000, 0.0) == 0
    assert limiter.check("10.0.0.1", 0.1) is None  # a flood while limited cost it nothing more


def test_a_lease_is_charged_at_once_and_what_is_unused_refunded() -> None:
    """The UDP fast path answers a client's repeats from a credit the limiter leases it."""
    limiter = RateLimiter(TIGHT)
    assert limiter.lease("10.0.0.1", 0.0, 3) == 3
    assert passed(limiter, "10.0.0.1", 10, 0.0) == 2  # the burst of 5, less the 3 leased
    assert limiter.lease("10.0.0.1", 0.0, 64) == 0
    limiter.refund("10.0.0.1", 2)  # two of the lease were not used
    assert passed(limiter, "10.0.0.1", 10, 0.0) == 2
    assert limiter.lease("10.0.0.1", 1.0, 64) == 5  # refilled: never more than the burst
    tight_prefix = RateLimiter(replace(TIGHT, prefix_qps=10, prefix_burst=6))
    assert tight_prefix.lease("10.0.0.1", 0.0, 64) == 5
    assert tight_prefix.lease("10.0.0.2", 0.0, 64) == 1  # the /24 has one query left
    free = RateLimiter(replace(TIGHT, overrides=(RateOverride("10.9.0.0/16", unlimited=True),)))
    assert free.lease("10.9.1.1", 0.0, 64) == -1  # no limit applies: an unlimited credit
    limiter.refund("10.1.1.1", 5)  # a client not tracked: nothing to give back


def test_one_client_does_not_limit_another() -> None:
    limiter = RateLimiter(TIGHT)
    assert passed(limiter, "10.0.0.1", 1000, 0.0) == 5
    assert passed(limiter, "10.0.0.2", 5, 0.0) == 5


def test_prefix_limit_caps_clients_that_rotate_addresses() -> None:
    config = RateLimitConfig(client_qps=100, client_burst=100, prefix_qps=10, prefix_burst=20)
    limiter = RateLimiter(config)
    results = [limiter.check(f"192.0.2.{i}", 0.0) for i in range(1, 41)]
    assert results.count(None) == 20 and results[-1] == PREFIX
    assert limiter.check("192.0.3.1", 0.0) is None  # the next /24 is another prefix


def test_ipv6_prefix_is_a_56_and_mapped_ipv4_is_ipv4() -> None:
    config = RateLimitConfig(client_qps=100, client_burst=100, prefix_qps=1, prefix_burst=2)
    limiter = RateLimiter(config)
    assert limiter.check("2001:db8:0:ff::1", 0.0) is None
    assert limiter.check("2001:db8:0:aa::99", 0.0) is None  # same /56, another /64
    assert limiter.check("2001:db8:0:1::1", 0.0) == PREFIX
    assert limiter.check("2001:db8:0:100::1", 0.0) is None  # the next /56
    assert limiter.check("::ffff:198.51.100.1", 0.0) is None
    assert limiter.check("198.51.100.2", 0.0) is None
    assert limiter.check("198.51.100.3", 0.0) == PREFIX  # one IPv4 /24 however it was written
    assert limiter.check("fe80::1%eth0", 0.0) is None
    assert limiter.check("fe80::2", 0.0) is None
    assert limiter.check("fe80::3%eth1", 0.0) == PREFIX  # zone indexes do not make new prefixes


def test_overrides_most_specific_wins_and_unlimited_is_never_limited() -> None:
    config = RateLimitConfig(
        client_qps=10,
        client_burst=5,
        overrides=(
            RateOverride("10.0.0.0/8", client_qps=100, client_burst=50),
            RateOverride("10.9.9.9/32", unlimited=True),
        ),
    )
    limiter = RateLimiter(config)
    assert passed(limiter, "192.0.2.1", 100, 0.0) == 5
    assert passed(limiter, "10.1.1.1", 100, 0.0) == 50
    assert passed(limiter, "10.9.9.9", 100_000, 0.0) == 100_000


def test_override_clients_have_their_own_prefix_buckets() -> None:
    config = RateLimitConfig(
        client_qps=100,
        client_burst=100,
        prefix_qps=1,
        prefix_burst=3,
        overrides=(RateOverride("192.0.2.128/25", prefix_qps=1, prefix_burst=3),),
    )
    limiter = RateLimiter(config)
    assert passed(limiter, "192.0.2.1", 10, 0.0) == 3
    assert passed(limiter, "192.0.2.200", 10, 0.0) == 3  # same /24, other rule: not used up


def test_memory_is_bounded_under_a_spoofed_flood_and_abusers_stay_limited() -> None:
    config = RateLimitConfig(
        client_qps=100, client_burst=10, prefix_qps=10**6, prefix_burst=10**6, max_clients=1000
    )
    limiter = RateLimiter(config)
    allowed, seconds = 0, 10
    for ms in range(seconds * 1000):  # per millisecond: the abuser and 5 one-off sources
        now = ms / 1000
        allowed += limiter.check("10.0.0.1", now) is None
        for j in range(5):
            i = ms * 5 + j
            limiter.check(f"172.{16 + i % 16}.{i // 256 % 256}.{i % 256}", now)
        assert len(limiter) <= 1000
    assert allowed <= config.client_burst + config.client_qps * seconds + 1


def test_a_table_full_of_active_clients_starts_over_rather_than_grow() -> None:
    limiter = RateLimiter(replace(TIGHT, max_clients=100))
    for i in range(1000):  # all at one instant: none has refilled when the table fills
        assert limiter.check(f"172.16.{i // 256}.{i % 256}", 0.0) is None
        assert len(limiter) <= 100


def test_defaults_leave_a_school_behind_one_nat_alone() -> None:
    """1,000 pupils behind one address: 30,000 queries in the 5 s a lesson starts, then 1,000 q/s
    (far above a school's average) for a minute: never limited."""
    limiter = RateLimiter(RateLimitConfig())
    times = [i * 5 / 30_000 for i in range(30_000)]
    times += [5 + i / 1_000 for i in range(60_000)]
    assert all(limiter.check("203.0.113.7", t) is None for t in times)


def test_defaults_hold_an_abusive_host_to_its_rate() -> None:
    config = RateLimitConfig()
    limiter = RateLimiter(config)
    seconds, rate = 20, 20_000  # a laptop flooding at 20,000 q/s
    allowed = sum(limiter.check("10.0.0.66", i / rate) is None for i in range(seconds * rate))
    assert allowed <= config.client_burst + config.client_qps * seconds + 1


def test_config_section_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "ratelimit:\n"
        "  action: drop\n"
        "  client_qps: 50\n"
        "  ipv6_prefix: 48\n"
        "  overrides:\n"
        "    - {network: 10.1.0.1/32, client_qps: 20000, client_burst: 100000}\n"
        "    - {network: '2001:db8::/32', unlimited: true}\n"
    )
    cfg = load_config(path).ratelimit
    assert cfg.enabled and cfg.action == "drop" and cfg.client_qps == 50 and cfg.ipv6_prefix == 48
    assert cfg.client_burst == RateLimitConfig().client_burst
    assert cfg.overrides == (
        RateOverride("10.1.0.1/32", client_qps=20000, client_burst=100000),
        RateOverride("2001:db8::/32", unlimited=True),
    )
    path.write_text("ratelimit: {enabled: false}\n")
    assert not load_config(path).ratelimit.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ratelimit: {action: slow}\n", '"action" must be one of truncate, drop'),
        ("ratelimit: {client_qps: 0}\n", '"client_qps" must be between'),
        ("ratelimit: {ipv4_prefix: 33}\n", '"ipv4_prefix" must be between'),
        ("ratelimit:\n  overrides: [{network: 10.0.0.0/33}]\n", "is not a network"),
        ("ratelimit:\n  overrides: [{client_qps: 5}]\n", "needs the key 'network'"),
        (
            "ratelimit:\n  overrides: [{network: 10.0.0.0/8, unlimited: true, client_qps: 5}]\n",
            "either unlimited or has rates",
        ),
    ],
)
def test_config_mistakes_are_reported_with_their_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:" in str(caught.value) and message in str(caught.value)
