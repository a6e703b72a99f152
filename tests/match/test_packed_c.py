"""The compiled walk (resolver/match/_packed.c) against its reference, the closure
`PackedNames.python_lookup`: the same answer, or the same exception, for every input, and on a
well-formed table and name the C code answers itself (the closure, its fallback, is not called).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.lists.model import Entry, RuleAction, Scope
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex, free_in_pieces
from resolver.match.key import name_key
from resolver.match.packed import DEEP, HOT, SPILL_SHARDS, PackedNames, new_region, walk_compiled
from resolver.pure import PURE_ENV

Walk: Any  # the compiled type, or None where it is not built (its cases skip)
try:
    from resolver.match._packed import Walk
except ImportError:
    Walk = None
compiled = pytest.mark.skipif(Walk is None, reason="resolver.match._packed not built")

Lookup = Callable[[bytes, list[int]], int]
Lists = tuple[list[int], list[int], list[int]]


class Counted:
    """A fallback that counts the lookups the C walk handed to it."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        return self.lookup(*args, **kwargs)


def record_lists(index: CategoryIndex) -> Lists:
    records = index._records
    return [r.at for r in records], [r.below for r in records], [r.flags for r in records]


def both(names: PackedNames, lists: Lists, has_tld_rules: bool) -> tuple[Lookup, Any, Counted]:
    """(the closure, the C walk over the same table, the walk's counted fallback)."""
    python = names.python_lookup(*lists, has_tld_rules)
    fallback = Counted(names.python_lookup(*lists, has_tld_rules))
    walk = Walk(
        region=names.region,
        count=names.count,
        size=names.size,
        full=names.full,
        width=names.width,
        tld=names.tld,
        spill=names.spill,
        at=lists[0],
        below=lists[1],
        flags=lists[2],
        has_tld_rules=has_tld_rules,
        fallback=fallback,
    )
    return python, walk, fallback


def outcome(lookup: Callable[..., int], *args: Any) -> object:
    """The answer, or the type of the exception raised."""
    try:
        return lookup(*args)
    except Exception as exc:
        return type(exc)


def queries(keys: Iterable[str]) -> list[str]:
    """Each key name, names below and beside it, its suffixes, and names no list holds."""
    out = ["", "vn", "com", "zz", "nowhere", "a.b.c.d.e.f.g.h.example", "ví-dụ.vn", "x.ví-dụ.vn"]
    for name in keys:
        labels = name.split(".")
        out += [name, f"www.{name}", f"a.b.{name}", f"z{name}", name[1:], f"{name}.x"]
        out += [".".join(labels[i:]) for i in range(1, len(labels))]
    return out


def assert_agree(index: CategoryIndex, names: Iterable[str]) -> None:
    """Both walks answer alike, and the C walk answered every name itself."""
    assert isinstance(index.names, PackedNames)
    python, walk, fallback = both(index.names, record_lists(index), index.has_tld_rules)
    for name in names:
        key, dots = name_key(name)
        assert walk(key, dots) == python(key, dots) == index.lookup_name(name), name
    assert fallback.calls == 0


@cache
def shared_index() -> CategoryIndex:
    """One mixed index for the tests that only read it."""
    return mixed_index(64, 2)[0]


