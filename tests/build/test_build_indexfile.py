"""Index file round trip (golden explain output), corruption handling, the mapped region."""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import pytest

from resolver.build import indexfile
from resolver.build.indexfile import IndexFileError, load, save
from resolver.lists.model import Entry, Keyword, RuleAction, Scope
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex, free_in_pieces

GOLDEN = Path(__file__).parents[1] / "data" / "match" / "golden_explain.json"
QUERIES = [
    "example.com",
    "www.example.com",
    "ok.example.com",
    "a.blog.com",
    "x.y.blog.com",
    "nx.example",
    "www.safe.search",
    "casino.vn",
    "shop.com.vn",
    "nothing.org",
]


def small_index(**packing: int) -> CategoryIndex:
    builder = IndexBuilder(**packing)
    builder.add(
        0,
        [
            Entry("example.com", line=1),
            Entry("ok.example.com", action=RuleAction.ALLOW, line=2),
            Entry("x.y.blog.com", line=3),
            Entry("nx.example", action=RuleAction.NXDOMAIN, line=4),
        ],
        "adult.txt",
    )
    builder.add(
        1,
        [
            Entry("www.example.com", Scope.EXACT),
            Entry("blog.com", Scope.BELOW),
            Entry("safe.search", Scope.SUBTREE, RuleAction.REWRITE, "forcesafesearch.google.com"),
            Entry("shop.com.vn"),
        ],
        "social.rpz",
    )
    builder.add_keywords(2, [Keyword("casino")], "keywords.txt")
    return builder.build()


def render(index: CategoryIndex) -> dict:
    return {
        name: {
            "lookup": index.lookup_name(name),
            "keywords": index.keywords(name),
            "special": None if index.special(name) is None else list(index.special(name)),
            "explain": [
                [h.rule, h.scope and h.scope.value, h.action.value, h.bit, h.source, h.target]
                for h in index.explain(name)
            ],
        }
        for name in QUERIES
    } | {"len": len(index), "rule_counts": {str(k): v for k, v in index.rule_counts().items()}}


LAYOUTS = {"dict": {}, "packed": {"small": 0}}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_round_trip_matches_golden(tmp_path, layout):
    original = small_index(**LAYOUTS[layout])
    save(original, tmp_path / "i.idx")
    loaded = load(tmp_path / "i.idx")
    assert type(loaded.names) is type(original.names)
    got = render(loaded)
    assert got == render(original)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())


def test_large_round_trip_spans_frames(tmp_path):
    builder = IndexBuilder()
    names = [f"n{i}.example{i % 7}.vn" for i in range(indexfile.CHUNK * 2 + 5)]
    builder.add(3, [Entry(name) for name in names], "gen")
    save(builder.build(), tmp_path / "big.idx")
    loaded = load(tmp_path / "big.idx")
    assert len(loaded) == len(names)
    assert all(loaded.lookup_name("www." + name) == 0b1000 for name in names[::997])
    assert loaded.lookup_name("n0.example1.vn") == 0
    free_in_pieces(loaded.storage())


def corrupt_variants(data: bytes):
    header = indexfile._HEADER.size
    yield "empty", b""
    yield "truncated header", data[:10]
    yield "truncated region", data[:-7]
    yield "bad magic", b"X" + data[1:]
    yield "other version", data[:8] + (99).to_bytes(4, "little") + data[12:]
    flipped = bytearray(data)
    flipped[header + 20] ^= 0xFF
    yield "flipped frame byte", bytes(flipped)
    in_region = bytearray(data)
    in_region[-3] ^= 0x01  # the packed region is mapped raw, after the frames
    yield "flipped region byte", bytes(in_region)
    yield "trailing junk", data + b"junk"
    yield "binary garbage", os.urandom(len(data))


@pytest.mark.parametrize("variant", range(9))
def test_corrupt_index_file_raises(tmp_path, variant):
    save(small_index(small=0), tmp_path / "good.idx")  # packed: frames, then region
    _label, bad = list(corrupt_variants((tmp_path / "good.idx").read_bytes()))[variant]
    (tmp_path / "bad.idx").write_bytes(bad)
    with pytest.raises(IndexFileError):
        load(tmp_path / "bad.idx")


def test_missing_file_raises(tmp_path):
    with pytest.raises(IndexFileError, match="cannot read"):
        load(tmp_path / "absent.idx")


def test_the_region_is_a_read_only_page_aligned_mapping_of_the_file(tmp_path):
    """Serving processes share the file's pages: the region is mapped, not copied."""
    path = tmp_path / "packed.idx"
    save(small_index(small=0), path)
    loaded = load(path)
    region = loaded.names.region
    assert isinstance(region, mmap.mmap)
    with pytest.raises(TypeError):
        region[0] = 1  # read-only
    data = path.read_bytes()
    assert data[-len(region) :] == region[:]
    assert (len(data) - len(region)) % mmap.ALLOCATIONGRANULARITY == 0
    assert render(loaded) == render(small_index(small=0))
    free_in_pieces(loaded.storage())
    assert region.closed
