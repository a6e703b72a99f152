"""Hostile upstream replies through the real reply path: always an answer or a counted SERVFAIL.

The resolver's own `Handler` and `Forwarder` run in this process, on this test's event loop, and
forward over loopback to the test authority, which answers each generated name with the bytes
hypothesis built for it: random records of every type (NSEC and RRSIG with empty or odd
bitmaps, OPT in any section, unknown types), RDLENGTH 0 or lying, names with pointers anywhere,
loops and bad labels, counts that lie, trailing bytes. The ID and question are the query's, so
each reply passes the forwarder's anti-spoofing checks and reaches the reply path proper: the
plain forward and the safe-search rewrite. Whatever comes back, the client must get a
well-formed answer to its own question, and a SERVFAIL the upstream did not send must be counted.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.message
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.answering import answer_on
from support.authority import Authority, Fault

from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
from resolver.dns.message import scan_reply
from resolver.dns.settings import CacheConfig, UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.policy.decision import Action, Decision, Tier
from resolver.stats import Stats

SERVFAIL = 2
TYPES = [1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 41, 43, 46, 47, 48, 50, 64, 65, 99, 255, 0, 65535]
_names = itertools.count()


class Policy:
    """The policy holder the handler reads (snapshot, memo); `rewrites` send a name to a
    target."""

    serving: Any = (object(), object())

    def __init__(self) -> None:
        self.rewrites: dict[str, str] = {}

    def decide(self, _snap: Any, _client: str, qname: str, *_rest: Any) -> Decision:
        target = self.rewrites.get(qname)
        if target is None:
            return Decision(Action.ALLOW, Tier.DEFAULT, "kids")
        return Decision(Action.REWRITE, Tier.SAFESEARCH, "kids", target=target, ttl=60)


class ReplyPath:
    """A handler forwarding to the authority, and a way to ask it one question."""

    def __init__(self, authority: Authority) -> None:
        self.loop = uvloop.new_event_loop()
        self.stats = Stats()
        self.policy = Policy()
        config = UpstreamConfig(timeout_ms=500, attempts=2, query_budget_ms=1500)
        self.handler = Handler(
            acl=AccessList(),
            cache=AnswerCache(CacheConfig()),
            forwarder=Forwarder([(authority.host, authority.port)], config, self.stats),
            stats=self.stats,
            policy=self.policy,
            decide=self.policy.decide,
        )

    def counted(self) -> int:
        """Everything that counts an unusable reply: drops by reason and upstream errors."""
        errors = sum(u.errors for u in self.stats.upstreams.values())
        return sum(self.stats.dropped.values()) + errors

    def ask(self, query: bytes) -> bytes:
        answer = answer_on(self.loop, self.handler, query, "127.0.0.1", timeout=5)
        assert isinstance(answer, bytes), answer
        return answer


@pytest.fixture(scope="module")
def path(_session_authority: Authority) -> Iterator[ReplyPath]:
    reply_path = ReplyPath(_session_authority)
    yield reply_path
    reply_path.loop.close()


# ---- hostile replies ------------------------------------------------------------------------
labels = st.lists(st.binary(min_size=1, max_size=63), min_size=1, max_size=4)


def one_in(n: int) -> st.SearchStrategy[bool]:
    return st.sampled_from([False] * (n - 1) + [True])


@st.composite
def names(draw: st.DrawFn) -> bytes:
    """Mostly well-formed (so replies get past the scan), sometimes anything at all."""
    kind = draw(
        st.sampled_from(
            ["question"] * 6 + ["labels"] * 6 + ["labels+question"] * 4 + ["root"] * 2
            + ["pointer", "labels+pointer", "junk"]
        )
    )  # fmt: skip
    pointer = struct.pack("!H", 0xC000 | draw(st.integers(0, 700) | st.integers(0, 0x3FFF)))
    if kind == "question":
        return b"\xc0\x0c"
    if kind == "root":
        return b"\x00"
    if kind == "pointer":
        return pointer
    if kind == "junk":
        return draw(st.binary(max_size=8))
    wire = b"".join(bytes([len(label)]) + label for label in draw(labels))
    if kind == "labels+question":
        return wire + b"\xc0\x0c"
    return wire + (pointer if kind == "labels+pointer" else b"\x00")


@st.composite
def rdatas(draw: st.DrawFn, rtype: int) -> bytes:
    kind = draw(st.sampled_from(["shaped"] * 6 + ["random", "empty", "name"]))
    if kind == "random":
        return draw(st.binary(max_size=48))
    if kind == "empty":
        return b""
    if kind == "name":
        return draw(st.binary(max_size=6)) + draw(names())
    fixed = {1: 4, 28: 16}.get(rtype)
    if fixed:
        return draw(st.binary(min_size=fixed, max_size=fixed))
    if rtype == 47:  # NSEC: next name and a type bitmap, often empty (the dnslib IndexError)
        return draw(names()) + draw(st.sampled_from([b"", b"\x00", b"\x00\x01\x40"]))
    if rtype == 46:  # RRSIG: 18 fixed bytes, the signer's name, a signature
        return draw(st.binary(min_size=18, max_size=18)) + draw(names()) + draw(st.binary())
    if rtype == 6:
        return draw(names()) + draw(names()) + draw(st.binary(min_size=20, max_size=20))
    before = {15: 2, 33: 6}.get(rtype, 0)
    return draw(st.binary(min_size=before, max_size=before)) + draw(names())


@st.composite
def records(draw: st.DrawFn) -> bytes:
    rtype = draw(st.sampled_from(TYPES) | st.integers(0, 65535))
    rdata = draw(rdatas(rtype))
    rdlen = draw(st.integers(0, 80)) if draw(one_in(10)) else len(rdata)
    rclass = draw(st.sampled_from([1, 1, 1, 3, 255, 1232]))
    ttl = draw(st.sampled_from([0, 1, 300, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1))
    return draw(names()) + struct.pack("!HHIH", rtype, rclass, ttl, rdlen) + rdata


@dataclass(frozen=True)
class Hostile:
    """A reply for the authority to send: the query's ID and question between these fields."""

    flags: int
    counts: tuple[int, int, int, int]  # QD, AN, NS, AR as the header claims them
    body: bytes  # the records (and any trailing bytes)

    @property
    def rcode(self) -> int:
        return self.flags & 0x000F

    def build(self, query: bytes) -> bytes:
        pos = 12
        while query[pos]:
            pos += query[pos] + 1
        question = query[12 : pos + 5]
        return query[:2] + struct.pack("!5H", self.flags, *self.counts) + question + self.body


