"""What the handler hands to the fast path, until when, and how its answers are counted.

A repeated answer must be the answer the handler would give: the tests ask the same query
again (another ID, another name case) through the fast path and through the handler and
compare the bytes. What must reach Python every time (logged decisions, ECS, TCP, guards,
refused clients) is never stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.rrset
import pytest
from support.fastpath import IMPLEMENTATIONS, answer_to, query, wire

from resolver.build.compile import compile_policy
from resolver.dns.acl import AccessList
from resolver.dns.cache import EXPIRES, AnswerCache, Entry, render
from resolver.dns.fastanswers import FOREVER, HORIZON_MINUTES, FastAnswers
from resolver.dns.fastpath import SEEN, PyFastPath
from resolver.dns.handler import Handler
from resolver.dns.message import scan_reply
from resolver.dns.packet import read_query
from resolver.dns.proxyproto import build
from resolver.dns.ratelimit import RateLimitConfig, RateLimiter
from resolver.dns.settings import CacheConfig, UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.policy.decision import Action, BlockMode, Decision, Tier
from resolver.rollup import Rollup
from resolver.stats import Stats
from resolver.store.events import QueryEvent

REPO = Path(__file__).resolve().parents[2]
MINUTE = 600_000.0  # a whole Unix minute (10,000 minutes after the epoch)
KIDS = Decision(Action.ALLOW, Tier.DEFAULT, "kids")
DECISIONS = {
    "blocked.example": Decision(Action.BLOCK, Tier.CATEGORY, "kids", "adult", BlockMode.NULL),
    "nx.example": Decision(Action.BLOCK, Tier.CATEGORY, "kids", "adult", BlockMode.NXDOMAIN),
    "mandated.example": Decision(Action.BLOCK, Tier.MANDATED, "kids", "mandated"),
    "ddr.example": Decision(Action.NODATA, Tier.BYPASS, "kids"),
    "yandex.example": Decision(Action.REWRITE, Tier.SAFESEARCH, "kids", target="213.180.193.56"),
    "quiet.example": Decision(Action.BLOCK, Tier.CATEGORY, "kids", "adult", log=False),
}


@dataclass(eq=False)
class Profile:
    """What FastAnswers reads of a profile: its number, and its state minute by minute (here:
    the minutes at which its schedules switch, from MINUTE on)."""

    num: int
    switches: tuple[int, ...] = ()

    @property
    def schedules(self) -> tuple[int, ...]:
        return self.switches

    def compute_state(self, unix_time: float) -> int:
        return sum(unix_time >= MINUTE + 60 * m for m in self.switches)


@dataclass
class Memo:
    """What FastAnswers reads of the serving snapshot's memo: the client's profile."""

    profiles: dict[str, Profile] = field(default_factory=lambda: {"127.0.0.1": Profile(4)})

    def profile(self, client: str) -> Profile:
        return self.profiles.get(client) or Profile(0)


@dataclass
class Holder:
    memo: Memo = field(default_factory=Memo)

    @property
    def serving(self) -> tuple[None, Memo]:
        return (None, self.memo)


class Recording(PyFastPath):
    """The twin, remembering every `put`, its doorkeeper open: every offer may be stored (the
    doorkeeper's own cases run on the real tables)."""

    def __init__(self) -> None:
        super().__init__(batch=8, answers=100, clients=100)
        self.puts: list[tuple[int, bytes, bytes, float, int]] = []
        self.cleared = 0

    def clear(self) -> None:
        self.cleared += 1
        super().clear()

    def put(
        self,
        klass: int,
        query: bytes,
        answer: bytes,
        valid_until: float,
        stats_id: int,
        ttl_offsets: Sequence[int] = (),
        second: int = 0,
    ) -> bool:
        self.puts.append((klass, query, answer, valid_until, stats_id))
        return super().put(klass, query, answer, valid_until, stats_id, ttl_offsets, second)

    def admit(self, klass: int, query: bytes) -> bool:
        return True


def fake_decide(snap: Any, client: str, qname: str, *rest: Any) -> Decision:
    return DECISIONS.get(qname, KIDS)


def make_handler(
    table: Any,
    *,
    querylog: list[QueryEvent] | None = None,
    rollup: Rollup | None = None,
    limiter: RateLimiter | None = None,
    balancers: AccessList | None = None,
) -> Handler:
    stats = Stats()
    holder = Holder()

    class Sink:
        def submit(self, event: QueryEvent) -> None:
            assert querylog is not None
            querylog.append(event)

    return Handler(
        acl=AccessList(["127.0.0.0/8"]),
        cache=AnswerCache(CacheConfig()),
        forwarder=Forwarder([("127.0.0.1", 9)], UpstreamConfig(), stats),
        stats=stats,
        policy=holder,
        decide=fake_decide,
        querylog=Sink() if querylog is not None else None,
        rollup=rollup,
        blockpage_v4=[bytes([10, 0, 0, 1])],
        identity="worker 1",
        limiter=limiter,
        fast=FastAnswers(
            table, holder, limiter=limiter, balancers=balancers, names=rollup is not None
        ),
    )


def cache_upstream_answer(handler: Handler, name: str, ttl: int = 300) -> None:
    """Put an upstream-style A answer for `name` in the handler's cache."""
    q = dns.message.make_query(name, "A")
    reply = dns.message.make_response(q)
    reply.answer.append(dns.rrset.from_text(name + ".", ttl, "IN", "A", "192.0.2.7"))
    handler.cache.put((name, 1, 1, False), scan_reply(reply.to_wire()), time.monotonic())


def within_one_second(attempt: Callable[[], None]) -> None:
    """Run `attempt` until one run starts and ends in the same second and minute: cache
    answers are repeated for the rest of their second, decisions for the rest of their minute."""
    for _ in range(20):
        second, minute = int(time.monotonic()), time.time() // 60
        try:
            attempt()
            return
        except AssertionError:
            if int(time.monotonic()) == second and time.time() // 60 == minute:
                raise
    raise AssertionError("no attempt stayed within one second")


def wire_query(name: str, qid: int, rdtype: str = "A", rdclass: str = "IN", **kw: Any) -> bytes:
    q = dns.message.make_query(name, rdtype, rdclass, **kw)
    q.id = qid
    return q.to_wire()


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.mark.parametrize(
    ("name", "rdtype", "rdclass"),
    [
        ("blocked.example", "A", "IN"),  # null block: 0.0.0.0
        ("blocked.example", "MX", "IN"),  # NODATA for other types
        ("nx.example", "A", "IN"),
        ("mandated.example", "AAAA", "IN"),
        ("ddr.example", "A", "IN"),
        ("yandex.example", "A", "IN"),  # rewrite to an address
        ("yandex.example", "TXT", "IN"),  # rewrite, other type: NODATA
        ("cached.example", "A", "IN"),  # a cache hit
        ("id.server", "TXT", "CH"),
    ],
)
@pytest.mark.parametrize("edns", [False, True])
def test_a_repeat_is_what_the_handler_would_answer(
    impl: Any, name: str, rdtype: str, rdclass: str, edns: bool
) -> None:
    options = {"use_edns": 0} if edns else {"use_edns": False}

    def attempt() -> None:
        table = impl(batch=8, answers=100, clients=100)
        handler = make_handler(table)
        cache_upstream_answer(handler, "cached.example")
        first = handler.answer(wire_query(name, 1, rdtype, rdclass, **options), "127.0.0.1", "udp")
        assert isinstance(first, bytes)
        # a cache answer is stored at once (its entry is the earlier sighting), others from
        # their second sighting on
        assert table.answers == (name == "cached.example")
        handler.answer(wire_query(name, 2, rdtype, rdclass, **options), "127.0.0.1", "udp")
        assert table.answers == 1 and table.clients == 1
        again = wire_query(name.upper(), 0x7777, rdtype, rdclass, **options)
        with wire() as w:
            misses, answers = w.exchange(table, [again], time.monotonic())
        assert misses == []
        assert answers == [handler.answer(again, "127.0.0.1", "udp")]

    within_one_second(attempt)


def test_what_must_reach_python_is_never_stored(impl: Any) -> None:
    table = impl(batch=8, answers=100, clients=100)
    events: list[QueryEvent] = []
    logged = make_handler(table, querylog=events)
    logged.answer(wire_query("blocked.example", 1), "127.0.0.1", "udp")  # the log must get it
    logged.answer(wire_query("id.server", 2, "TXT", "CH"), "127.0.0.1", "udp")  # this one too
    assert len(events) == 2 and table.answers == 0
    for qid in (3, 4):  # a profile not logged: stored from the second sighting on
        logged.answer(wire_query("quiet.example", qid), "127.0.0.1", "udp")
    assert len(events) == 2 and table.answers == 1
    table.clear()
    handler = make_handler(table)
    ecs = dns.edns.ECSOption("10.1.0.0", 16)
    for packet, client, transport in [
        (wire_query("blocked.example", 4), "127.0.0.1", "tcp"),
        (wire_query("example.org", 5, "ANY"), "127.0.0.1", "udp"),  # guard: RFC 8482 HINFO
        (wire_query("example.org", 6, "AXFR"), "127.0.0.1", "udp"),  # guard: NOTIMP
        (wire_query("blocked.example", 7), "192.0.2.9", "udp"),  # not allowed: REFUSED
        (wire_query("blocked.example", 8, use_edns=0, options=[ecs]), "127.0.0.1", "udp"),
    ]:
        for _ in range(2):  # seen twice: the doorkeeper would let them in
            assert isinstance(handler.answer(packet, client, transport), bytes)
    assert (table.answers, table.clients) == (0, 0)


def offer(
    fast: FastAnswers,
    packet: bytes,
    *,
    until: float,
    started: float,
    wall: float,
    decision: Decision | None,
    entry: Entry | None = None,
    resp: bytes | None = None,
) -> None:
    q = read_query(packet)
    key = ("udp", "A", "blocked", "kids", "")
    fast.offer(q, "127.0.0.1", resp or answer_to(packet), until, started, wall, key, decision,
               entry)  # fmt: skip


def test_a_decision_stands_until_its_profile_changes_state() -> None:
    table = Recording()
    holder = Holder()
    fast = FastAnswers(table, holder, wall_clock=lambda: MINUTE + 30.5)
    blocked = DECISIONS["blocked.example"]
    # no schedules: until a reload
    offer(fast, query("a.example"), until=FOREVER, started=100.0, wall=MINUTE + 30,
          decision=blocked)  # fmt: skip
    assert table.puts[-1][0] == 5  # profile number 4 + 1
    assert table.puts[-1][3] == math.inf
    # a schedule switching 3 minutes on: the decision (made for MINUTE + 30, read a moment
    # ago) stands until then, 149.5 s from now
    holder.memo.profiles["127.0.0.1"] = Profile(4, (3,))
    offer(fast, query("b.example"), until=FOREVER, started=100.0, wall=MINUTE + 30,
          decision=blocked)  # fmt: skip
    assert table.puts[-1][3] == pytest.approx(100.0 + 149.5)
    # no switch within the horizon: until the horizon's end
    holder.memo.profiles["127.0.0.1"] = Profile(4, (HORIZON_MINUTES + 5,))
    offer(fast, query("c.example"), until=FOREVER, started=100.0, wall=MINUTE + 30,
          decision=blocked)  # fmt: skip
    assert table.puts[-1][3] == pytest.approx(100.0 + HORIZON_MINUTES * 60 - 30.5)
    # a decision made for a state that has ended already is not stored (made a second
    # before MINUTE, when the schedule switched; read after)
    table.puts.clear()
    holder.memo.profiles["127.0.0.1"] = Profile(4, (0,))
    offer(fast, query("d.example"), until=FOREVER, started=100.0, wall=MINUTE - 1,
          decision=blocked)  # fmt: skip
    assert table.puts == []


def test_a_step_of_the_wall_clock_clears_the_table() -> None:
    table = Recording()
    clocks = {"wall": MINUTE, "mono": 100.0}
    fast = FastAnswers(table, Holder(), lambda: clocks["wall"], lambda: clocks["mono"])
    clocks["wall"] += 5.0
    clocks["mono"] += 5.0
    fast.watch_clock()
    assert table.cleared == 0
    clocks["wall"] += 120.0  # NTP stepped the clock forward two minutes
    fast.watch_clock()
    assert table.cleared == 1


def cache_entry(name: str, now: float, ttl: int = 300) -> Entry:
    q = dns.message.make_query(name, "A")
    reply = dns.message.make_response(q)
    reply.answer.append(dns.rrset.from_text(name + ".", ttl, "IN", "A", "192.0.2.7"))
    return AnswerCache(CacheConfig()).put((name, 1, 1, False), scan_reply(reply.to_wire()), now)


def test_a_cache_answer_stands_until_its_entry_expires() -> None:
    table = Recording()
    fast = FastAnswers(table, None, wall_clock=lambda: MINUTE)
    entry = cache_entry("c.example", 100.25, ttl=300)
    offer(fast, query("c.example"), until=FOREVER, started=100.25, wall=0.0, decision=None,
          entry=entry)  # fmt: skip
    assert table.puts[-1][0] == 1  # no policy: one class
    assert table.puts[-1][3] == entry[EXPIRES] == 400.25
    # an allowed decision of a scheduled profile and a cache answer: the earlier end
    holder = Holder(Memo({"127.0.0.1": Profile(4, (1,))}))
    fast = FastAnswers(table, holder, wall_clock=lambda: MINUTE + 59.5)
    offer(fast, query("e.example"), until=FOREVER, started=100.25, wall=MINUTE + 59,
          decision=KIDS, entry=entry)  # fmt: skip
    assert table.puts[-1][3] == pytest.approx(100.75)


@pytest.mark.parametrize("later", [0.0, 0.9, 1.0, 7.5, 299.0, 299.9])
def test_repeated_cache_answers_count_their_ttls_down(impl: Any, later: float) -> None:
    """The fast path's answer N seconds on is what the cache renders then."""
    table = impl(batch=8, answers=100, clients=100)
    fast = FastAnswers(table, None)
    started = 1000.5
    entry = cache_entry("ttl.example", started, ttl=300)
    packet = wire_query("ttl.example", 1, use_edns=0)
    q = read_query(packet)
    key = ("udp", "A", "cached", "", "")
    fast.offer(q, "127.0.0.1", render(entry, q, started), FOREVER, started, 0.0, key, None, entry)
    again = wire_query("TTL.example", 2, use_edns=0)
    with wire() as w:
        misses, answers = w.exchange(table, [again], started + later)
    assert misses == []
    assert answers == [render(entry, read_query(again), started + later)]


def test_ecs_truncated_and_servfail_answers_are_not_stored() -> None:
    table = Recording()
    fast = FastAnswers(table, None)
    ecs = wire_query("f.example", 1, use_edns=0, options=[dns.edns.ECSOption("10.1.0.0", 16)])
    offer(fast, ecs, until=FOREVER, started=1.0, wall=0.0, decision=None)
    packet = query("g.example")
    answer = answer_to(packet)
    truncated = answer[:2] + bytes([answer[2] | 0x02]) + answer[3:]
    servfail = answer[:3] + bytes([(answer[3] & 0xF0) | 2]) + answer[4:]
    for resp in (truncated, servfail):
        offer(fast, packet, until=FOREVER, started=1.0, wall=0.0, decision=None, resp=resp)
    assert table.puts == []
    offer(fast, packet, until=FOREVER, started=1.0, wall=0.0, decision=None)
    assert table.puts[-1][1:4] == (packet, answer, FOREVER)
    assert table.clients == 1 and table.answers == 1


def test_harvest_counts_like_the_handler(impl: Any) -> None:
    names = ["mandated.example", "cached.example", "blocked.example"]
    found: list[tuple[Handler, Stats]] = []

    def attempt() -> None:
        table = impl(batch=8, answers=100, clients=100)
        handler = make_handler(table)
        cache_upstream_answer(handler, "cached.example")
        for n, name in enumerate(names * 2):  # stored from the second sighting on
            handler.answer(wire_query(name, n), "127.0.0.1", "udp")
        by_python = Stats()
        by_python.add(handler.stats)
        with wire() as w:  # each asked three more times: answered by the fast path
            repeats = [wire_query(name, 100 + n) for n in range(3) for name in names]
            misses, answers = w.exchange(table, repeats, time.monotonic())
        assert (misses, len(answers)) == ([], 9)
        found.append((handler, by_python))

    within_one_second(attempt)
    handler, by_python = found[-1]
    stats = handler.stats
    handler.fast.harvest_into(stats)  # type: ignore[union-attr]
    assert stats.fast_answers == 9
    for key, count in by_python.queries.items():  # two each by Python, three repeats
        assert stats.queries[key] == count // 2 * 5
    assert stats.cache_hits == by_python.cache_hits + 3 == 5
    assert stats.mandated_hits == by_python.mandated_hits + 3 == 5
    assert stats.latency_count == by_python.latency_count + 9
    assert stats.latency_buckets[0] == by_python.latency_buckets[0] + 9
    assert stats.latency_sum >= by_python.latency_sum  # plus the batches' mean time
    handler.fast.harvest_into(stats)  # type: ignore[union-attr]
    assert stats.fast_answers == 9  # harvested once


def test_repeated_answers_reach_the_daily_rollups(impl: Any) -> None:
    """The reports count every answer: a repeat adds to the same roll-up key as the first
    (a blocked answer with its name), exactly as if the handler had answered it."""
    names = ["mandated.example", "cached.example", "blocked.example", "yandex.example"]
    found: list[tuple[Handler, dict[tuple[str, ...], int]]] = []

    def attempt() -> None:
        table = impl(batch=8, answers=100, clients=100)
        rollup = Rollup()
        handler = make_handler(table, rollup=rollup)
        cache_upstream_answer(handler, "cached.example")
        for n, name in enumerate(names * 2):  # stored from the second sighting on
            handler.answer(wire_query(name, n), "127.0.0.1", "udp")
        by_python = dict(rollup.take()[""])
        with wire() as w:
            repeats = [wire_query(name, 100 + n) for n in range(3) for name in names]
            misses, answers = w.exchange(table, repeats, time.monotonic())
        assert (misses, len(answers)) == ([], 12)
        found.append((handler, by_python))

    within_one_second(attempt)
    handler, by_python = found[-1]
    rollup = Rollup()
    handler.fast.harvest_into(handler.stats, rollup)  # type: ignore[union-attr]
    assert ("kids", "adult", "category", "blocked", "blocked.example") in by_python
    assert dict(rollup.take()[""]) == {key: count // 2 * 3 for key, count in by_python.items()}


@pytest.mark.parametrize("with_rollup", [False, True])
def test_blocked_names_share_a_counter_unless_a_rollup_counts_them(with_rollup: bool) -> None:
    """The name in a counter serves the roll-up's most-blocked table only: without a roll-up,
    two blocked names of one decision's kind are counted under one id (no counter, and no
    start-over of the table, per name)."""
    table = Recording()
    handler = make_handler(table, rollup=Rollup() if with_rollup else None)
    for n, name in enumerate(["blocked.example", "quiet.example"]):
        handler.answer(wire_query(name, n), "127.0.0.1", "udp")
    first, second = (put[4] for put in table.puts)
    assert (first == second) is not with_rollup


def test_a_rate_limit_holds_for_repeated_answers(impl: Any) -> None:
    """A client gets from the table only the credit the limiter leased it; its next query
    comes to Python, which tells it to retry over TCP once its bucket is empty."""
    limiter = RateLimiter(RateLimitConfig(client_qps=1, client_burst=5))
    table = impl(batch=16, answers=100, clients=100)
    handler = make_handler(table, limiter=limiter)
    started = time.monotonic()
    for qid in (1, 2):  # 2 of the burst of 5; the second sighting is stored
        first = handler.answer(wire_query("blocked.example", qid), "127.0.0.1", "udp")
        assert isinstance(first, bytes) and not first[2] & 0x02
    with wire() as w:
        repeats = [wire_query("blocked.example", 100 + n) for n in range(10)]
        misses, answers = w.exchange(table, repeats, time.monotonic())
    assert (len(answers), len(misses)) == (3, 7)  # the rest of the burst, leased at once
    refilled = int(time.monotonic() - started) + 1  # the bucket's refill meanwhile (1/s)
    truncated = 0
    for data, addr in misses:
        resp = handler.answer(data, addr[0], "udp")
        truncated += isinstance(resp, bytes) and bool(resp[2] & 0x02)
    assert truncated >= 7 - refilled


def test_a_load_balancer_is_never_a_client_of_the_table() -> None:
    """Behind dnsdist every datagram from the balancer carries a PROXY header: the gate must
    read each one, so the balancer's address never gets a class."""
    table = Recording()
    fast = FastAnswers(table, None, balancers=AccessList(["127.0.0.1/32"]))
    offer(fast, query("g.example"), until=FOREVER, started=1.0, wall=0.0, decision=None)
    assert (table.answers, table.clients) == (1, 0)


def test_clients_behind_a_balancer_get_repeats_through_it(impl: Any) -> None:
    """The gate hands the handler the client a PROXY header names: the answer is stored for that
    client's class, and the balancer's next datagram for it is answered from the table with
    what the handler would answer that client."""

    def attempt() -> None:
        table = impl(batch=8, answers=100, clients=100)
        handler = make_handler(table, balancers=AccessList(["127.0.0.1/32"]))
        # a subscriber (twice: stored from the second sighting on), the balancer's health check
        for client in ("127.0.0.2", "127.0.0.2", "127.0.0.1", "127.0.0.1"):
            assert isinstance(
                handler.answer(wire_query("blocked.example", 1), client, "udp"), bytes
            )
        assert table.clients == 1  # the subscriber, never the balancer
        again = wire_query("blocked.example", 2)
        with wire() as w:
            relayed = build("127.0.0.2", 40000, "127.0.0.1") + again
            misses, answers = w.exchange(table, [relayed], time.monotonic(), host="127.0.0.1")
        assert (misses, answers) == ([], [handler.answer(again, "127.0.0.2", "udp")])

    within_one_second(attempt)


def test_the_client_table_learns_allowed_clients_only(impl: Any) -> None:
    table = impl(batch=8, answers=100, clients=100)
    handler = make_handler(table)
    for _ in range(2):
        handler.answer(wire_query("blocked.example", 1), "192.0.2.1", "udp")  # refused
    assert table.clients == 0
    for _ in range(2):
        handler.answer(wire_query("blocked.example", 1), "127.0.0.1", "udp")
    assert table.clients == 1


def test_the_school_timetable_bounds_a_decision() -> None:
    """With the example school policy's real schedules: a decision stands until the lesson
    window opens or closes, for at most HORIZON_MINUTES; a profile without schedules for ever."""
    snapshot = compile_policy(REPO / "policy" / "school.yaml")
    fast = FastAnswers(Recording(), None)

    def at(local: str) -> float:
        return datetime.fromisoformat(f"2026-03-02T{local}:00+07:00").timestamp()  # a Monday

    lower = snapshot.profiles["lower-secondary"]  # lessons: mon-fri 07:00-11:30, 13:30-17:00
    assert fast.decision_stands_until(lower, at("06:30")) == at("07:00")
    assert fast.decision_stands_until(lower, at("06:59")) == at("07:00")
    assert fast.decision_stands_until(lower, at("07:00")) == at("08:00")  # the horizon
    assert fast.decision_stands_until(lower, at("11:10")) == at("11:30")
    assert fast.decision_stands_until(lower, at("12:45")) == at("13:30")
    assert fast.decision_stands_until(snapshot.profiles["teachers"], at("06:30")) == FOREVER


def test_a_parse_stays_memoized_only_while_the_fast_path_does_not_answer_its_repeats() -> None:
    """Repeats of a packet whose answer the table stored never come back to the handler: its
    parse would only take room in the memo (about 600 bytes each, per worker)."""
    handler = make_handler(Recording())
    udp, tcp = wire_query("blocked.example", 1), wire_query("mandated.example", 2)
    handler.answer(udp, "127.0.0.1", "udp")
    handler.answer(tcp, "127.0.0.1", "tcp")
    assert udp[2:] not in handler._parsed
    assert tcp[2:] in handler._parsed


def test_a_first_sighting_is_not_stored_and_leaves_the_memo(impl: Any) -> None:
    """Most names asked once are never asked again: the first answer takes no table slot nor a
    place in the parse memo; the second is stored, and the table answers the third."""

    def attempt() -> None:
        table = impl(batch=8, answers=100, clients=100)
        handler = make_handler(table)
        first = wire_query("blocked.example", 1)
        handler.answer(first, "127.0.0.1", "udp")
        assert (table.answers, table.clients) == (0, 0)
        assert first[2:] not in handler._parsed
        handler.answer(wire_query("BLOCKED.example", 2), "127.0.0.1", "udp")  # name case aside
        assert (table.answers, table.clients) == (1, 1)
        third = wire_query("blocked.example", 3)
        with wire() as w:
            misses, answers = w.exchange(table, [third], time.monotonic())
        assert (misses, answers) == ([], [handler.answer(third, "127.0.0.1", "udp")])

    within_one_second(attempt)


def test_the_doorkeeper_tells_classes_and_queries_apart(impl: Any) -> None:
    """A sighting counts for the same question, type, flags and EDNS from a client of the same
    class; the twin and the compiled table agree."""
    table = impl(batch=8, answers=100, clients=100)
    packet = query("a.example")
    assert table.admit(1, packet) is False
    assert table.admit(1, query("A.EXAMPLE", qid=9)) is True
    for other in (query("a.example", qtype=28), query("b.example"), query("a.example", flags=0)):
        assert table.admit(1, other) is False
    assert table.admit(2, packet) is False
    assert table.admit(0, packet) is table.admit(0, packet) is False  # no class: never stored
    assert table.admit(1, b"\x00" * 5) is table.admit(1, b"\x00" * 5) is False  # unreadable
    table.clear()  # a reload forgets answers, not sightings
    assert table.admit(1, packet) is True


def test_the_doorkeeper_remembers_a_bounded_number_of_queries() -> None:
    """Memory stays bounded whatever the traffic: past SEEN others, a query is forgotten."""
    table = PyFastPath(batch=8, answers=100, clients=100)
    packets = [query(f"n{i}.example") for i in range(SEEN + 1)]
    assert not any(table.admit(1, p) for p in packets)
    assert table.admit(1, packets[0]) is False  # forgotten, remembered again
    assert table.admit(1, packets[-1]) is True
