"""Matching semantics, table-driven, and both name tables against a naive reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.lists.model import Entry, Keyword, RuleAction, Scope
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex, Hit, Special

E, S, B = Scope.EXACT, Scope.SUBTREE, Scope.BELOW
BLOCK, ALLOW, NX, NODATA, REWRITE = (
    RuleAction.BLOCK,
    RuleAction.ALLOW,
    RuleAction.NXDOMAIN,
    RuleAction.NODATA,
    RuleAction.REWRITE,
)

# (bit, name, scope, action, target)
RULES = [
    (0, "example.com", S, BLOCK, None),
    (0, "ok.example.com", S, ALLOW, None),
    (1, "www.example.com", E, BLOCK, None),
    (2, "blog.com", B, BLOCK, None),
    (0, "x.y.blog.com", S, BLOCK, None),
    (3, "deep.a.b.c.d.net", S, BLOCK, None),
    (4, "exact.only.org", E, BLOCK, None),
    (5, "zz", S, BLOCK, None),  # a whole TLD
    (1, "vn", E, BLOCK, None),  # the TLD name itself only
    (6, "shop.com.vn", S, BLOCK, None),
    (6, "a.shop.com.vn", S, ALLOW, None),
    (0, "a.shop.com.vn", S, BLOCK, None),
]

LOOKUPS = [
    # name, expected bits, why
    ("example.com", 0b1, "subtree rule on the name itself"),
    ("www.example.com", 0b11, "subtree parent + exact on the name"),
    ("a.www.example.com", 0b1, "exact rule does not cover children"),
    ("ok.example.com", 0, "exception clears bit 0"),
    ("x.ok.example.com", 0, "exception covers its subtree"),
    ("other.com", 0, "no rule"),
    ("com", 0, "TLD without rules"),
    ("blog.com", 0, "BELOW does not cover the name itself"),
    ("a.blog.com", 0b100, "BELOW covers strict children"),
    ("x.y.blog.com", 0b101, "deeper subtree + BELOW ancestor"),
    ("q.x.y.blog.com", 0b101, "below both"),
    ("y.blog.com", 0b100, "between the rules"),
    ("deep.a.b.c.d.net", 0b1000, "deep rule"),
    ("c.d.net", 0, "parent of a deep rule is not blocked"),
    ("e.deep.a.b.c.d.net", 0b1000, "below a deep rule"),
    ("exact.only.org", 0b10000, "exact"),
    ("sub.exact.only.org", 0, "exact does not cover children"),
    ("zz", 0b100000, "single-label name, TLD rule"),
    ("foo.zz", 0b100000, "TLD subtree rule"),
    ("a.b.c.zz", 0b100000, "TLD subtree rule, deep name"),
    ("vn", 0b10, "exact TLD"),
    ("foo.vn", 0, "exact TLD rule does not cover children"),
    ("shop.com.vn", 0b1000000, ".com.vn"),
    ("www.shop.com.vn", 0b1000000, ".com.vn subdomain"),
    ("a.shop.com.vn", 0b1, "exception for bit 6 only; bit 0 still blocked"),
    ("b.a.shop.com.vn", 0b1, "same below"),
    ("localhost", 0, "single label, no rule"),
]


# The two name tables behind one interface: a plain dict (small indexes) and the packed table.
LAYOUTS = {"dict": {}, "packed": {"small": 0}}


def build(layout: str, rules=RULES, keywords=()) -> CategoryIndex:
    builder = IndexBuilder(**LAYOUTS[layout])
    for bit, name, scope, action, target in rules:
        builder.add(bit, [Entry(name, scope, action, target, 1)], f"list{bit}.txt")
    for bit, text in keywords:
        builder.add_keywords(bit, [Keyword(text, 1)], f"kw{bit}.txt")
    return builder.build()


@pytest.fixture(params=list(LAYOUTS))
def layout(request) -> str:
    return request.param


@pytest.mark.parametrize(("name", "bits", "why"), LOOKUPS, ids=[row[0] for row in LOOKUPS])
def test_lookup_table(layout, name, bits, why):
    assert build(layout).lookup_name(name) == bits, why


def test_empty_index(layout):
    index = IndexBuilder(**LAYOUTS[layout]).build()
    assert len(index) == 0
    assert index.rule_counts() == {}
    for name in ("a", "example.com", "a.b.c.d"):
        assert index.lookup_name(name) == 0
        assert index.keywords(name) == 0
        assert index.special(name) is None
        assert index.explain(name) == []


def test_several_bits_on_one_name(layout):
    rules = [(bit, "multi.com", S, BLOCK, None) for bit in (0, 3, 40, 70)]
    index = build(layout, rules)
    assert index.lookup_name("multi.com") == (1 << 0) | (1 << 3) | (1 << 40) | (1 << 70)
    assert index.lookup_name("a.multi.com") == index.lookup_name("multi.com")
    assert index.rule_counts() == {0: 1, 3: 1, 40: 1, 70: 1}


def test_duplicates_are_one_rule(layout):
    builder = IndexBuilder(**LAYOUTS[layout])
    builder.add(0, [Entry("a.com"), Entry("a.com"), Entry("b.com")], "l")
    assert len(builder.build()) == 2


def test_exception_in_another_list_same_bit(layout):
    builder = IndexBuilder(**LAYOUTS[layout])
    builder.add(2, [Entry("ads.com")], "block.txt")
    builder.add(2, [Entry("cdn.ads.com", action=ALLOW)], "allow.txt")
    builder.add(3, [Entry("cdn.ads.com", E)], "other.txt")
    index = builder.build()
    assert index.lookup_name("ads.com") == 0b100
    assert index.lookup_name("cdn.ads.com") == 0b1000
    assert index.lookup_name("x.cdn.ads.com") == 0


def test_deep_and_long_names(layout):
    deep = ".".join(["a"] * 126 + ["z"])  # 127 labels, 253 characters
    assert len(deep) == 253
    long_name = "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 61
    assert len(long_name) == 253
    rules = [
        (0, ".".join(["a"] * 60 + ["z"]), S, BLOCK, None),
        (1, long_name, E, BLOCK, None),
        (2, "e" * 61, S, BLOCK, None),
    ]
    index = build(layout, rules)
    assert index.lookup_name(deep) == 0b1
    assert index.lookup_name(".".join(["a"] * 59 + ["z"])) == 0
    assert index.lookup_name(long_name) == 0b110
    assert [hit.rule for hit in index.explain(long_name)] == [long_name, "e" * 61]


SPECIALS = [
    (0, "nx.example", S, NX, None),
    (0, "nodata.nx.example", S, NODATA, None),
    (1, "safe.search", E, REWRITE, "forcesafesearch.google.com"),
    (1, "safe.search", S, REWRITE, "other.target"),
    (2, "wild.test", B, REWRITE, "1.2.3.4"),
    (0, "pass.nx.example", S, ALLOW, None),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nx.example", (NX, None, 0, "nx.example", "list0.txt")),
        ("a.nx.example", (NX, None, 0, "nx.example", "list0.txt")),
        ("nodata.nx.example", (NODATA, None, 0, "nodata.nx.example", "list0.txt")),
        ("b.nodata.nx.example", (NODATA, None, 0, "nodata.nx.example", "list0.txt")),
        ("pass.nx.example", None),  # passthru exception for bit 0 wins
        ("safe.search", (REWRITE, "forcesafesearch.google.com", 1, "safe.search", "list1.txt")),
        ("www.safe.search", (REWRITE, "other.target", 1, "safe.search", "list1.txt")),
        ("wild.test", None),
        ("x.wild.test", (REWRITE, "1.2.3.4", 2, "wild.test", "list2.txt")),
        ("unrelated.com", None),
    ],
)
def test_special_most_specific_wins(layout, name, expected):
    index = build(layout, SPECIALS)
    assert index.special(name) == (None if expected is None else Special(*expected))


def test_specials_set_bits_except_rewrite(layout):
    index = build(layout, SPECIALS)
    assert index.lookup_name("a.nx.example") == 0b1
    assert index.lookup_name("pass.nx.example") == 0
    assert index.lookup_name("safe.search") == 0  # a rewrite is not a category block
    assert len(index) == 6
    assert index.rule_counts() == {0: 3, 1: 2, 2: 1}


def test_keywords(layout):
    index = build(layout, RULES, keywords=[(7, "casino"), (8, "sex"), (7, "bet"), (9, "casino")])
    assert index.keywords("casino-online.vn") == (1 << 7) | (1 << 9)
    assert index.keywords("sexbet.com") == (1 << 7) | (1 << 8)
    assert index.keywords("example.com") == 0
    assert index.lookup_name("casino.com") == 0  # keywords are a separate query
    hits = index.explain("www.casino.example.com")
    assert Hit("casino", None, BLOCK, 7, "kw7.txt", None) in hits
    assert Hit("casino", None, BLOCK, 9, "kw9.txt", None) in hits
    assert Hit("example.com", S, BLOCK, 0, "list0.txt", None) in hits


def test_explain_lists_every_rule_most_specific_first(layout):
    index = build(layout, RULES + SPECIALS)
    assert index.explain("b.a.shop.com.vn") == [
        Hit("a.shop.com.vn", S, BLOCK, 0, "list0.txt", None),
        Hit("a.shop.com.vn", S, ALLOW, 6, "list6.txt", None),
        Hit("shop.com.vn", S, BLOCK, 6, "list6.txt", None),
    ]
    assert index.explain("www.safe.search") == [
        Hit("safe.search", S, REWRITE, 1, "list1.txt", "other.target"),
    ]


# --- property test: every layout agrees with a naive reference over random rule sets ---

LABELS = st.sampled_from(["a", "b", "com", "vn", "x", "www", "ww"])
NAMES = st.lists(LABELS, min_size=1, max_size=5).map(".".join)
RULE = st.tuples(
    st.integers(0, 5), NAMES, st.sampled_from([E, S, B]), st.sampled_from([BLOCK, ALLOW, NX])
)


def naive_lookup(rules, name: str) -> int:
    block = allow = 0
    for bit, rule, scope, action in rules:
        if scope is E:
            covers = name == rule
        elif scope is S:
            covers = name == rule or name.endswith("." + rule)
        else:
            covers = name.endswith("." + rule)
        if covers:
            if action is ALLOW:
                allow |= 1 << bit
            else:
                block |= 1 << bit
    return block & ~allow


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(RULE, max_size=25), names=st.lists(NAMES, min_size=1, max_size=20))
def test_layouts_equal_naive_reference(rules, names):
    """The label "ww" makes names that end in another name without a label boundary ("www.com" and
    "ww.com"). "dict" is the small-index dict; "packed" the packed table; "tight" packs two
    entries at most in a window and makes every name with a child key hot, so the spill and the
    hot walk are exercised on every example; "families" never makes a name hot, so walks go
    down inside a window, into and out of its spill."""
    builders = dict(LAYOUTS)
    builders["tight"] = {"small": 0, "window": 24, "hot_children": 0}
    builders["families"] = {"small": 0, "window": 40, "hot_children": 99}
    indexes = {}
    for label, packing in builders.items():
        builder = IndexBuilder(**packing)
        for bit, name, scope, action in rules:
            builder.add(bit, [Entry(name, scope, action)], f"l{bit}")
        indexes[label] = builder.build()
    for name in names + [rule[1] for rule in rules]:
        expected = naive_lookup(rules, name)
        for label, index in indexes.items():
            assert index.lookup_name(name) == expected, (label, name)
        hits = indexes["dict"].explain(name)
        for label in ("packed", "tight", "families"):
            assert indexes[label].explain(name) == hits, label
        assert {(h.bit, h.action) for h in hits} <= {(r[0], r[3]) for r in rules}
