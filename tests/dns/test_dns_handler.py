"""The query path as bytes in, bytes out: `Handler` built in this process, stage by stage.

Each test hands the handler the packet a client sent and reads the packet it would send back,
in the order of the stages in resolver/dns/handler.py's docstring: read (malformed), access,
guards, policy, cache, forward, and the fit to the client's UDP size. The policy is a real
compiled snapshot (a profile blocking with the block page, one answering NXDOMAIN, a mandated
RPZ list, safe search) served the way a worker serves it; the upstream, where one is needed, is
the local test authority, or a socket that never answers under a short query budget.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from support.answering import answer_on
from support.authority import Authority

from resolver.build.compile import compile_policy
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
from resolver.dns.message import scan_reply
from resolver.dns.settings import CacheConfig, UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.policy.decide import decide
from resolver.policy.memo import DecisionMemo
from resolver.stats import Stats

PUPIL = "127.0.0.1"  # profile pupils: block page, safe search
GUEST = "127.0.0.2"  # profile guests: NXDOMAIN
OUTSIDER = "192.0.2.9"  # not in the access list
BLOCKPAGE_V4 = bytes([10, 0, 0, 1])
BLOCKPAGE_V6 = bytes.fromhex("fd00" + "00" * 13 + "01")
BUDGET_MS = 300  # the query budget when the upstream never answers
WAIT = 10.0  # seconds an awaited answer may take on a busy machine (never reached when correct)
POLICY = """\
version: 1
clients:
  default: open
  networks:
    127.0.0.1/32: pupils
    127.0.0.2/32: guests
profiles:
  open: {age: unrestricted}
  pupils:
    age: unrestricted
    safe_search: strict
    deny: [blocked.test]
    block_mode: blockpage
  guests:
    age: unrestricted
    deny: [blocked.test]
    block_mode: nxdomain
mandated:
  sources:
    - {id: authority, path: mandated.rpz, format: rpz}
lists:
  dir: lists
"""
MANDATED = """\
$TTL 300
@ IN SOA localhost. hostmaster.example.invalid. 1 3600 600 86400 300
  IN NS localhost.
banned.test        CNAME .
quiet.test         CNAME *.
notice.test        CNAME example.org.
address.test       A 192.0.2.99
"""


class Serving:
    """What a worker's `SnapshotHolder` offers the handler: (snapshot, this process's memo)."""

    def __init__(self, snapshot: Any) -> None:
        self.serving = (snapshot, DecisionMemo(snapshot))


class Exchange:
    """A handler, the event loop its awaited answers run on, and a way to ask it."""

    def __init__(self, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        self.handler = handler
        self.loop = loop

    def answer(
        self, packet: bytes, client: str = PUPIL, transport: str = "udp"
    ) -> dns.message.Message:
        return dns.message.from_wire(self.raw(packet, client, transport))

    def raw(self, packet: bytes, client: str = PUPIL, transport: str = "udp") -> bytes:
        answer = answer_on(self.loop, self.handler, packet, client, transport, timeout=WAIT)
        assert isinstance(answer, bytes), answer
        return answer


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("policy")
    (folder / "mandated.rpz").write_text(MANDATED)
    (folder / "policy.yaml").write_text(POLICY)
    return compile_policy(folder / "policy.yaml")


def build(snapshot: Any, upstream: tuple[str, int], config: UpstreamConfig) -> Handler:
    stats = Stats()
    return Handler(
        acl=AccessList(["127.0.0.0/8"]),
        cache=AnswerCache(CacheConfig()),
        forwarder=Forwarder([upstream], config, stats),
        stats=stats,
        policy=Serving(snapshot),
        decide=decide,
        blockpage_v4=[BLOCKPAGE_V4],
        blockpage_v6=[BLOCKPAGE_V6],
        identity="worker 1",
    )


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def resolver(snapshot: Any, authority: Authority, loop: asyncio.AbstractEventLoop) -> Exchange:
    """Forwarding to the local authority."""
    return Exchange(build(snapshot, (authority.host, authority.port), UpstreamConfig()), loop)


@pytest.fixture
def silent() -> Iterator[tuple[str, int]]:
    """An upstream address that receives and never answers (no ICMP error either)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()


