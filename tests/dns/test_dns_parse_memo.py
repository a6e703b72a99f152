"""The handler's parse memo: full, it keeps what it holds, and starts over after as many misses."""

from __future__ import annotations

import dns.message
import pytest

from resolver.dns import handler as handler_module
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
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
