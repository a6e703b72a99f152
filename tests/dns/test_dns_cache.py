"""Answer cache: TTL countdown in served bytes, clamps, negative caching, LRU, serve-stale."""

from __future__ import annotations

import gc
import pickle
import struct

import dns.message
import dns.rcode
import dns.rrset

from resolver.dns.cache import BODY, AnswerCache, render
from resolver.dns.message import scan_reply
from resolver.dns.packet import encode_name, read_query
from resolver.dns.settings import CacheConfig


def make_reply(name: str, rdtype: str = "A", answers=(), authority=(), rcode=0, aa=False) -> bytes:
    query = dns.message.make_query(name, rdtype, use_edns=0)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if aa:
        response.flags |= dns.flags.AA
    for section, texts in ((response.answer, answers), (response.authority, authority)):
        for text in texts:
            owner, ttl, rtype, rdata = text.split(" ", 3)
            section.append(dns.rrset.from_text(owner + ".", int(ttl), "IN", rtype, rdata))
    return response.to_wire()


def client_query(name: str, rdtype: str = "A", **kw):
    msg = dns.message.make_query(name, rdtype, **kw)
    return read_query(msg.to_wire()), msg


def served(entry, name: str, rdtype: str = "A", now: float = 1000.0, **kw) -> dns.message.Message:
    query, _ = client_query(name, rdtype, **kw)
    return dns.message.from_wire(render(entry, query, now))


def test_hit_counts_ttl_down_and_echoes_client_case_and_id() -> None:
    cache = AnswerCache(CacheConfig())
    reply = scan_reply(make_reply("example.org", answers=["example.org 300 A 192.0.2.1"], aa=True))
    cache.put(("example.org", 1, 1, False), reply, 1000.0)
    entry = cache.get(("example.org", 1, 1, False), 1010.4)
    assert entry is not None
    query, msg = client_query("ExAmPle.org", use_edns=0)
    out = dns.message.from_wire(render(entry, query, 1010.4))
    assert out.id == msg.id
    assert out.question[0].name.to_text() == "ExAmPle.org."
    assert out.answer[0].ttl == 290
    assert not out.flags & dns.flags.AA  # a forwarder never claims authority
    assert out.flags & dns.flags.RA and out.flags & dns.flags.RD
    assert out.edns == 0 and out.payload == 1232  # our OPT, not upstream's
    no_edns = served(entry, "example.org", now=1010.4, use_edns=False)
    assert no_edns.edns == -1


def test_entry_expires_and_clamps_apply() -> None:
    cache = AnswerCache(CacheConfig(min_ttl=60, max_ttl=120))
    low = scan_reply(make_reply("a.example", answers=["a.example 5 A 192.0.2.1"]))
    high = scan_reply(make_reply("b.example", answers=["b.example 9999 A 192.0.2.2"]))
    cache.put(("a.example", 1, 1, False), low, 0.0)
    cache.put(("b.example", 1, 1, False), high, 0.0)
    assert cache.get(("a.example", 1, 1, False), 59.0) is not None
    assert cache.get(("a.example", 1, 1, False), 60.5) is None
    entry = cache.get(("b.example", 1, 1, False), 0.0)
    assert served(entry, "b.example", now=0.0).answer[0].ttl == 120
    assert served(entry, "b.example", now=0.9).answer[0].ttl == 120  # the second it was stored
    assert served(entry, "b.example", now=1.0).answer[0].ttl == 119


def test_negative_caching_uses_soa_minimum_and_no_soa_means_no_cache() -> None:
    cache = AnswerCache(CacheConfig())
    soa = "example.org 3600 SOA ns.example.org. h.example.org. 1 7200 3600 1209600 30"
    nx = scan_reply(make_reply("nx.example.org", rcode=dns.rcode.NXDOMAIN, authority=[soa]))
    cache.put(("nx.example.org", 1, 1, False), nx, 0.0)
    assert cache.get(("nx.example.org", 1, 1, False), 29.0) is not None
    assert cache.get(("nx.example.org", 1, 1, False), 31.0) is None
    bare = scan_reply(make_reply("nx2.example.org", rcode=dns.rcode.NXDOMAIN))
    cache.put(("nx2.example.org", 1, 1, False), bare, 0.0)
    assert cache.get(("nx2.example.org", 1, 1, False), 0.0) is None
    # NODATA with SOA: cached; the SOA's TTL is served as min(TTL, MINIMUM) = 30, then aged.
    nodata = scan_reply(make_reply("www.example.org", "AAAA", authority=[soa]))
    cache.put(("www.example.org", 28, 1, False), nodata, 0.0)
    entry = cache.get(("www.example.org", 28, 1, False), 10.0)
    assert served(entry, "www.example.org", "AAAA", now=10.0).authority[0].ttl == 20


def test_lru_eviction_keeps_recently_used() -> None:
    cache = AnswerCache(CacheConfig(size=2))
    for name in ("a.example", "b.example"):
        cache.put(
            (name, 1, 1, False), scan_reply(make_reply(name, answers=[f"{name} 60 A 192.0.2.1"])), 0
        )
    cache.get(("a.example", 1, 1, False), 1.0)
    cache.put(
        ("c.example", 1, 1, False),
        scan_reply(make_reply("c.example", answers=["c.example 60 A 192.0.2.3"])),
        1,
    )
    assert len(cache) == 2
    assert cache.get(("b.example", 1, 1, False), 1.0) is None
    assert cache.get(("a.example", 1, 1, False), 1.0) is not None