def ask(name: str, rdtype: str = "A", rdclass: str = "IN", qid: int = 0x4242, **kw: Any) -> bytes:
    q = dns.message.make_query(name, rdtype, rdclass, **kw)
    q.id = qid
    return q.to_wire()


def ede(msg: dns.message.Message) -> list[tuple[int, str]]:
    return [(o.code, o.text or "") for o in msg.options if o.otype == dns.edns.EDE]


def ra(msg: dns.message.Message) -> bool:
    return bool(msg.flags & dns.flags.RA)


def question_bytes(packet: bytes) -> bytes:
    """The question section as sent (name in its case, type, class): header is 12 bytes."""
    end = packet.index(b"\0", 12) + 5
    return packet[12:end]


# ---- 1. read ----------------------------------------------------------------------------------


def test_a_packet_without_a_whole_header_or_a_response_gets_no_answer(resolver: Exchange) -> None:
    response = bytearray(ask("example.org"))
    response[2] |= 0x80  # QR: never answer a response (reflection loops)
    assert resolver.handler.answer(b"\x12\x34\x01", PUPIL, "udp") is None
    assert resolver.handler.answer(bytes(response), PUPIL, "udp") is None
    assert dict(resolver.handler.stats.malformed) == {"short-header": 1, "response": 1}


def test_an_unreadable_question_gets_formerr_with_its_id(resolver: Exchange) -> None:
    two = bytearray(ask("example.org", qid=0x0A0B))
    two[5] = 2  # QDCOUNT 2, one question present
    for client, offered in ((PUPIL, True), (OUTSIDER, False)):
        raw = resolver.raw(bytes(two), client)
        assert len(raw) == 12  # the header alone
        qid, flags = struct.unpack_from("!HH", raw)
        assert qid == 0x0A0B and flags & 0x000F == dns.rcode.FORMERR
        assert bool(flags & 0x0080) is offered  # RA only for a client we serve
    assert resolver.handler.stats.malformed["qdcount"] == 2


def test_an_unreadable_packet_of_another_opcode_gets_notimp(resolver: Exchange) -> None:
    packet = struct.pack("!HHHHHH", 0x0C0D, 15 << 11, 0, 0, 0, 0)  # opcode 15, no question
    raw = resolver.raw(packet)
    qid, flags = struct.unpack_from("!HH", raw)
    assert (qid, flags) == (0x0C0D, 0x8000 | 15 << 11 | dns.rcode.NOTIMP)


# ---- 2. access --------------------------------------------------------------------------------


def test_a_client_outside_the_access_list_is_refused_without_recursion(
    resolver: Exchange, authority: Authority
) -> None:
    for packet in (ask("example.org"), ask("blocked.test")):
        msg = resolver.answer(packet, OUTSIDER)
        assert msg.rcode() == dns.rcode.REFUSED and not ra(msg)
        assert msg.flags & dns.flags.QR and msg.flags & dns.flags.RD
        assert msg.question == dns.message.from_wire(packet).question
    assert authority.count() == 0
    assert resolver.handler.stats.queries[("udp", "A", "refused", "", "")] == 2


# ---- 3. guards --------------------------------------------------------------------------------


def test_an_opcode_other_than_query_gets_notimp_with_qr_and_opcode_only(resolver: Exchange) -> None:
    q = dns.message.make_query("example.org", "A")
    q.set_opcode(dns.opcode.STATUS)
    msg = resolver.answer(q.to_wire())
    assert msg.rcode() == dns.rcode.NOTIMP and msg.opcode() == dns.opcode.STATUS
    assert msg.flags & ~0x000F == dns.flags.QR | dns.opcode.to_flags(dns.opcode.STATUS)


