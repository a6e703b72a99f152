"""The handler's parse memo: full, it keeps what it holds, and starts over after as many misses."""

from __future__ import annotations

import asyncio
import time

import dns.message
import dns.rrset
import pytest

from resolver.dns import handler as handler_module
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
from resolver.dns.message import scan_reply
from resolver.dns.settings import CacheConfig, UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.stats import Stats


def any_query(name: str, qid: int) -> bytes:
    """An ANY query: answered synchronously (RFC 8482), so no upstream is involved."""
    message = dns.message.make_query(name, "ANY")
    message.id = qid
    return message.to_wire()


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Handler:
    monkeypatch.setattr(handler_module, "PARSE_MEMO_SIZE", 3)
    stats = Stats()
    return Handler(
        acl=AccessList(),
        cache=AnswerCache(CacheConfig()),
        forwarder=Forwarder([("127.0.0.1", 9)], UpstreamConfig(), stats),
        stats=stats,
    )


def ask(handler: Handler, name: str, qid: int) -> dns.message.Message:
    answer = handler.answer(any_query(name, qid), "127.0.0.1", "udp")
    assert isinstance(answer, bytes)
    return dns.message.from_wire(answer)


def test_a_full_memo_keeps_its_entries_then_starts_over(handler: Handler) -> None:
    for n in range(5):  # three fill the memo, two more miss it
        ask(handler, f"n{n}.example", 100 + n)
    memo = handler._parsed
    assert [q.qname for q in memo.values()] == ["n0.example", "n1.example", "n2.example"]
    kept = memo[any_query("n1.example", 0)[2:]]
    reply = ask(handler, "n1.example", 7)  # a hit: the kept parse answers with this packet's ID
    assert reply.id == 7 and str(reply.question[0].name) == "n1.example."
    assert memo[any_query("n1.example", 0)[2:]] is kept
    ask(handler, "n5.example", 105)  # the third miss since it filled: start over
    assert memo == {}
    ask(handler, "n6.example", 106)
    assert [q.qname for q in memo.values()] == ["n6.example"]


def a_query(name: str, qid: int) -> bytes:
    message = dns.message.make_query(name, "A")
    message.id = qid
    return message.to_wire()


async def test_a_query_that_goes_upstream_takes_its_parse_out_of_the_memo(handler: Handler) -> None:
    """A forwarded name is answered from the cache next time: its parse kept in the memo would
    only be one more long-lived object per name for the cyclic collector to walk."""
    ask(handler, "kept.example", 1)
    pending = handler.answer(a_query("up.example", 2), "127.0.0.1", "udp")  # a miss: upstream
    assert isinstance(pending, asyncio.Future)
    await pending  # SERVFAIL: nothing listens on the upstream's port
    assert [q.qname for q in handler._parsed.values()] == ["kept.example"]
    # A memoized parse whose repeat goes upstream (the cache flushed meanwhile) leaves too.
    reply = dns.message.make_response(dns.message.make_query("c.example", "A"))
    reply.answer.append(dns.rrset.from_text("c.example.", 300, "IN", "A", "192.0.2.1"))
    handler.cache.put(("c.example", 1, 1, False), scan_reply(reply.to_wire()), time.monotonic())
    assert isinstance(handler.answer(a_query("c.example", 3), "127.0.0.1", "udp"), bytes)
    assert a_query("c.example", 0)[2:] in handler._parsed
    handler.cache.flush()
    pending = handler.answer(a_query("c.example", 4), "127.0.0.1", "udp")
    assert isinstance(pending, asyncio.Future)
    await pending  # SERVFAIL: nothing listens on the upstream's port
    assert [q.qname for q in handler._parsed.values()] == ["kept.example"]
