"""The bounded reply scanner: TTL offsets, negative TTLs, and refusal of hostile replies."""

from __future__ import annotations

import struct

import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.dns.message import BadReply, question_matches, scan_reply
from resolver.dns.packet import encode_name


def reply_for(name: str, rdtype: str, answers=(), authority=(), **kw) -> bytes:
    """A real reply built by dnspython; records are "owner ttl TYPE rdata" strings."""
    query = dns.message.make_query(name, rdtype, **kw)
    response = dns.message.make_response(query)
    for section, texts in ((response.answer, answers), (response.authority, authority)):
        for text in texts:
            owner, ttl, rtype, rdata = text.split(" ", 3)
            section.append(dns.rrset.from_text(owner + ".", int(ttl), "IN", rtype, rdata))
    return response.to_wire()


def test_ttl_offsets_point_at_each_ttl() -> None:
    data = reply_for(
        "example.org", "A", ["example.org 300 A 192.0.2.1", "example.org 300 A 192.0.2.2"]
    )
    info = scan_reply(data)
    assert len(info.ttl_offsets) == 2
    assert all(struct.unpack_from("!I", data, off)[0] == 300 for off in info.ttl_offsets)
    assert info.min_ttl == 300 and info.neg_ttl is None


def test_negative_ttl_is_min_of_soa_ttl_and_minimum() -> None:
    soa = "example.org 900 SOA ns.example.org. host.example.org. 1 7200 3600 1209600 60"
    info = scan_reply(reply_for("nx.example.org", "A", [], [soa]))
    assert info.neg_ttl == 60
    soa2 = "example.org 30 SOA ns.example.org. host.example.org. 1 7200 3600 1209600 600"
    assert scan_reply(reply_for("nx.example.org", "A", [], [soa2])).neg_ttl == 30


def test_opt_span_is_found() -> None:
    data = reply_for("example.org", "A", ["example.org 5 A 192.0.2.1"], use_edns=0)
    info = scan_reply(data)
    assert info.opt is not None and info.opt[1] == len(data)


def test_question_match_is_case_insensitive_for_the_name_only() -> None:
    data = reply_for("ExAmple.ORG", "HTTPS", [])
    info = scan_reply(data)
    name = encode_name("example.org")
    assert question_matches(data, info.qend, name, b"\x00\x41\x00\x01")
    assert not question_matches(data, info.qend, name, b"\x00\x61\x00\x01")  # 'A' folded != 'a'
    assert not question_matches(data, info.qend, encode_name("example.com"), b"\x00\x41\x00\x01")


HEAD = struct.pack("!6H", 1, 0x8180, 1, 1, 0, 0) + encode_name("a.example") + b"\x00\x01\x00\x01"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 5, "short"),
        (
            HEAD + b"\xc0\x1e" + b"\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x01\x02\x03\x04",
            "forward-pointer",
        ),
        (HEAD + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x08\x01\x02", "truncated"),
        (
            HEAD + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x01\x02\x03\x04junk",
            "trailing-bytes",
        ),
        (HEAD + b"\x80\x0c", "bad-label"),
        (
            HEAD + b"\xc0\x02" + b"\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x01\x02\x03\x04",
            "pointer-into-header",  # the ID and flags change when the answer is rendered
        ),
    ],
)
def test_hostile_replies(data: bytes, reason: str) -> None:
    with pytest.raises(BadReply) as caught:
        scan_reply(data)
    assert caught.value.reason == reason


def test_pointer_chain_is_bounded() -> None:
    """40 pointers, each to the one before: all backwards, but more hops than we follow."""
    prefix = struct.pack("!6H", 1, 0x8180, 1, 2, 0, 0) + encode_name("a.example") + b"\0\1\0\1"
    rdata_at = len(prefix) + 12  # first record: pointer(2) type class ttl rdlength (10)
    chain = bytearray(b"\x01a\x00")
    prev = rdata_at
    for _ in range(40):
        here = rdata_at + len(chain)
        chain += struct.pack("!H", 0xC000 | prev)
        prev = here
    first = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x05" + struct.pack("!H", len(chain))
    second = struct.pack("!H", 0xC000 | prev) + b"\0\1\0\1\0\0\0\5\0\4\1\2\3\4"
    with pytest.raises(BadReply) as caught:
        scan_reply(prefix + first + bytes(chain) + second)
    assert caught.value.reason == "pointer-hops"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=700))
def test_any_bytes_are_a_reply_or_bad_reply(data: bytes) -> None:
    try:
        info = scan_reply(data)
    except BadReply:
        return
    assert all(0 < off < len(data) for off in info.ttl_offsets)