def test_an_edns_version_above_zero_gets_badvers(resolver: Exchange, authority: Authority) -> None:
    msg = resolver.answer(ask("example.org", use_edns=1))
    assert msg.rcode() == dns.rcode.BADVERS and msg.edns == 0
    assert authority.count() == 0


def test_id_server_names_the_worker_and_other_classes_are_refused(resolver: Exchange) -> None:
    for name in ("id.server", "hostname.bind"):
        msg = resolver.answer(ask(name, "TXT", "CH"))
        assert msg.rcode() == dns.rcode.NOERROR and ra(msg)
        (rrset,) = msg.answer
        assert rrset.rdclass == dns.rdataclass.CH and rrset.ttl == 0
        assert [r.strings for r in rrset] == [(b"worker 1",)]
    for packet in (ask("example.org", "A", "CH"), ask("id.server", "A", "CH"), ask("x", "A", "HS")):
        msg = resolver.answer(packet)
        assert msg.rcode() == dns.rcode.REFUSED and msg.answer == []


def test_other_classes_say_why_when_the_client_speaks_edns(resolver: Exchange) -> None:
    msg = resolver.answer(ask("example.org", "A", "CH", use_edns=0))
    assert msg.rcode() == dns.rcode.REFUSED
    assert ede(msg) == [(21, "only class IN is served")]


def test_any_gets_one_hinfo_and_zone_transfers_notimp(
    resolver: Exchange, authority: Authority
) -> None:
    msg = resolver.answer(ask("example.org", "ANY"))
    assert msg.rcode() == dns.rcode.NOERROR
    (rrset,) = msg.answer
    assert rrset.rdtype == dns.rdatatype.HINFO and rrset[0].cpu == b"RFC8482"
    for rdtype in ("AXFR", "IXFR", "MAILB", "MAILA"):
        msg = resolver.answer(ask("example.org", rdtype))
        assert msg.rcode() == dns.rcode.NOTIMP and msg.answer == []
    assert authority.count() == 0


# ---- 4. policy --------------------------------------------------------------------------------


def test_a_blocked_name_points_at_the_block_page_with_its_reason(resolver: Exchange) -> None:
    msg = resolver.answer(ask("blocked.test", use_edns=0))
    assert msg.rcode() == dns.rcode.NOERROR and ra(msg)
    assert [r.address for r in msg.answer[0]] == ["10.0.0.1"] and msg.answer[0].ttl == 60
    assert ede(msg) == [(17, "deny: blocked.test")]
    msg = resolver.answer(ask("www.blocked.test", "AAAA"))  # below a denied name too
    assert [r.address for r in msg.answer[0]] == ["fd00::1"]
    msg = resolver.answer(ask("blocked.test", "MX", use_edns=0))  # no address to give: NODATA
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []
    assert ede(msg) == [(17, "deny: blocked.test")]
    stats = resolver.handler.stats
    assert stats.queries[("udp", "A", "blocked", "pupils", "")] == 1
    assert stats.queries[("udp", "MX", "blocked", "pupils", "")] == 1


def test_the_same_name_is_nxdomain_for_a_profile_that_says_so(
    resolver: Exchange, authority: Authority
) -> None:
    msg = resolver.answer(ask("blocked.test", use_edns=0), GUEST)
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.answer == []
    assert ede(msg) == [(17, "deny: blocked.test")]
    assert authority.count() == 0
    resolver.answer(ask("blocked.test", use_edns=0), "127.0.0.3")  # the open profile: forwarded
    assert authority.count("blocked.test") >= 1  # (retried: the authority refuses it)


