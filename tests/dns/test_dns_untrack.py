"""resolver/dns/_untrack.c: the answer cache out of the cyclic collector's sight from birth, and
the pure-Python fallback that leaves it to the collector."""

from __future__ import annotations

import gc
from collections import OrderedDict

import pytest

from resolver.dns import cache as cache_module
from resolver.dns.cache import AnswerCache
from resolver.dns.message import scan_reply
from resolver.dns.settings import CacheConfig
from resolver.pure import PURE_ENV
from tests.dns.test_dns_cache import make_reply

untrack = pytest.importorskip("resolver.dns._untrack", reason="the C part is not built here")


class Thing:
    """An instance of a class: tracked by the collector."""


def fresh(*items: object) -> tuple[object, ...]:
    """A tuple made at run time: the collector tracks it until it looks at it."""
    return tuple(list(items))


def test_a_tuple_of_plain_values_is_untracked_at_once() -> None:
    t = fresh(1, b"body", 2.5, "name", True, None)
    assert gc.is_tracked(t)
    assert untrack.untracked(t) is t
    assert not gc.is_tracked(t)


@pytest.mark.parametrize("item", [[], {"k": []}, Thing()])
def test_a_tuple_holding_a_tracked_object_stays_tracked(item: object) -> None:
    t = fresh(1, item)
    assert untrack.untracked(t) is t
    assert gc.is_tracked(t)


def test_a_tuple_holding_a_tracked_tuple_stays_tracked_until_that_one_is_not() -> None:
    inner = fresh(1, 2)
    outer = fresh(inner, b"x")
    assert gc.is_tracked(untrack.untracked(outer))
    untrack.untracked(inner)
    assert not gc.is_tracked(untrack.untracked(outer))


@pytest.mark.parametrize("kind", [dict, OrderedDict])
def test_a_mapping_of_plain_values_is_untracked_and_stays_so_while_they_are_plain(kind) -> None:
    mapping = kind()
    mapping[untrack.untracked(fresh("a", 1))] = untrack.untracked(fresh(b"x", 1.0))
    if kind is dict:
        mapping["list"] = []  # a dict with a tracked value is tracked, whatever came before
        assert gc.is_tracked(untrack.untracked(mapping))
        del mapping["list"]
    assert gc.is_tracked(mapping)
    assert not gc.is_tracked(untrack.untracked(mapping))
    mapping[untrack.untracked(fresh("b", 2))] = untrack.untracked(fresh(b"y", 2.0))
    assert not gc.is_tracked(mapping)
    mapping[fresh("c", 3)] = b"z"  # a tracked key: the interpreter tracks the mapping again
    assert gc.is_tracked(mapping)


def test_other_containers_are_returned_as_they_are() -> None:
    class Sub(OrderedDict):
        pass

    for obj in ([1, 2], {1, 2}, Sub(), Thing()):
        assert untrack.untracked(obj) is obj
        assert gc.is_tracked(obj)


def test_a_stored_entry_its_key_and_the_cache_index_are_untracked_when_made() -> None:
    if cache_module._untracked is cache_module._as_is:
        pytest.skip(f"{PURE_ENV}=1: the pure-Python fallback serves")
    cache = AnswerCache(CacheConfig())
    key = ("u.example", 1, 1, False)
    key = fresh(*key)  # as the handler makes it: a new tuple per query
    reply = scan_reply(make_reply("u.example", answers=["u.example 300 A 192.0.2.1"]))
    entry = cache.put(key, reply, 1000.0)  # type: ignore[arg-type]
    assert not gc.is_tracked(entry)
    assert not gc.is_tracked(key)
    assert not gc.is_tracked(cache._entries)
    assert cache.get(("u.example", 1, 1, False), 1001.0) is entry


def test_pure_asks_for_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PURE_ENV, "1")
    assert cache_module._untracker() is cache_module._as_is
    monkeypatch.delenv(PURE_ENV)
    assert cache_module._untracker() is untrack.untracked
