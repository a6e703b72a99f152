"""The fast path's table and batched I/O, for the compiled type and its pure-Python twin alike:
repeats with the query's ID and name case, misses for everything else, bounded tables,
validity, counters, and garbage that never crashes it."""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fastpath import (
    DEADLINE,
    IMPLEMENTATIONS,
    CFastPath,
    answer_to,
    drain,
    ipv6_loopback,
    key_of,
    opt,
    query,
    wire,
)

from resolver.dns.fastpath import SERVE_ROUNDS, FastPathLike, address_bytes, name_end

LOCAL = address_bytes("127.0.0.1")
NOW = 1000.0


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Any:
    return request.param


def stored(fast: FastPathLike, packet: bytes, klass: int = 1, until: float = NOW + 1) -> None:
    assert fast.put(klass, packet, answer_to(packet), until, 0)


def test_a_repeat_gets_its_own_id_and_name_case(impl: Any) -> None:
    fast = impl(batch=8, answers=16, clients=16)
    first = query("www.Example.org", qid=1)
    fast.set_client(LOCAL, 1)
    stored(fast, first)
    again = query("WWW.eXaMpLe.ORG", qid=0xBEEF)
    with wire() as w:
        misses, answers = w.exchange(fast, [again], NOW)
    assert misses == []
    assert answers == [answer_to(again)]  # ID 0xBEEF, the question as the client wrote it
    assert answers[0][:2] == b"\xbe\xef" and b"WWW\x07eXaMpLe\x03ORG" in answers[0]
    assert fast.harvest()[0] == [(0, 1)]


def test_everything_else_is_returned_to_python(impl: Any) -> None:
    fast = impl(batch=8, answers=16, clients=16)
    known = query("a.example", qid=7)
    fast.set_client(LOCAL, 1)
    stored(fast, known, klass=1)
    others = [
        query("b.example"),  # another name
        query("a.example", qtype=28),  # another type
        query("a.example", flags=0),  # RD clear: other flags
        query("a.example", edns=opt()),  # EDNS
        b"\x00\x01garbage",
    ]
    with wire() as w:
        misses, answers = w.exchange(fast, others, NOW)
        assert answers == []
        assert [data for data, _ in misses] == others
        assert all(addr[0] == "127.0.0.1" for _, addr in misses)
        # a client without a class, and one of another class, never get the stored answer
        misses, answers = w.exchange(fast, [known], NOW, host="127.0.0.2")
        assert (len(misses), answers) == (1, [])
        fast.set_client(address_bytes("127.0.0.2"), 2)
        misses, answers = w.exchange(fast, [known], NOW, host="127.0.0.2")
        assert (len(misses), answers) == (1, [])
        # and forgetting a client (class 0) sends its queries back to Python
        fast.set_client(LOCAL, 0)
        misses, answers = w.exchange(fast, [known], NOW)
        assert (len(misses), answers) == (1, [])
    assert fast.harvest()[0] == []


def test_an_answer_expires_at_valid_until(impl: Any) -> None:
    fast = impl(batch=8, answers=16, clients=16)
    packet = query("t.example")
    fast.set_client(LOCAL, 1)
    stored(fast, packet, until=NOW + 1)
    with wire() as w:
        assert w.exchange(fast, [packet], NOW + 0.999)[1] == [answer_to(packet)]
        misses, answers = w.exchange(fast, [packet], NOW + 1)  # not valid *at* valid_until
    assert (len(misses), answers) == (1, [])
    assert fast.answers == 0  # an expired answer found by a query is dropped