def test_the_mandated_list_blocks_and_answers_nodata_as_its_rpz_says(resolver: Exchange) -> None:
    msg = resolver.answer(ask("banned.test", use_edns=0), GUEST)  # whatever the profile says
    assert [r.address for r in msg.answer[0]] == ["10.0.0.1"]
    assert ede(msg) == [(16, "mandated by the authorities")]
    msg = resolver.answer(ask("quiet.test", use_edns=0))  # CNAME *.: NODATA
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []
    assert ede(msg) == [(16, "mandated by the authorities")]
    assert resolver.handler.stats.mandated_hits == 2


def test_a_rewrite_to_an_address_answers_it_and_nodata_for_other_types(resolver: Exchange) -> None:
    msg = resolver.answer(ask("address.test", use_edns=0))
    assert msg.rcode() == dns.rcode.NOERROR
    assert [r.address for r in msg.answer[0]] == ["192.0.2.99"]
    for rdtype in ("AAAA", "MX"):
        msg = resolver.answer(ask("address.test", rdtype))
        assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []


def test_a_rewrite_to_a_name_is_looked_up_and_then_served_from_the_cache(
    resolver: Exchange, authority: Authority
) -> None:
    for qid in (1, 2):
        msg = resolver.answer(ask("WWW.Google.com", qid=qid))
        assert msg.id == qid and msg.rcode() == dns.rcode.NOERROR
        cname, a = msg.answer
        assert cname.name.to_text() == "WWW.Google.com."  # the client's case, echoed
        assert [r.target.to_text() for r in cname] == ["forcesafesearch.google.com."]
        assert [r.address for r in a] == ["198.51.100.1"]
    assert authority.count("forcesafesearch.google.com", "A") == 1
    assert authority.count("www.google.com") == 0  # the search host itself is never asked
    msg = resolver.answer(ask("www.google.com", "MX"))  # safe search: other types NODATA, no EDE
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == [] and ede(msg) == []
    queries = resolver.handler.stats.queries
    assert queries[("udp", "A", "rewritten", "pupils", "")] == 2


# ---- 5. cache ---------------------------------------------------------------------------------


def cache(handler: Handler, name: str, now: float, records: int = 1, ttl: int = 300) -> None:
    """An upstream-style A answer for `name`, cached as received at `now`."""
    q = dns.message.make_query(name, "A")
    reply = dns.message.make_response(q)
    addresses = [
        f"192.0.2.{i % 250}" if i < 250 else f"198.51.100.{i % 250}" for i in range(records)
    ]
    reply.answer.append(dns.rrset.from_text(name + ".", ttl, "IN", "A", *addresses))
    handler.cache.put((name, 1, 1, False), scan_reply(reply.to_wire()), now)


def test_a_cache_hit_has_the_clients_id_and_case_and_its_ttls_counted_down(
    resolver: Exchange, authority: Authority
) -> None:
    stored = float(int(time.monotonic())) - 10.0  # ten seconds ago, on a second's edge
    cache(resolver.handler, "cached.test", stored, ttl=300)
    packet = ask("CaChEd.TeSt", qid=0xBEEF)
    before = int(time.monotonic())
    raw = resolver.raw(packet, "127.0.0.3")
    after = int(time.monotonic())
    msg = dns.message.from_wire(raw)
    assert msg.id == 0xBEEF and msg.rcode() == dns.rcode.NOERROR and ra(msg)
    assert question_bytes(raw) == question_bytes(packet)  # the name in the client's case
    assert msg.answer[0].name.to_text() == "CaChEd.TeSt."
    assert 300 - (after - int(stored)) <= msg.answer[0].ttl <= 300 - (before - int(stored))
    assert authority.count() == 0
    stats = resolver.handler.stats
    assert (stats.cache_hits, stats.cache_misses) == (1, 0)
    assert stats.queries[("udp", "A", "cached", "open", "")] == 1


# ---- 6. forward -------------------------------------------------------------------------------


