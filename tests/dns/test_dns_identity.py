"""The handler's identity hook: an encrypted-DNS identity picks the profile or device whatever
the address, an unknown one is served only to the access list, each identity has its own rate,
and the query log gets the device (the log pseudonymizes it like an address)."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest
import uvloop
from support.answering import answer_on

from resolver.build.compile import compile_policy
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
from resolver.dns.ratelimit import RateLimitConfig, RateLimiter, for_identities
from resolver.dns.settings import CacheConfig, UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.policy.decide import decide
from resolver.policy.memo import DecisionMemo
from resolver.stats import Stats
from resolver.store.events import QueryEvent

AN = "an0phone0token0123456"
POLICY = f"""\
version: 1
clients: {{default: open}}
profiles:
  open: {{age: unrestricted}}
  family: {{age: unrestricted, deny: [games.example], block_mode: nxdomain}}
devices:
  an-phone: {{profile: family, token: {AN}, deny: [video.example]}}
"""
OUTSIDER = "203.0.113.9"  # not in the access list below


class Serving:
    def __init__(self, path: Path) -> None:
        snap = compile_policy(path)
        self.serving = (snap, DecisionMemo(snap))


class Log:
    def __init__(self) -> None:
        self.events: list[QueryEvent] = []

    def submit(self, event: QueryEvent) -> None:
        self.events.append(event)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Handler, Log]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    stats, log = Stats(), Log()
    handler = Handler(
        acl=AccessList(("127.0.0.0/8",)),
        cache=AnswerCache(CacheConfig()),
        forwarder=Forwarder([("127.0.0.1", 9)], UpstreamConfig(), stats),
        stats=stats,
        policy=Serving(path),
        decide=decide,
        querylog=log,
        identity_limiter=RateLimiter(for_identities(RateLimitConfig(client_qps=1, client_burst=3))),
    )
    return handler, log


def ask(handler: Handler, name: str, client: str, identity: str | None) -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0)
    answer = handler.answer(query.to_wire(), client, "dot", identity)
    assert isinstance(answer, bytes)
    return dns.message.from_wire(answer)


def test_a_device_identity_picks_its_rules_from_anywhere(parts: tuple[Handler, Log]) -> None:
    handler, log = parts
    for identity in (f"{AN}-family", f"family/{AN}"):
        assert ask(handler, "video.example", OUTSIDER, identity).rcode() == dns.rcode.NXDOMAIN
    assert ask(handler, "games.example", OUTSIDER, f"{AN}-family").rcode() == dns.rcode.NXDOMAIN
    event = log.events[-1]
    assert (event.client, event.profile, event.transport) == ("device:an-phone", "family", "dot")


def test_unknown_identity_is_refused_unless_the_address_is_allowed(
    parts: tuple[Handler, Log],
) -> None:
    handler, _ = parts
    for identity in ("", "nobody-family", "family/nobody"):
        reply = ask(handler, "video.example", OUTSIDER, identity)
        assert reply.rcode() == dns.rcode.REFUSED
        (ede,) = [o for o in reply.options if o.otype == dns.edns.EDE]
        assert ede.code == 18  # Prohibited
    assert handler.stats.dropped["identity-unknown"] == 3
    # From an allowed address the address decides: profile "open" denies nothing, so the
    # query goes upstream (none listens on port 9: SERVFAIL "no upstream") instead of being
    # refused or blocked.
    wire = dns.message.make_query("games.example", "A").to_wire()
    loop = uvloop.new_event_loop()
    try:
        forwarded = answer_on(loop, handler, wire, "127.0.0.1", "dot", "nobody-family")
    finally:
        loop.close()
    assert forwarded is not None
    assert dns.message.from_wire(forwarded).rcode() == dns.rcode.SERVFAIL
    assert handler.stats.cache_misses == 1
    # ... and plain DNS (identity None) is by address only.
    assert ask(handler, "video.example", OUTSIDER, None).rcode() == dns.rcode.REFUSED


def test_each_identity_has_its_own_rate(parts: tuple[Handler, Log]) -> None:
    handler, _ = parts
    codes = [ask(handler, "video.example", OUTSIDER, f"{AN}-family").rcode() for _ in range(5)]
    assert codes[:3] == [dns.rcode.NXDOMAIN] * 3  # the burst
    assert codes[3:] == [dns.rcode.REFUSED] * 2  # then over the rate
    assert handler.stats.ratelimited[("identity", "refuse")] == 2