def test_serve_stale_window_and_servfail_memory() -> None:
    cache = AnswerCache(CacheConfig(serve_stale=True, stale_ttl=100, servfail_ttl=5))
    key = ("s.example", 1, 1, False)
    cache.put(key, scan_reply(make_reply("s.example", answers=["s.example 10 A 192.0.2.9"])), 0.0)
    assert cache.get(key, 11.0) is None
    stale = cache.get_stale(key, 50.0)
    assert stale is not None
    query, _ = client_query("s.example")
    # RFC 8767 section 4: a stale answer's records carry 30 s, whatever their original TTL
    assert dns.message.from_wire(render(stale, query, 50.0, stale=True)).answer[0].ttl == 30
    assert cache.get_stale(key, 111.0) is None
    cache.put_servfail(key, 0.0)
    assert cache.servfail_cached(key, 4.0)
    assert not cache.servfail_cached(key, 6.0)


def test_truncated_and_refused_replies_are_not_cached() -> None:
    cache = AnswerCache(CacheConfig())
    refused = scan_reply(make_reply("r.example", rcode=dns.rcode.REFUSED))
    entry = cache.put(("r.example", 1, 1, False), refused, 0.0)
    assert len(cache) == 0
    assert served(entry, "r.example", now=0.0).rcode() == dns.rcode.REFUSED


def test_flush_one_name_or_everything() -> None:
    cache = AnswerCache(CacheConfig())
    for name in ("a.example", "b.example"):
        cache.put(
            (name, 1, 1, False), scan_reply(make_reply(name, answers=[f"{name} 60 A 192.0.2.1"])), 0
        )
    assert cache.flush("A.example.") == 1
    assert len(cache) == 1
    assert cache.flush() == 1 and len(cache) == 0


def test_records_after_the_opt_keep_their_names_when_it_is_cut_out() -> None:
    """OPT first in the additional section, then glue whose second owner points at the first:
    cutting the OPT's 11 bytes out must not leave that pointer aiming 11 bytes off."""
    head = struct.pack("!6H", 1, 0x8180, 1, 1, 0, 3) + encode_name("g.example") + b"\0\1\0\1"
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 1])
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    glue_at = len(head) + len(answer) + len(opt)
    glue = encode_name("ns1.g.example") + struct.pack("!HHIH", 1, 1, 300, 4) + bytes(4)
    again = struct.pack("!H", 0xC000 | glue_at) + struct.pack("!HHIH", 28, 1, 300, 16) + bytes(16)
    info = scan_reply(head + answer + opt + glue + again)
    entry = AnswerCache(CacheConfig()).put(("g.example", 1, 1, False), info, 0.0)
    for edns in (None, 0):
        msg = served(entry, "g.example", now=1.0, use_edns=edns)
        assert [r.name.to_text() for r in msg.additional] == ["ns1.g.example."] * 2
        assert [rd.to_text() for rd in msg.answer[0]] == ["192.0.2.1"]


def test_a_caches_hottest_entries_go_to_another_below_its_own() -> None:
    """What a replacement worker takes from a live sibling (supervisor.WorkerPool._spawn)."""
    old = AnswerCache(CacheConfig(serve_stale=False))
    for i, ttl in enumerate((300, 10, 300, 300)):
        name = f"n{i}.example"
        reply = scan_reply(make_reply(name, answers=[f"{name} {ttl} A 192.0.2.{i}"]))
        old.put((name, 1, 1, False), reply, 1000.0)
    old.get(("n0.example", 1, 1, False), 1005.0)  # now the most recently used
    plain = pickle.loads(pickle.dumps(old.hottest(10, 1 << 20, 1020.0)))
    # most recently used first; n1 expired at 1010 and is left out
    assert [key[0] for key, *_ in plain] == ["n0.example", "n3.example", "n2.example"]
    assert [key[0] for key, *_ in old.hottest(2, 1 << 20, 1020.0)] == ["n0.example", "n3.example"]
    body = len(plain[0][1][BODY])  # (key, entry)
    assert len(old.hottest(10, 2 * body, 1020.0)) == 2  # bounded by bytes too

    new = AnswerCache(CacheConfig(size=3))
    own = scan_reply(make_reply("own.example", answers=["own.example 300 A 192.0.2.9"]))
    new.put(("own.example", 1, 1, False), own, 1020.0)
    assert new.adopt(plain) == 2  # full at 3: the sibling's least recent one is not taken
    entry = new.get(("n0.example", 1, 1, False), 1030.0)
    assert entry is not None
    assert served(entry, "n0.example", now=1030.0).answer[0].ttl == 270  # aged as in the sibling
    assert new.get(("n2.example", 1, 1, False), 1030.0) is None
    # the adopted entries sit below the cache's own: they are evicted first
    new.put(("own2.example", 1, 1, False), own, 1030.0)
    assert new.get(("own.example", 1, 1, False), 1030.0) is not None
    assert new.get(("n3.example", 1, 1, False), 1030.0) is None


def test_the_collector_stops_tracking_a_stored_entry() -> None:
    """100k cached answers must not lengthen the cyclic collector's walks (the misses' p99)."""
    cache = AnswerCache(CacheConfig())
    key = ("g.example", 1, 1, False)
    reply = scan_reply(make_reply("g.example", answers=["g.example 300 A 192.0.2.1"]))
    entry = cache.put(key, reply, 1000.0)
    served(entry, "g.example", now=1001.0)  # the aged body kept for this second too
    gc.collect()
    assert not gc.is_tracked(entry)
    assert not any(gc.is_tracked(o) for o in gc.get_referrers(entry) if o is not cache._entries)