def test_a_miss_is_forwarded_once_and_then_answered_from_the_cache(
    resolver: Exchange, authority: Authority
) -> None:
    first = resolver.answer(ask("example.org", "AAAA", qid=7), "127.0.0.3")
    assert first.id == 7 and first.rcode() == dns.rcode.NOERROR and ra(first)
    assert not first.flags & dns.flags.AA  # a forwarder is no authority
    assert [r.address for r in first.answer[0]] == ["2001:db8::1"]
    again = resolver.answer(ask("EXAMPLE.org", "AAAA", qid=8), "127.0.0.3")
    assert again.id == 8 and again.answer[0].name.to_text() == "EXAMPLE.org."
    assert [r.address for r in again.answer[0]] == ["2001:db8::1"]
    assert authority.count("example.org", "AAAA") == 1
    stats = resolver.handler.stats
    assert (stats.cache_misses, stats.cache_hits) == (1, 1)
    assert stats.queries[("udp", "AAAA", "allowed", "open", "")] == 1


def test_a_silent_upstream_gets_servfail_by_the_query_budget(
    snapshot: Any, silent: tuple[str, int], loop: asyncio.AbstractEventLoop
) -> None:
    config = UpstreamConfig(timeout_ms=100, attempts=2, query_budget_ms=BUDGET_MS)
    resolver = Exchange(build(snapshot, silent, config), loop)
    msg = resolver.answer(ask("example.org", qid=9, use_edns=0), "127.0.0.3")
    assert msg.id == 9 and msg.rcode() == dns.rcode.SERVFAIL and ra(msg)
    assert ede(msg) == [(22, "no upstream")]
    # the failure is remembered (servfail_ttl): the next client is not made to wait again
    answer = resolver.handler.answer(ask("example.org", qid=10), "127.0.0.3", "udp")
    assert isinstance(answer, bytes)  # at once
    assert dns.message.from_wire(answer).rcode() == dns.rcode.SERVFAIL
    assert resolver.handler.stats.queries[("udp", "A", "servfail", "open", "")] == 2


def test_a_rewrite_target_that_cannot_be_looked_up_is_servfail(
    snapshot: Any, silent: tuple[str, int], loop: asyncio.AbstractEventLoop
) -> None:
    config = UpstreamConfig(timeout_ms=100, attempts=2, query_budget_ms=BUDGET_MS)
    resolver = Exchange(build(snapshot, silent, config), loop)
    msg = resolver.answer(ask("notice.test", use_edns=0))
    assert msg.rcode() == dns.rcode.SERVFAIL
    assert ede(msg) == [(22, "rewrite target")]


# ---- fit to the transport ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "edns", "transport", "whole"),
    [
        (40, None, "udp", False),  # ~700 bytes: over 512 without EDNS
        (40, 512, "udp", False),
        (40, 1232, "udp", True),
        (40, 4096, "udp", True),
        (100, 4096, "udp", False),  # ~1.7 kB: over what we advertise (1232), whatever it says
        (100, 1400, "udp", False),
        (40, None, "tcp", True),  # TCP: never cut
        (100, 4096, "tcp", True),
    ],
)
def test_an_answer_too_big_for_the_clients_udp_size_is_truncated(
    resolver: Exchange, records: int, edns: int | None, transport: str, whole: bool
) -> None:
    cache(resolver.handler, f"big{records}.test", time.monotonic(), records)
    options: dict[str, Any] = {"use_edns": False} if edns is None else {"payload": edns}
    packet = ask(f"big{records}.test", qid=0x5151, **options)
    raw = resolver.raw(packet, "127.0.0.3", transport)
    msg = dns.message.from_wire(raw)
    assert msg.id == 0x5151 and msg.rcode() == dns.rcode.NOERROR
    if whole:
        assert not msg.flags & dns.flags.TC and len(msg.answer[0]) == records
    else:
        assert msg.flags & dns.flags.TC and msg.answer == []
        assert question_bytes(raw) == question_bytes(packet)
        assert len(raw) <= len(packet)  # no bigger than the query: no amplification
    assert (msg.edns >= 0) is (edns is not None)