def mixed_index(window: int, hot_children: int) -> tuple[CategoryIndex, list[str]]:
    """Lists as a policy has them: hot parents (com.vn, blogspot.com), TLD rules, deep names,
    exceptions, exact and below-only scopes, a category bit past 64, and (in small windows)
    spills."""
    rng = random.Random(window * 31 + hot_children)
    shops = [f"shop{i}.com.vn" for i in range(60)]
    blogs = [f"b{i}.blogspot.com" for i in range(40)]
    deep = ["deep.a.b.c.d.net", "c.d.net", "x.y.z.deep.a.b.c.d.net", "ads.example.com"]
    plain = [
        f"{rng.choice('abcdefgh')}{i}.{rng.choice(['com', 'net', 'org', 'vn'])}" for i in range(300)
    ]
    builder = IndexBuilder(small=0, window=window, hot_children=hot_children)
    builder.add(0, [Entry(n) for n in [*shops, *deep, "com.vn", "example.com"]], "ads")
    builder.add(1, [Entry(n) for n in [*blogs, *plain[:200]]], "adult")
    builder.add(2, [Entry("zz"), Entry("vn", scope=Scope.EXACT)], "tlds")
    builder.add(3, [Entry(n, scope=Scope.EXACT) for n in plain[100:250]], "exact")
    builder.add(4, [Entry(n, scope=Scope.BELOW) for n in [*plain[200:], "blogspot.com"]], "below")
    allow = [
        Entry(n, action=RuleAction.ALLOW) for n in ["ok.example.com", "shop7.com.vn", *blogs[:5]]
    ]
    builder.add(0, allow, "allow")
    builder.add(70, [Entry(n) for n in rng.sample(plain, 50)], "big bit")
    keys = [*shops, *blogs, *deep, *plain, "com.vn", "example.com", "ok.example.com"]
    return builder.build(), keys


@compiled
@pytest.mark.parametrize("window", [32, 64, 256])
@pytest.mark.parametrize("hot_children", [2, 8])
def test_the_walks_agree_on_a_policy_of_many_lists(window: int, hot_children: int) -> None:
    index, keys = mixed_index(window, hot_children)
    table = index.names
    assert isinstance(table, PackedNames) and index.has_tld_rules
    assert (table.spilled() > 0) == (window < 256)
    flags = record_lists(index)[2]
    assert any(f & HOT for f in flags) and any(f & DEEP for f in flags)
    assert_agree(index, queries(keys))
    assert index.lookup_name("q.deep.a.b.c.d.net") == 1
    assert index.lookup_name("x.zz") == 1 << 2 and index.lookup_name("x.vn") == 0
    assert index.lookup_name("a.shop7.com.vn") == 0


@compiled
@pytest.mark.parametrize("lists, width", [(8, 2), (14, 3)])
def test_the_walks_agree_on_long_record_ids(lists: int, width: int) -> None:
    """A name in every subset of `lists` lists: 255 records (two digit bytes), 16,383 (three)."""
    builder = IndexBuilder(small=0, window=64)
    masks = range(1, 1 << lists)
    for bit in range(lists):
        builder.add(bit, [Entry(f"n{mask}.vn") for mask in masks if mask >> bit & 1], f"l{bit}")
    builder.add(0, [Entry(f"x.n{mask}.vn", action=RuleAction.ALLOW) for mask in masks[::7]], "x")
    index = builder.build()
    assert index.names.width == width and index.names.spilled()
    names = [f"n{mask}.vn" for mask in masks]
    assert_agree(index, queries(names[::3]))
    assert index.lookup_name(f"www.n{masks[-1]}.vn") == masks[-1]


@compiled
def test_the_walks_agree_past_three_digit_bytes() -> None:
    """Past 2**20 records an id takes four bytes: the closure's `_locate` path, inline in C."""
    base = 1 << 20
    ids = {"a.vn": base + 1, "b.a.vn": base + 200, "c.b.a.vn": 5, "c.vn": 70, "d.vn": base + 3}
    ids |= {f"n{i}.hot.vn": base + 10 + i % 4 for i in range(12)} | {"hot.vn": 7}
    table = PackedNames.build(ids, lambda rid: base + 300 + rid % 5, size=32, hot_children=4)
    assert table.width == 4
    top = base + 305
    at, below, flags = list(range(top)), [-r for r in range(top)], [0] * top
    for rid in (base + 1, base + 200, 7, base + 300, base + 301, base + 302, base + 303):
        flags[rid] = DEEP
    for rid in range(base + 300, base + 305):
        flags[rid] |= HOT
    python, walk, fallback = both(table, (at, below, flags), has_tld_rules=False)
    for name in queries(ids):
        key, dots = name_key(name)
        assert walk(key, dots) == python(key, dots), name
    assert fallback.calls == 0
    assert walk(*name_key("x.b.a.vn")) == -(base + 200)
    assert walk(*name_key("c.b.a.vn")) == 5