def test_put_stores_only_what_it_can_repeat(impl: Any) -> None:
    fast = impl(batch=8, answers=16, clients=16)
    packet = query("x.example")
    answer = answer_to(packet)
    assert not fast.put(1, packet, answer_to(query("y.example")), NOW, 0)  # another question
    assert not fast.put(1, packet, answer[:14], NOW, 0)  # shorter than its question
    assert not fast.put(1, b"\x01\x00" * 9, answer, NOW, 0)  # not a query
    assert not fast.put(1, packet + b"\0" * 512, answer, NOW, 0)  # longer than MAX_KEY
    assert not fast.put(1, packet, answer + b"\0" * 4096, NOW, 0)  # longer than MAX_ANSWER
    offsets = [len(answer) - 10]  # the record's TTL field
    assert not fast.put(1, packet, answer, NOW, 0, [len(answer) - 3])  # not a whole field
    assert not fast.put(1, packet, answer, NOW, 0, [5])  # in the header
    assert not fast.put(1, packet, answer, NOW, 0, offsets * 129)  # more than MAX_TTLS
    assert fast.answers == 0
    with pytest.raises(ValueError):
        fast.put(0, packet, answer, NOW, 0)  # class 0 means "not answered here"
    with pytest.raises(ValueError):
        fast.put(1, packet, answer, NOW, -1)
    with pytest.raises(ValueError):
        fast.set_client(b"\x7f\x00\x00", 1)
    assert impl(batch=8, answers=0, clients=16).put(1, packet, answer, NOW, 0) is False
    # stored from a 0x20 query, answered to any case
    assert fast.put(1, query("X.ExAmple"), answer_to(query("X.ExAmple")), NOW + 1, 0, offsets)


def test_a_flood_of_distinct_names_stays_within_the_tables(impl: Any) -> None:
    fast = impl(batch=8, answers=100, clients=50)
    for n in range(5000):
        packet = query(f"n{n}.flood.example")
        assert fast.put(1, packet, answer_to(packet), NOW + 1, n % 7)
        fast.set_client(n.to_bytes(4, "big"), 1 + n % 3)
        assert fast.answers <= 100 and fast.clients <= 50
    assert (fast.answers, fast.clients) == (100, 50)
    last = query("n4999.flood.example")
    fast.set_client(LOCAL, 1)
    with wire() as w:  # the newest answer is there and served
        assert w.exchange(fast, [last], NOW)[1] == [answer_to(last)]


def test_eviction_gives_an_answer_in_use_a_second_chance(impl: Any) -> None:
    fast = impl(batch=8, answers=4, clients=4)
    fast.set_client(LOCAL, 1)
    packets = [query(f"e{n}.example") for n in range(4)]
    for packet in packets:
        stored(fast, packet)
    with wire() as w:
        assert w.exchange(fast, [packets[2]], NOW)[1] == [answer_to(packets[2])]
        extra = query("e4.example")
        stored(fast, extra)  # full: one entry goes, not the one just used
        assert fast.answers == 4
        assert w.exchange(fast, [packets[2], extra], NOW)[1] == [
            answer_to(packets[2]),
            answer_to(extra),
        ]


def test_clear_forgets_answers_and_clients_but_not_counts(impl: Any) -> None:
    fast = impl(batch=8, answers=16, clients=16)
    packet = query("c.example")
    fast.set_client(LOCAL, 1)
    fast.put(1, packet, answer_to(packet), NOW + 1, 3)
    with wire() as w:
        w.exchange(fast, [packet, packet], NOW)
        fast.clear()
        assert (fast.answers, fast.clients) == (0, 0)
        misses, answers = w.exchange(fast, [packet], NOW)
    assert (len(misses), answers) == (1, [])
    hits, seconds, errors = fast.harvest()
    assert hits == [(3, 2)] and seconds >= 0.0 and errors == 0
    assert fast.harvest() == ([], 0.0, 0)  # reset


def test_a_batch_reads_at_most_batch_datagrams(impl: Any) -> None:
    fast = impl(batch=4, answers=16, clients=16)
    fast.set_client(LOCAL, 1)
    hit = query("h.example")
    stored(fast, hit)
    packets = [query(f"m{n}.example") if n % 2 else hit for n in range(10)]
    served: list[int] = []
    with wire() as w:
        sock = w.client()
        for packet in packets:
            sock.sendto(packet, w.address)
        deadline = time.monotonic() + DEADLINE
        while sum(served) < len(packets) and time.monotonic() < deadline:
            select.select([w.server], [], [], 0.05)
            misses = fast.serve(w.server, NOW)
            hits = sum(count for _, count in fast.harvest()[0])
            if misses or hits:
                served.append(len(misses) + hits)
    assert sum(served) == len(packets) and max(served) <= 4


@pytest.mark.skipif(CFastPath is None, reason="resolver.dns._fastpath not built")
def test_the_twin_reads_as_many_batches_per_call_as_the_compiled_type() -> None:
    from resolver.dns import _fastpath

    assert _fastpath.SERVE_ROUNDS == SERVE_ROUNDS


