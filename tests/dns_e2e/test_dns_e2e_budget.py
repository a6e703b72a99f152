"""One time budget per client query, whatever the upstream does: the real server against an
authority that stays silent, answers late, or truncates and then garbles its TCP answer.

The bounds are deliberately loose (the budget plus 1.5 s for a loaded machine) and still far
below what a silent upstream used to cost (attempts x timeout: 4.5 s by default).
"""

from __future__ import annotations

import time
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest
from support.authority import Authority, Fault, raw_record, raw_reply
from support.resolver_proc import ResolverFactory, ResolverProc, unique_name

from resolver.config import load_config
from resolver.yamlsource import ConfigError

BUDGET = 2.0  # the defaults: query_budget_ms 2000, stale_answer_ms 1800
STALE_AT = 1.8
MARGIN = 1.5  # scheduling on a busy CI machine
DEFAULTS = {"timeout_ms": 800, "attempts": 3, "query_budget_ms": 2000, "stale_answer_ms": 1800}
EDE_STALE_ANSWER = 3


def timed(
    rp: ResolverProc, name: str, rdtype: str = "A", **kw
) -> tuple[dns.message.Message, float]:
    started = time.monotonic()
    resp = rp.query(name, rdtype, timeout=BUDGET + MARGIN + 3, use_edns=0, **kw)
    return resp, time.monotonic() - started


def test_silent_upstream_servfail_within_the_budget(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], upstream=DEFAULTS)
    name = unique_name("silent")
    authority.set_fault(Fault(drop=True, udp_only=False), name)
    resp, elapsed = timed(rp, name)
    assert resp.rcode() == dns.rcode.SERVFAIL
    assert elapsed < BUDGET + MARGIN
    assert 2 <= authority.count(name) <= 3  # attempts at 0, 0.8 and 1.6 s, none after 2 s


def test_late_reply_to_an_earlier_attempt_is_used(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    """Slower than `timeout_ms`: the first attempt's reply still counts when it comes while
    later attempts are out (attempts at 0, 0.3 and 0.6 s; every reply takes 0.7 s)."""
    rp = resolver_proc([authority.address], upstream={**DEFAULTS, "timeout_ms": 300})
    name = unique_name("late")
    authority.set_fault(Fault(delay_ms=700, udp_only=False), name)
    resp, elapsed = timed(rp, name)
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.200"]
    assert elapsed < BUDGET + MARGIN


@pytest.mark.parametrize(
    "tcp",
    [Fault(garbage=True), Fault(drop=True)],
    ids=["tc-then-garbage-tcp", "tc-then-silent-tcp"],
)
def test_truncated_then_broken_tcp_servfail_within_the_budget(
    resolver_proc: ResolverFactory, authority: Authority, tcp: Fault
) -> None:
    rp = resolver_proc([authority.address], upstream=DEFAULTS)
    name = unique_name("tc")
    authority.set_fault(Fault(truncate=True, tcp=tcp), name)
    resp, elapsed = timed(rp, name)
    assert resp.rcode() == dns.rcode.SERVFAIL
    assert elapsed < BUDGET + MARGIN
    assert authority.count(name, transport="tcp") >= 1
    assert "query handling failed" not in rp.output()


def test_stale_answer_at_the_client_response_timer_with_ttl_30(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], upstream=DEFAULTS, cache={"serve_stale": True})
    name = "short.example.org"  # TTL 1 in the authority's zone
    fresh, _ = timed(rp, name)
    assert [rd.to_text() for rd in fresh.answer[0]] == ["192.0.2.11"]
    time.sleep(1.5)  # let the 1 s TTL run out: the entry is now stale
    authority.set_fault(Fault(drop=True, udp_only=False), name)
    for _ in range(2):  # the second is answered from the stale entry too (refresh or not)
        stale, elapsed = timed(rp, name)
        assert [rd.to_text() for rd in stale.answer[0]] == ["192.0.2.11"]
        assert stale.answer[0].ttl == 30  # RFC 8767 section 4
        assert [o.code for o in stale.options if o.otype == dns.edns.EDE] == [EDE_STALE_ANSWER]
        assert elapsed < STALE_AT + MARGIN
    assert authority.count(name) >= 2


def test_stale_answer_then_the_refresh_updates_the_cache(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    """The upstream answers after the stale answer went out: the cache gets the new data."""
    upstream = {**DEFAULTS, "timeout_ms": 3000, "query_budget_ms": 4000, "stale_answer_ms": 300}
    rp = resolver_proc([authority.address], upstream=upstream, cache={"serve_stale": True})
    name = unique_name("refresh")
    authority.set_fault(Fault(raw=raw_reply(raw_record(1, bytes([192, 0, 2, 1]), ttl=1))), name)
    first, _ = timed(rp, name)
    assert [rd.to_text() for rd in first.answer[0]] == ["192.0.2.1"]
    time.sleep(1.5)  # past the 1 s TTL
    new = Fault(raw=raw_reply(raw_record(1, bytes([192, 0, 2, 2]), ttl=300)), delay_ms=2500)
    authority.set_fault(new, name)
    stale, elapsed = timed(rp, name)  # stale at 0.3 s; the upstream answers at 2.5 s
    assert [rd.to_text() for rd in stale.answer[0]] == ["192.0.2.1"]
    assert stale.answer[0].ttl == 30 and elapsed < 2.0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp, _ = timed(rp, name)
        if [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.2"]:
            break
        time.sleep(0.1)
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.2"]
    assert authority.count(name) == 2  # one refresh did it; the polls were stale or cached


def test_stale_not_used_when_the_refresh_answers_in_time(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], upstream=DEFAULTS, cache={"serve_stale": True})
    name = "short.example.org"
    timed(rp, name)
    time.sleep(1.5)
    authority.set_fault(Fault(delay_ms=300, udp_only=False), name)
    resp, _ = timed(rp, name)
    assert resp.answer[0].ttl <= 1  # the fresh answer (TTL 1), not the stale one (TTL 30)
    assert not [o for o in resp.options if o.otype == dns.edns.EDE]


def test_stale_answer_after_the_budget_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("upstream:\n  query_budget_ms: 1500\n  stale_answer_ms: 1800\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert f"{config}:3:" in str(caught.value) and "stale_answer_ms" in str(caught.value)