@compiled
def test_keys_below_a_spilled_name_are_searched_from_the_window_start() -> None:
    """A window whose parent key spilled while its child fitted (a child whose id takes
    fewer digit bytes than its parent's can): the walk takes the parent from the spill and
    finds the child in the window."""
    parent, child = 1, 2
    region = bytes([16, 0x80 | child, *b"c.p.vn\n"]).ljust(16, b"\0")
    spill: list[dict[bytes, int]] = [{} for _ in range(SPILL_SHARDS)]
    spill[0][b"p.vn\n"] = parent
    table = PackedNames(region_of(region), count=1, size=16, width=1, tld={}, spill=spill, keys=2)
    lists = ([0, 0b1, 0b10], [0, 0b100, 0b1000], [0, DEEP, 0])
    python, walk, fallback = both(table, lists, has_tld_rules=False)
    expected = {"p.vn": 0b1, "x.p.vn": 0b100, "c.p.vn": 0b10, "x.c.p.vn": 0b1000, "q.vn": 0}
    for name, bits in expected.items():
        assert walk(*name_key(name)) == python(*name_key(name)) == bits, name
    assert fallback.calls == 0


names_st = st.lists(
    st.lists(st.sampled_from(["a", "b", "ab", "ba", "com", "vn", "x-1"]), min_size=1, max_size=4),
    min_size=1,
    max_size=60,
).map(lambda names: list(dict.fromkeys(".".join(n[i:]) for n in names for i in range(len(n)))))


@compiled
@settings(max_examples=200, deadline=None)
@given(
    names=names_st,
    top=st.sampled_from([100, 300, 9000]),
    size=st.sampled_from([8, 16, 32, 256]),
    hot_children=st.integers(1, 4),
    has_tld_rules=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_the_walks_agree_on_generated_tables(
    names: list[str], top: int, size: int, hot_children: int, has_tld_rules: bool, seed: int
) -> None:
    """Any names with any record ids, flags and answers: most walks end in odd places (a HOT
    flag where the names do not anchor on themselves, DEEP where nothing is below), and both
    walks must still end in the same one."""
    rng = random.Random(seed)
    names.sort(key=lambda name: name.count("."))  # shallow first, as the builder orders them
    # (a name's suffixes are keys too, as the builder's markers make them)
    ids = {name: rng.randrange(top) for name in names}
    table = PackedNames.build(
        ids, lambda rid: (rid + 1) % top, size=size, hot_children=hot_children
    )
    lists = (
        [rng.randrange(1 << 70) for _ in range(top)],
        [rng.randrange(1 << 8) for _ in range(top)],
        [rng.choice([0, DEEP, HOT, DEEP | HOT]) for _ in range(top)],
    )
    python, walk, fallback = both(table, lists, has_tld_rules)
    for name in queries(names):
        key, dots = name_key(name)
        assert walk(key, dots) == python(key, dots), name
    assert fallback.calls == 0


def region_of(data: bytes) -> Any:
    region = new_region(len(data))
    region.write(data)
    return region


@compiled
@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=160).map(
        lambda raw: bytes(b"ab.\n\x80\x81\xbf\xc0\xff\x00\x05\x1f"[b % 12] for b in raw)
    ),
    count=st.integers(1, 6),
    size=st.integers(8, 24),
    width=st.integers(1, 12),
    values=st.lists(st.integers(-3, 40), max_size=8),
    lists=st.lists(st.integers(-(1 << 65), 1 << 65), max_size=30),
    keys=st.lists(st.text("ab.", max_size=8), max_size=8),
    has_tld_rules=st.booleans(),
)
def test_the_walks_agree_on_any_region(
    data: bytes,
    count: int,
    size: int,
    width: int,
    values: list[int],
    lists: list[int],
    keys: list[str],
    has_tld_rules: bool,
) -> None:
    """A region and dicts no build writes (headers past the region, digits where names
    should be, ids of any width or sign, lists too short): the same answer or the same
    exception, never a crash."""
    entries = {f"{key}\n".encode(): value for key, value in zip(keys, values, strict=False)}
    spill: list[dict[bytes, int]] = [dict(entries) for _ in range(SPILL_SHARDS)]
    table = PackedNames(
        region_of(data), count=count, size=size, width=width, tld=dict(entries), spill=spill, keys=0
    )
    python, walk, _ = both(table, (lists, lists[::-1], lists[1:]), has_tld_rules)
    for name in [*keys, *(f"{k}.{j}" for k in keys for j in keys), "a", "b.a", "a.b.a.b"]:
        key, dots = name_key(name)
        assert outcome(walk, key, dots) == outcome(python, key, dots), name