def test_a_call_reads_on_while_every_answer_is_stored(impl: Any) -> None:
    """A batch answered entirely here is followed by the next one in the same call, up to
    SERVE_ROUNDS batches; a batch with a query for Python ends the call, with its misses."""
    fast = impl(batch=2, answers=16, clients=16)
    fast.set_client(LOCAL, 1)
    hit = query("h.example")
    stored(fast, hit)
    total = 2 * SERVE_ROUNDS + 3
    with wire() as w:
        sock = w.client()
        for _ in range(total):
            sock.sendto(hit, w.address)
        sock.sendto(query("m.example"), w.address)
        answered: list[int] = []
        misses: list[Any] = []
        deadline = time.monotonic() + DEADLINE
        while (sum(answered) < total or not misses) and time.monotonic() < deadline:
            select.select([w.server], [], [], 0.05)
            misses += fast.serve(w.server, NOW)
            answered.append(sum(count for _, count in fast.harvest()[0]))
    assert sum(answered) == total and len(misses) == 1
    assert max(answered) <= 2 * SERVE_ROUNDS


def test_each_miss_names_its_own_sender(impl: Any) -> None:
    """More senders than the compiled table keeps address tuples for, each asking twice: every
    miss comes back with the address it came from, whichever tuples were reused or replaced."""
    fast = impl(batch=64, answers=16, clients=16)
    with wire() as w:
        senders = []
        for _ in range(300):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            senders.append(sock)
        expected = sorted([sock.getsockname() for sock in senders] * 2)
        misses: list[Any] = []
        try:
            rounds = senders * 2
            for start in range(0, len(rounds), 30):  # a few at a time: no receive buffer fills
                for sock in rounds[start : start + 30]:
                    sock.sendto(query("who.example"), w.address)
                deadline = time.monotonic() + DEADLINE
                while len(misses) < min(start + 30, len(rounds)) and time.monotonic() < deadline:
                    select.select([w.server], [], [], 0.05)
                    misses += fast.serve(w.server, NOW)
        finally:
            for sock in senders:
                sock.close()
    assert sorted(addr for _, addr in misses) == expected


def test_send_sends_each_reply_and_counts_the_bad_ones(impl: Any) -> None:
    fast = impl(batch=2, answers=16, clients=16)
    with wire() as w:
        sock = w.client()
        to = sock.getsockname()
        replies: list[Any] = [(b"one", to), (b"two", to), (b"three", to)]
        fast.send(w.server, [*replies, (b"bad", ("not an address", 1)), ("text", to)])
        got: list[bytes] = []
        deadline = time.monotonic() + DEADLINE
        while len(got) < 3 and time.monotonic() < deadline:
            select.select([sock], [], [], 0.05)
            got += drain(sock)
    assert sorted(got) == [b"one", b"three", b"two"]
    assert fast.harvest()[2] == 2


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_clients(impl: Any) -> None:
    fast = impl(batch=8, answers=16, clients=16)
    fast.set_client(address_bytes("::1"), 1)
    packet = query("six.example")
    stored(fast, packet)
    with wire(socket.AF_INET6) as w:
        assert w.exchange(fast, [packet], NOW, host="::1")[1] == [answer_to(packet)]
        other = query("other.example")
        misses, _ = w.exchange(fast, [other], NOW, host="::1")
    assert misses[0][0] == other and misses[0][1][0] == "::1" and len(misses[0][1]) == 4


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    garbage=st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.binary(min_size=12, max_size=600).map(lambda b: b[:2] + b"\x01\x00\x00\x01" + b[6:]),
            st.builds(lambda tail: query("g.example")[:-1] + tail, st.binary(max_size=40)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_garbage_comes_back_intact_and_never_crashes(garbage: list[bytes]) -> None:
    """Any datagram is either a repeat of the stored query (answered) or returned as it came."""
    hit = query("g.example")
    sent = [*garbage, hit]
    repeats = [g for g in sent if len(g) >= 17 and name_end(g) > 0 and key_of(g) == key_of(hit)]
    for impl in (p.values[0] for p in IMPLEMENTATIONS):
        if impl is None:
            continue
        fast = impl(batch=8, answers=16, clients=16)
        fast.set_client(LOCAL, 1)
        stored(fast, hit)
        with wire() as w:
            misses, answers = w.exchange(fast, sent, NOW)
        assert sorted(answers) == sorted(answer_to(g) for g in repeats)
        assert sorted(d for d, _ in misses) == sorted(g for g in sent if g not in repeats)
