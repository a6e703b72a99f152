"""The hand-written query reader: table of well-formed and hostile packets, plus hypothesis."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.dns.packet import REASONS, Malformed, Query, encode_name, read_query
from resolver.match.key import NON_ASCII, name_key


def wire(name: str, rdtype: str = "A", **kwargs) -> bytes:
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()


def test_reads_name_type_class_and_keeps_case_in_question() -> None:
    data = wire("WwW.ExAmPle.ORG", "AAAA")
    q = read_query(data)
    assert q.qname == "www.example.org"
    assert q.qtype == 28 and q.qclass == 1
    assert q.question == data[12 : q.qend]
    assert b"WwW" in q.question and b"ExAmPle" in q.question


def test_root_name() -> None:
    q = read_query(wire(".", "NS"))
    assert q.qname == "" and q.qtype == 2
    assert q.key == name_key("") == (b"\n", [-1])


def test_edns_size_do_version_and_ecs() -> None:
    ecs = dns.edns.ECSOption("10.2.3.0", 24)
    q = read_query(wire("a.example", use_edns=0, payload=4096, want_dnssec=True, options=[ecs]))
    assert q.edns and q.udp_size == 4096 and q.do and q.edns_version == 0
    assert q.ecs == "10.2.3.0/24"
    q1 = read_query(wire("a.example", use_edns=1))
    assert q1.edns_version == 1
    plain = read_query(wire("a.example", use_edns=False))
    assert not plain.edns and plain.udp_size == 512 and plain.ecs is None


def test_tiny_edns_size_is_raised_to_512() -> None:
    assert read_query(wire("a.example", use_edns=0, payload=100)).udp_size == 512


def header(qid: int = 7, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0):
    return struct.pack("!6H", qid, flags, qd, an, ns, ar)


QUESTION = encode_name("example.org") + b"\x00\x01\x00\x01"


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"\x00\x01\x02", "short-header"),
        (header(flags=0x8180) + QUESTION, "response"),
        (header(qd=0), "qdcount"),
        (header(qd=2) + QUESTION + QUESTION, "qdcount"),
        (header() + b"\x07example", "truncated-question"),
        (header() + encode_name("example.org") + b"\x00", "truncated-question"),
        (header() + b"\xc0\x0c\x00\x01\x00\x01", "compressed-question"),  # pointer loop to itself
        (header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", "compressed-question"),
        (header() + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", "name-too-long"),
        (header() + b"\x03a.b\x03com\x00\x00\x01\x00\x01", "dot-in-label"),
        (header(ar=1) + QUESTION + b"\x00\x00\x29", "truncated-rr"),
        (header(ar=70) + QUESTION, "too-many-rrs"),
        (
            header(ar=2) + QUESTION + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00") * 2,
            "bad-opt",
        ),
        (
            header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x03\x00\x08\x00",
            "bad-opt",
        ),
    ],
)
def test_malformed_table(packet: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        read_query(packet)
    assert caught.value.reason == reason
    assert caught.value.formerr == REASONS[reason]
    if len(packet) >= 12:
        assert caught.value.qid == 7


def test_name_of_exactly_255_octets_is_read() -> None:
    labels = ["a" * 63, "b" * 63, "c" * 63, "d" * 61]  # 64*3 + 62 + 1 = 255 octets
    name = ".".join(labels)
    q = read_query(header() + encode_name(name) + b"\x00\x01\x00\x01")
    assert q.qname == name


@pytest.mark.parametrize("length", [44, 45, 46, 47, 63])
def test_a_label_of_any_length_after_the_first_is_read(length: int) -> None:
    """A label's length byte is not a label byte: 46 is the code of '.', and a name whose
    second label has 46 octets is as good as any."""
    name = f"www.{'a' * length}.example"
    q = read_query(wire(name))
    assert q.qname == name
    assert q.key == name_key(name)


def test_encode_name_refuses_bad_labels() -> None:
    with pytest.raises(ValueError):
        encode_name("a..b")
    with pytest.raises(ValueError):
        encode_name("x" * 64 + ".com")


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_query_or_a_counted_rejection(data: bytes) -> None:
    try:
        q = read_query(data)
    except Malformed as exc:
        assert exc.reason in REASONS
        return
    assert 12 < q.qend <= len(data)
    assert "." not in q.qname or all(q.qname.split("."))
    key, dots = q.key  # what the matching core walks: see resolver/match/key.py
    assert key == f"{q.qname}\n".encode("latin-1").translate(NON_ASCII)
    assert dots == [-1, *(i for i, byte in enumerate(key) if byte == 0x2E)]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_any_bytes_after_a_good_header_and_question(tail: bytes) -> None:
    data = header(ar=1) + QUESTION + tail
    try:
        q = read_query(data)
    except Malformed as exc:
        assert exc.formerr
        return
    assert q.qname == "example.org"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["A", "AAAA", "MX", "TXT", "HTTPS", "CAA"]),
)
def test_reader_agrees_with_dnspython(labels: list[str], rdtype: str) -> None:
    name = ".".join(labels)
    q = read_query(wire(name, rdtype))
    assert q.qname == name
    assert q.key == name_key(name)
    assert q.qtype == dns.rdatatype.from_text(rdtype)


@pytest.mark.parametrize("ecs", [False, True])
def test_own_copy_is_what_reading_the_packet_with_its_id_gives(ecs: bool) -> None:
    """A query that awaits takes a copy of the shared parse (Handler._detach): every
    field must be what reading its own packet gives, and the bytes carry its own ID."""
    options = [dns.edns.ECSOption("192.0.2.0", 24)] if ecs else []
    msg = dns.message.make_query("WwW.Example.COM", "AAAA", use_edns=0, want_dnssec=True,
                                 payload=1232, options=options)  # fmt: skip
    shared = read_query(msg.to_wire())
    shared.qid = 0x1234  # the next packet with the same bytes but for the ID
    copy = shared.own_copy()
    fresh = read_query(b"\x12\x34" + msg.to_wire()[2:])
    assert copy is not shared and copy.data == fresh.data
    # A mypyc-compiled class names its fields in __mypyc_attrs__, not __slots__.
    fields = getattr(Query, "__slots__", None) or Query.__mypyc_attrs__  # type: ignore[attr-defined]
    for field in fields:
        assert getattr(copy, field) == getattr(fresh, field), field
