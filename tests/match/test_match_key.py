"""The `(key, dots)` form of a query name, and that every way of building it matches alike."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.dns.packet import read_query
from resolver.lists.model import Entry
from resolver.match.builder import IndexBuilder
from resolver.match.key import name_key
from resolver.match.packed import DIGIT, PackedNames


@pytest.mark.parametrize(
    ("name", "key", "dots"),
    [
        ("", b"\n", [-1]),
        ("vn", b"vn\n", [-1]),
        ("www.example.com.vn", b"www.example.com.vn\n", [-1, 3, 11, 15]),
        ("bücher.de", b"b\x01\x01cher.de\n", [-1, 7]),  # UTF-8 bytes >= 0x80 become 0x01
        ("\udcff.vn", b"?.vn\n", [-1, 1]),  # a lone surrogate cannot encode: "?"
    ],
)
def test_name_key_table(name: str, key: bytes, dots: list[int]) -> None:
    assert name_key(name) == (key, dots)


def query_packet(labels: list[bytes]) -> bytes:
    name = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    return struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


def index_with_wide_digits():
    """An index whose packed table spends two digit bytes per record (>= 128 records), so a
    raw byte >= 0x80 in a query label could pass for a record digit if it reached the region."""
    builder = IndexBuilder(small=0)
    for mask in range(1, 512):  # every subset of 9 bits on its own name: 511 records
        bits = [bit for bit in range(9) if mask >> bit & 1]
        for bit in bits:
            builder.add(bit, [Entry(f"a.n{mask}.vn")], f"l{bit}")
    return builder.build()


def test_a_high_byte_label_never_passes_for_a_record_digit() -> None:
    index = index_with_wide_digits()
    assert isinstance(index.names, PackedNames) and index.names.width == 2
    for mask in (1, 77, 300, 511):
        base = f"n{mask}.vn".encode()
        assert index.lookup_name(f"x.a.{base.decode()}") == mask
        # Every byte a digit can take, as the first byte of a label right above "a.": unmapped,
        # "<byte>a.nM.vn\n" would be found inside the entry "<digits>a.nM.vn\n".
        for byte in range(DIGIT, 256):
            query = read_query(query_packet([bytes((byte,)) + b"a", *base.split(b".")]))
            assert index.lookup(*query.key) == 0, (mask, byte)
            query = read_query(query_packet([b"x", bytes((byte,)) + b"a", *base.split(b".")]))
            assert index.lookup(*query.key) == 0, (mask, byte)
            query = read_query(query_packet([bytes((byte,)), b"a", *base.split(b".")]))
            assert index.lookup(*query.key) == mask, (mask, byte)  # below a.nM.vn: blocked


LABEL = st.binary(min_size=1, max_size=8).filter(lambda label: b"." not in label)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"B", b"n7", b"vn", b"\xe1", b"\n", b"x\x80"]) | LABEL,
                min_size=1, max_size=5))  # fmt: skip
def test_reader_key_and_name_key_look_up_alike(labels: list[bytes]) -> None:
    query = read_query(query_packet(labels))
    for index in INDEXES:
        assert index.lookup(*query.key) == index.lookup_name(query.qname), labels


def _small_index(small: int):
    builder = IndexBuilder(small=small)
    builder.add(0, [Entry("n7.vn"), Entry("b.a.vn"), Entry("vn")], "l0")
    builder.add(1, [Entry("a.n7.vn"), Entry("a.b.a.vn")], "l1")
    return builder.build()


INDEXES = [_small_index(0), _small_index(1000)]  # packed, dict