@compiled
@settings(max_examples=300, deadline=None)
@given(
    q=st.one_of(st.binary(max_size=12), st.text("ab.\n", max_size=6)),
    dots=st.one_of(st.lists(st.integers(-20, 20), max_size=6), st.none()),
)
def test_the_walks_agree_on_malformed_keys(q: Any, dots: Any) -> None:
    """Dots that do not start at -1, point past the key or at an empty suffix, keys of other
    types: whatever the closure answers or raises, the compiled walk does too."""
    index = shared_index()
    python, walk, _ = both(index.names, record_lists(index), True)
    assert outcome(walk, q, dots) == outcome(python, q, dots)


@compiled
def test_calls_other_than_key_and_dots_are_the_closures() -> None:
    index = shared_index()
    python, walk, fallback = both(index.names, record_lists(index), True)
    key, dots = name_key("www.shop3.com.vn")
    assert walk(q=key, dots=dots) == python(q=key, dots=dots) == 1
    assert outcome(walk, key) is outcome(python, key) is TypeError
    assert fallback.calls == 2


@compiled
def test_a_closed_region_raises_and_an_open_one_can_close() -> None:
    """The walk holds the region's buffer only during a call: the index's region still closes
    (`free_in_pieces`), after which a lookup that needs the region raises as the closure does."""
    index, keys = mixed_index(64, 2)
    walk = index.lookup
    assert isinstance(walk, Walk)
    python = index.names.python_lookup(*record_lists(index), index.has_tld_rules)
    for name in keys[:50]:
        assert walk(*name_key(name)) == python(*name_key(name))
    free_in_pieces(index.storage())  # mmap.close() raises BufferError while a buffer is held
    for name in ["www.shop3.com.vn", "example.com"]:
        for lookup in (walk, python):
            with pytest.raises(ValueError, match="closed"):
                lookup(*name_key(name))
    assert walk(*name_key("zz")) == python(*name_key("zz")) == 1 << 2  # no region needed


@compiled
def test_a_walk_is_initialized_once() -> None:
    index = shared_index()
    python, walk, _ = both(index.names, record_lists(index), True)
    with pytest.raises(RuntimeError, match="once"):
        walk.__init__(
            region=b"", count=1, size=8, full=8, width=1, tld={}, spill=[{}], at=[], below=[],
            flags=[], has_tld_rules=False, fallback=python,
        )  # fmt: skip
    assert walk(*name_key("www.shop3.com.vn")) == 1
    with pytest.raises(RuntimeError, match="before __init__"):
        Walk.__new__(Walk)(*name_key("www.shop3.com.vn"))


@compiled
def test_the_compiled_walk_serves_where_built() -> None:
    index, _ = mixed_index(256, 8)
    assert isinstance(index.lookup, Walk)


def test_safe_resolver_pure_selects_the_closure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PURE_ENV, "1")
    index, keys = mixed_index(256, 8)
    assert type(index.lookup).__name__ == "function"
    assert index.lookup_name(keys[0]) == 1 and index.lookup_name("x.zz") == 1 << 2


def test_the_datapath_line_says_which_walk_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """`safe-resolver version` and the status API's `datapath` (resolver.dns.fastpath.describe)."""
    from resolver.dns.fastpath import describe

    assert ("name walk: C" in describe(True, 64, 1000)) == (Walk is not None)
    monkeypatch.setenv(PURE_ENV, "1")
    assert not walk_compiled()
    assert "name walk" not in describe(False, 64, 1000)
