"""The packed name table behind the "suffix" backend: the cases its layout makes special."""

from __future__ import annotations

import zlib

import pytest

from resolver.build import indexfile
from resolver.lists.model import Entry, RuleAction
from resolver.match.builder import IndexBuilder
from resolver.match.index import free_in_pieces
from resolver.match.key import name_key
from resolver.match.packed import (
    DEEP,
    DIGIT,
    FILL,
    HOT,
    LONG,
    SHORT,
    WINDOW,
    PackedNames,
    _digits,
    _rid,
    _width,
)


def test_a_name_inside_a_longer_entry_is_not_mistaken_for_it():
    builder = IndexBuilder(small=0)
    builder.add(0, [Entry("zfoo.com")], "a")  # same window, laid out first
    builder.add(1, [Entry("foo.com")], "b")
    index = builder.build()
    region = bytes(index.names.region)
    assert region.count(b"foo.com\n") == 2  # the first hit is the tail of zfoo.com:
    assert region.index(b"foo.com\n") == region.index(b"zfoo.com\n") + 1
    assert index.lookup_name("www.foo.com") == 0b10
    assert index.lookup_name("www.zfoo.com") == 0b01
    assert index.lookup_name("oo.com") == 0


def test_more_than_128_records_take_two_digit_bytes():
    builder = IndexBuilder(small=0)
    for bit in range(100):  # one name per list and one shared by pairs of lists: 150 records
        builder.add(bit, [Entry(f"only{bit}.vn"), Entry(f"pair{bit // 2}.vn")], f"l{bit}")
    index = builder.build()
    assert index.names.width == 2
    for bit in range(100):
        assert index.lookup_name(f"www.only{bit}.vn") == 1 << bit
        pair = bit // 2
        assert index.lookup_name(f"pair{pair}.vn") == (1 << 2 * pair) | (1 << 2 * pair + 1)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_record_digits_read_back_from_the_name(width: int) -> None:
    top = {1: 1 << 7, 2: 1 << 13, 3: 1 << 20, 4: 1 << 27}[width]
    for rid in {0, 1, SHORT - 1, SHORT, SHORT + 1, 127, top // 3, top - 1} - {top}:
        if rid >= top:
            continue
        digits = _digits(rid, width)
        assert len(digits) == (1 if width == 1 or rid < SHORT else width)
        assert all(byte >= DIGIT for byte in digits)
        assert _rid(b"\n" + digits + b"a.vn\n", 1 + len(digits), width) == rid
    assert _width(top) == width and _width(top + 1) == width + 1


def many_records_one_dominant(window: int = WINDOW):
    """150 records, with the 300 "bulk" names sharing one (bits 0 and 1)."""
    builder = IndexBuilder(small=0, window=window)
    for bit in range(100):
        builder.add(bit, [Entry(f"only{bit}.vn"), Entry(f"pair{bit // 2}.vn")], f"l{bit}")
    builder.add(0, [Entry(f"bulk{n}.vn") for n in range(300)], "l0")
    builder.add(1, [Entry(f"bulk{n}.vn") for n in range(300)], "l1")
    return builder.build()


def test_the_most_used_records_take_one_digit_byte():
    index = many_records_one_dominant()
    table = index.names
    assert table.width == 2 and table.get("bulk7.vn") == 0  # the most used record is id 0
    region = bytes(table.region)
    assert all(region[region.index(b"bulk%d.vn\n" % n) - 1] < LONG for n in range(300))
    long_form = [
        name for name in (f"only{bit}.vn" for bit in range(100))
        if region[region.index(f"{name}\n".encode()) - 1] >= LONG
    ]  # fmt: skip
    assert long_form  # ids of 64 and more take two bytes, and still answer
    assert all(index.lookup_name(f"www.{name}") == 1 << int(name[4:-3]) for name in long_form)
    assert index.lookup_name("x.bulk7.vn") == 0b11


def test_spilled_names_keep_their_long_record_ids():
    index = many_records_one_dominant(window=32)
    assert any(rid >= SHORT for shard in index.names.spill for rid in shard.values())
    assert all(index.lookup_name(f"www.only{bit}.vn") == 1 << bit for bit in range(100))
    assert all(index.lookup_name(f"bulk{n}.vn") == 0b11 for n in range(300))
    assert all(index.names.get(f"only{bit}.vn") is not None for bit in range(100))


def test_more_than_8192_records_take_three_digit_bytes():
    builder = IndexBuilder(small=0)
    masks = range(1, 1 << 15)  # a name in every subset of 15 lists: 32,767 records
    for bit in range(15):
        builder.add(bit, [Entry(f"n{mask}.vn") for mask in masks if mask >> bit & 1], f"l{bit}")
    index = builder.build()
    assert index.names.width == 3
    assert all(index.lookup_name(f"www.n{mask}.vn") == mask for mask in masks)
    assert index.lookup_name("n0.vn") == 0


def test_four_digit_bytes_decode_off_the_inline_path():
    """Past 2**20 records the walk hands the digits to `_locate`."""
    a, b, c, hot = (1 << 21) + 1, (1 << 21) + 2, (1 << 21) + 3, (1 << 21) + 4
    table = PackedNames.build({"a.vn": a, "b.a.vn": b, "c.vn": c}, lambda rid: hot)
    assert table.width == 4
    at, below, flags = [0] * (hot + 1), [0] * (hot + 1), [0] * (hot + 1)
    at[a], below[a], flags[a] = 0b1, 0b11, DEEP
    at[b], below[b] = 0b100, 0b1000
    at[c], below[c] = 0b10000, 0b100000
    lookup = table.make_lookup(at, below, flags, has_tld_rules=False)
    names = ("a.vn", "x.a.vn", "b.a.vn", "y.b.a.vn", "c.vn", "d.vn")
    assert [lookup(*name_key(name)) for name in names] == [0b1, 0b11, 0b100, 0b1000, 0b10000, 0]
    assert table.get("b.a.vn") == b and table.get("x.a.vn") is None


def test_hot_names_and_the_spill_answer_like_the_rest(tmp_path):
    names = [f"shop{i}.com.vn" for i in range(40)] + [f"a{i}.blog.vn" for i in range(6)]
    names += ["com.vn", "x.y.shop3.com.vn", "nx.shop7.com.vn"]
    builder = IndexBuilder(small=0, window=64, hot_children=3)
    builder.add(2, [Entry(name) for name in names if not name.startswith("nx.")], "list")
    builder.add(2, [Entry("nx.shop7.com.vn", action=RuleAction.ALLOW)], "allow")
    index = builder.build()
    table = index.names
    flags = [record.flags for record in index._records]
    assert flags[table.get("com.vn")] & HOT and flags[table.get("blog.vn")] & HOT  # > 3 children
    assert not flags[table.get("shop3.com.vn")] & HOT  # its family shares its window
    assert table.spilled()  # 64-byte windows cannot hold ~50 names
    saved = tmp_path / "packed.idx"
    indexfile.save(index, saved)
    loaded = indexfile.load(saved)
    for each in (index, loaded):
        assert each.lookup_name("com.vn") == 1 << 2
        assert all(each.lookup_name(f"m.{name}") == 1 << 2 for name in names if "nx." not in name)
        assert each.lookup_name("nx.shop7.com.vn") == each.lookup_name("m.nx.shop7.com.vn") == 0
        assert each.lookup_name("www.vn") == each.lookup_name("blog.vn") == 0
        assert each.lookup_name("q.a1.blog.vn") == 1 << 2
        assert [hit.rule for hit in each.explain("deep.x.y.shop3.com.vn")] == [
            "x.y.shop3.com.vn",
            "shop3.com.vn",
            "com.vn",
        ]
    free_in_pieces(loaded.storage())


def test_keys_below_that_answer_alike_end_the_walk_early():
    """A name is DEEP only when a key below it answers differently (a name listed under a
    parent blocked for the same category costs no second search), and a hot name the walk
    never goes below needs no HOT record."""
    builder = IndexBuilder(small=0, hot_children=3)
    same = ["ads.vn", "x.ads.vn", "y.x.ads.vn", "hot.vn", *(f"s{i}.hot.vn" for i in range(5))]
    builder.add(0, [Entry(name) for name in same], "a")
    builder.add(1, [Entry("z.ads.vn")], "b")
    index = builder.build()
    flags = {name: index._records[index.names.get(name)].flags for name in [*same, "z.ads.vn"]}
    assert flags["ads.vn"] == DEEP  # z.ads.vn adds category 1
    assert flags["x.ads.vn"] == flags["y.x.ads.vn"] == flags["hot.vn"] == 0
    assert index.lookup_name("q.y.x.ads.vn") == index.lookup_name("s1.hot.vn") == 0b1
    assert index.lookup_name("z.ads.vn") == index.lookup_name("q.z.ads.vn") == 0b11
    assert [hit.rule for hit in index.explain("q.y.x.ads.vn")] == [
        "y.x.ads.vn",
        "x.ads.vn",
        "ads.vn",
    ]


def test_names_crafted_to_share_a_window_only_fill_the_spill():
    """A hostile list whose names all hash to one window: the window keeps its size, the rest
    goes to the (siphash) spill dicts and every name still matches."""
    count = int(300 * (len("n0000000.vn") + 2) / (WINDOW * FILL)) | 1  # as PackedNames.build
    crafted: list[str] = []
    i = 0
    while len(crafted) < 300:
        name = f"n{i:07d}.vn"
        i += 1
        if zlib.crc32(name.encode() + b"\n") % count == 0:
            crafted.append(name)
    builder = IndexBuilder(small=0)
    builder.add(0, [Entry(name) for name in crafted], "hostile")
    index = builder.build()
    assert index.names.count == count
    assert index.names.spilled() > 250
    assert all(index.lookup_name(f"www.{name}") == 1 for name in crafted)
    assert index.lookup_name("n0000000.vn") == (1 if "n0000000.vn" in crafted else 0)


def test_a_name_that_escaped_normalization_is_a_clear_error():
    builder = IndexBuilder(small=0)
    builder.add(0, [Entry("ví-dụ.vn")], "raw")
    with pytest.raises(ValueError, match="not a normalized name"):
        builder.build()
