"""Which profile a query gets: the source address, or EDNS Client Subnet from a trusted forwarder.

The school plan's 10.x subnets cannot send from this host, so they are reached two ways: loopback
aliases mapped to the same profiles (the client socket bound to 127.0.x.1), and ECS carrying a
10.x subnet from 127.0.0.53, the policy's one trusted forwarder.
"""

from __future__ import annotations

import dns.rcode
import pytest
from policy_e2e_support import (
    ALLOWED_V4,
    BLOCKPAGE,
    CLIENTS,
    FORWARDER,
    UNTRUSTED,
    Served,
    ask,
    ecs,
    records,
)
from support.authority import SAFESEARCH_TARGETS

# What each school profile answers for three probe names: (social, games, www.youtube.com target)
SOCIAL, GAME = "social.w.example.org", "game.w.example.org"
PLAN = {
    "10.1.2.0/24": ("primary", "blockpage", "allowed", "restrict.youtube.com"),
    "10.2.0.7/32": ("lower-secondary", "allowed", "blockpage", "restrictmoderate.youtube.com"),
    "10.3.40.0/24": ("upper-secondary", "allowed", "allowed", "restrictmoderate.youtube.com"),
    "10.9.1.0/24": ("teachers", "allowed", "allowed", "restrictmoderate.youtube.com"),
    "10.99.0.0/16": ("guests", "nxdomain", "allowed", "restrictmoderate.youtube.com"),
}


def outcome(resp) -> str:
    if resp.rcode() == dns.rcode.NXDOMAIN:
        return "nxdomain"
    got = records(resp, "A")
    if got == [ALLOWED_V4]:
        return "allowed"
    if got == [BLOCKPAGE[0]]:
        return "blockpage"
    return f"unexpected {resp}"


def youtube_target(resp) -> str:
    targets = records(resp, "CNAME")
    return targets[0].rstrip(".") if targets else "none"


def profile_answers(served: Served, source: str, **kw) -> tuple[str, str, str]:
    return (
        outcome(ask(served.rp, SOCIAL, "A", source=source, **kw)),
        outcome(ask(served.rp, GAME, "A", source=source, **kw)),
        youtube_target(ask(served.rp, "www.youtube.com", "A", source=source, **kw)),
    )


@pytest.mark.parametrize("subnet", list(PLAN))
def test_loopback_alias_per_profile(served: Served, subnet: str) -> None:
    profile, *expected = PLAN[subnet]
    assert profile_answers(served, CLIENTS[profile]) == tuple(expected)


@pytest.mark.parametrize("subnet", list(PLAN))
def test_ecs_from_trusted_forwarder(served: Served, subnet: str) -> None:
    _, *expected = PLAN[subnet]
    assert profile_answers(served, FORWARDER, options=[ecs(subnet)]) == tuple(expected)


def test_ecs_over_tcp_and_ipv6_subnet_falls_back_to_default(served: Served) -> None:
    resp = ask(served.rp, SOCIAL, "A", source=FORWARDER, tcp=True, options=[ecs("10.1.9.0/24")])
    assert outcome(resp) == "blockpage"  # primary
    # An ECS subnet no network covers: the default profile ("guests": NXDOMAIN for social).
    resp = ask(served.rp, SOCIAL, "A", source=FORWARDER, options=[ecs("2001:db8:77::/48")])
    assert outcome(resp) == "nxdomain"


def test_ecs_from_untrusted_client_ignored(served: Served) -> None:
    # 127.0.0.54 is in no network: default profile "guests" whatever subnet it claims.
    default = profile_answers(served, UNTRUSTED)
    assert default == PLAN["10.99.0.0/16"][1:]
    for subnet in ("10.9.1.0/24", "10.1.2.0/24"):
        assert profile_answers(served, UNTRUSTED, options=[ecs(subnet)]) == default
    # A mapped client claiming the teachers' subnet stays primary.
    primary = CLIENTS["primary"]
    claimed = profile_answers(served, primary, options=[ecs("10.9.1.0/24")])
    assert claimed == PLAN["10.1.2.0/24"][1:]


def test_forwarder_without_ecs_is_just_a_client(served: Served) -> None:
    assert profile_answers(served, FORWARDER) == PLAN["10.99.0.0/16"][1:]  # default profile


def test_safe_search_for_ecs_client(served: Served) -> None:
    resp = ask(served.rp, "www.google.com.vn", "AAAA", source=FORWARDER,
               options=[ecs("10.1.2.0/24")])  # fmt: skip
    assert records(resp, "CNAME") == ["forcesafesearch.google.com."]
    assert records(resp, "AAAA") == [SAFESEARCH_TARGETS["forcesafesearch.google.com"][1]]
