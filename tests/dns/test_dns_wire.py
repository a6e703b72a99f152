"""Safe-search answers composed at byte level from the target's validated upstream reply."""

from __future__ import annotations

import struct

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from resolver.dns.cache import AnswerCache
from resolver.dns.message import BadReply, scan_reply
from resolver.dns.packet import encode_name, read_query
from resolver.dns.settings import CacheConfig
from resolver.dns.wire import compose_rewrite

TARGET = "forcesafesearch.google.com"


def client_query(name: str = "WwW.GooGle.com", rdtype: str = "A"):
    return read_query(dns.message.make_query(name, rdtype, id=0x1234).to_wire())


def target_reply(rdtype: str, *answers: str, rcode: int = 0) -> bytes:
    """The upstream's reply for the target, built (and name-compressed) by dnspython."""
    response = dns.message.make_response(dns.message.make_query(TARGET, rdtype))
    response.set_rcode(rcode)
    for text in answers:
        owner, ttl, rtype, rdata = text.split(" ", 3)
        response.answer.append(dns.rrset.from_text(owner + ".", int(ttl), "IN", rtype, rdata))
    return response.to_wire()


def compose(reply: bytes, query=None) -> dns.message.Message:
    query = query or client_query()
    info = compose_rewrite(query, TARGET, scan_reply(reply), 60)
    return dns.message.from_wire(info.data)


def test_cname_then_the_targets_records_with_the_clients_question() -> None:
    msg = compose(target_reply("A", f"{TARGET} 300 A 198.51.100.1", f"{TARGET} 300 A 198.51.100.9"))
    assert msg.id == 0x1234 and msg.rcode() == 0
    assert msg.question[0].name.to_text() == "WwW.GooGle.com."  # 0x20 case kept
    cname, addresses = msg.answer
    assert cname.name.to_text() == "WwW.GooGle.com." and cname.ttl == 60
    assert [rd.target.to_text() for rd in cname] == [TARGET + "."]
    assert addresses.name.to_text() == TARGET + "."
    assert sorted(rd.to_text() for rd in addresses) == ["198.51.100.1", "198.51.100.9"]


def test_compressed_names_in_rdata_are_written_out() -> None:
    """A chain whose CNAME targets and MX/SRV/SOA names point into the upstream's message."""
    reply = target_reply(
        "A",
        f"{TARGET} 300 CNAME edge.{TARGET}.",
        f"edge.{TARGET} 300 A 198.51.100.1",
        f"edge.{TARGET} 300 MX 10 mail.edge.{TARGET}.",
        f"edge.{TARGET} 300 SRV 1 2 443 srv.edge.{TARGET}.",
        f"edge.{TARGET} 300 SOA ns.{TARGET}. host.{TARGET}. 1 2 3 4 5",
    )
    assert reply.count(b"\xc0") > 4  # dnspython compressed them
    got = {r.rdtype: r for r in compose(reply).answer[1:]}
    assert [rd.target.to_text() for rd in got[dns.rdatatype.CNAME]] == [f"edge.{TARGET}."]
    assert [rd.exchange.to_text() for rd in got[dns.rdatatype.MX]] == [f"mail.edge.{TARGET}."]
    assert [rd.target.to_text() for rd in got[dns.rdatatype.SRV]] == [f"srv.edge.{TARGET}."]
    soa = got[dns.rdatatype.SOA][0]
    assert (soa.mname.to_text(), soa.rname.to_text(), soa.minimum) == (
        f"ns.{TARGET}.",
        f"host.{TARGET}.",
        5,
    )


def _raw_reply(*records: bytes, rcode: int = 0) -> bytes:
    """The target's reply from raw record bytes (owner 0xC00C: the question name)."""
    head = struct.pack("!6H", 7, 0x8180 | rcode, 1, len(records), 0, 0)
    return head + encode_name(TARGET) + b"\x00\x01\x00\x01" + b"".join(records)


def _rr(rtype: int, rdata: bytes, owner: bytes = b"\xc0\x0c") -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata


def test_nsec_with_an_empty_type_bitmap_is_copied_as_it_is() -> None:
    """The record that raised IndexError out of dnslib: opaque RDATA, so copied byte for byte."""
    nsec = _rr(47, encode_name("z." + TARGET))  # next name, then no bitmap at all
    reply = _raw_reply(_rr(1, bytes([198, 51, 100, 1])), nsec)
    info = compose_rewrite(client_query(), TARGET, scan_reply(reply), 60)
    assert info.ancount == 3
    assert info.data.endswith(encode_name("z." + TARGET))


@pytest.mark.parametrize(
    "record",
    [
        _rr(1, b""),  # A with RDLENGTH 0
        _rr(28, bytes(4)),  # AAAA of 4 bytes
        _rr(5, b""),  # CNAME with no name
        _rr(5, encode_name("a.example") + b"xx"),  # bytes after the name
        _rr(15, b"\x00"),  # MX shorter than its preference
        _rr(6, encode_name("ns.example") + encode_name("h.example") + bytes(19)),  # SOA short
    ],
    ids=["A-rdlen-0", "AAAA-4", "CNAME-empty", "CNAME-trailing", "MX-short", "SOA-short"],
)
def test_rdata_without_its_types_shape_is_refused_before_composing(record: bytes) -> None:
    with pytest.raises(BadReply) as caught:
        scan_reply(_raw_reply(record))
    assert caught.value.reason == "bad-rdata"


def test_an_answer_that_cannot_fit_a_message_is_refused_before_the_cache() -> None:
    """Each owner points at a 200-byte name: copied out, 330 of them outgrow 64 KiB."""
    long_name = b"".join(bytes([49]) + b"a" * 49 for _ in range(4)) + b"\x00"  # 201 bytes
    first = _rr(16, b"\x01x", owner=long_name)
    pointer = struct.pack("!H", 0xC000 | (12 + len(encode_name(TARGET)) + 4))
    reply = _raw_reply(first, *[_rr(16, b"\x01x", owner=pointer)] * 329)
    assert len(reply) < 6000
    composed = compose_rewrite(client_query(), TARGET, scan_reply(reply), 60)
    with pytest.raises(BadReply) as caught:
        AnswerCache(CacheConfig()).put(("www.google.com", 1, 1, False), composed, 0.0)
    assert caught.value.reason == "too-big"


def test_target_rcode_is_kept() -> None:
    msg = compose(target_reply("A", rcode=3))
    assert msg.rcode() == 3 and len(msg.answer) == 1