@st.composite
def hostile(draw: st.DrawFn) -> Hostile:
    recs = draw(st.lists(records(), max_size=6))
    an = draw(st.integers(0, len(recs)))
    ns = draw(st.integers(0, len(recs) - an))
    counts = (an, ns, len(recs) - an - ns)
    if draw(one_in(10)):  # counts that lie
        counts = (draw(st.integers(0, 8)), draw(st.integers(0, 8)), draw(st.integers(0, 8)))
    rcode = draw(st.sampled_from([0, 0, 0, 2, 3, 5]) | st.integers(0, 15))
    flags = 0x8000 | (draw(st.integers(0, 0xFFFF)) & 0x7DF0) | rcode  # QR; TC and RCODE apart
    if draw(one_in(15)):
        flags |= 0x0200  # TC: the forwarder retries over TCP and gets the same bytes
    qdcount = draw(st.sampled_from([0, 2])) if draw(one_in(20)) else 1
    body = b"".join(recs) + (draw(st.sampled_from([b"\x00", b"junk"])) if draw(one_in(10)) else b"")
    return Hostile(flags, (qdcount, *counts), body)


def _check(path: ReplyPath, query: bytes, answer: bytes, sent: Hostile, before: int) -> None:
    info = scan_reply(answer)  # well-formed: every name and length checks out
    asked = dns.message.from_wire(query)
    assert info.qid == asked.id and info.flags & 0x8000
    assert answer[12 : info.qend] == query[12 : info.qend]  # the client's own question
    if info.rcode == SERVFAIL and sent.rcode != SERVFAIL:
        assert path.counted() > before, "a SERVFAIL nobody counted"


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reply=hostile(), rdtype=st.sampled_from(["A", "AAAA", "HTTPS", "TXT"]))
def test_forwarded_hostile_reply(
    path: ReplyPath, _session_authority: Authority, reply: Hostile, rdtype: str
) -> None:
    name = f"h{next(_names)}.w.example.org"
    _session_authority.set_fault(Fault(raw=reply.build, udp_only=False), name)
    query = dns.message.make_query(name, rdtype, use_edns=0).to_wire()
    before = path.counted()
    _check(path, query, path.ask(query), reply, before)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reply=hostile(), rdtype=st.sampled_from(["A", "AAAA", "HTTPS"]))
def test_rewrite_target_hostile_reply(
    path: ReplyPath, _session_authority: Authority, reply: Hostile, rdtype: str
) -> None:
    n = next(_names)
    name, target = f"search{n}.example", f"safe{n}.w.example.org"
    path.policy.rewrites[name] = target
    _session_authority.set_fault(Fault(raw=reply.build, udp_only=False), target)
    query = dns.message.make_query(name, rdtype, use_edns=0).to_wire()
    before = path.counted()
    _check(path, query, path.ask(query), reply, before)
