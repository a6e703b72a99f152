"""A real DNS authority for the tests: the upstream the resolver forwards to.

It listens on 127.0.0.1 (UDP and TCP with 2-byte framing, RFC 7766) on its own thread and event
loop, so sync and async tests alike can drive it, and it can misbehave on demand (delay, drop,
truncate, spoof, garbage, error rcodes) per name or globally. Every query it receives is recorded,
so tests can assert what the resolver actually forwarded (caching, coalescing, ID and port
randomness, DO bit, 0x20 case). `Fault(raw=...)` sends any bytes a test builds from the query
(hostile replies), and `Fault(tcp=...)` misbehaves differently over TCP (e.g. TC=1 over UDP, then
garbage over TCP).

Run standalone: ``python -m tests.support.authority --port 5300 [--zone FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RD, RR, A, DNSLabel, DNSQuestion, DNSRecord

# A long TXT record: ~2.4 kB, larger than any UDP size a client advertises (forces truncation).
_BIG_TXT = " ".join(f'"chunk{i:02d}-{"x" * 180}"' for i in range(12))

# Safe-search front ends (documentation addresses, RFC 5737/3849: clearly this authority's) so a
# rewrite's answer can be traced to the target the resolver looked up.
SAFESEARCH_TARGETS: dict[str, tuple[str, str]] = {
    "forcesafesearch.google.com": ("198.51.100.1", "2001:db8:5afe::1"),
    "restrict.youtube.com": ("198.51.100.2", "2001:db8:5afe::2"),
    "restrictmoderate.youtube.com": ("198.51.100.3", "2001:db8:5afe::3"),
    "strict.bing.com": ("198.51.100.4", "2001:db8:5afe::4"),
    "safe.duckduckgo.com": ("198.51.100.5", "2001:db8:5afe::5"),
    "familysearch.yandex.ru": ("198.51.100.6", "2001:db8:5afe::6"),
    "safesearch.pixabay.com": ("198.51.100.7", "2001:db8:5afe::7"),
    "strict-safe-search.ecosia.org": ("198.51.100.8", "2001:db8:5afe::8"),
}
# The search hosts themselves, as a client on an unfiltered profile gets them.
SEARCH_HOSTS: dict[str, str] = {
    "www.google.com": "203.0.113.1",
    "www.google.com.vn": "203.0.113.2",
    "www.youtube.com": "203.0.113.3",
    "www.bing.com": "203.0.113.4",
    "duckduckgo.com": "203.0.113.5",
}
_SEARCH_ZONES = (
    "google.com", "google.com.vn", "youtube.com", "bing.com", "duckduckgo.com", "yandex.ru",
    "pixabay.com", "ecosia.org",
)  # fmt: skip
_SAFESEARCH_ZONE = (
    "".join(
        f"{zone}. 3600 IN SOA ns1.{zone}. hostmaster.{zone}. 1 7200 3600 1209600 60\n"
        for zone in _SEARCH_ZONES
    )
    + "".join(
        f"{name}. IN A {v4}\n{name}. IN AAAA {v6}\n{name}. IN HTTPS 1 . alpn=h2,h3\n"
        for name, (v4, v6) in SAFESEARCH_TARGETS.items()
    )
    + "".join(f"{name}. IN A {v4}\n" for name, v4 in SEARCH_HOSTS.items())
)

DEFAULT_ZONE = f"""
$TTL 300
example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
example.org. IN NS ns1.example.org.
example.org. IN A 192.0.2.1
example.org. IN AAAA 2001:db8::1
example.org. IN MX 10 mail.example.org.
example.org. IN TXT "v=spf1 -all"
example.org. IN CAA 0 issue "letsencrypt.org"
example.org. IN HTTPS 1 . alpn=h2
ns1.example.org. IN A 192.0.2.53
mail.example.org. IN A 192.0.2.25
www.example.org. IN CNAME web.example.org.
web.example.org. IN CNAME host.example.org.
host.example.org. IN A 192.0.2.10
_sip._tcp.example.org. IN SRV 10 60 5060 sip.example.org.
sip.example.org. IN A 192.0.2.60
v4only.example.org. IN A 192.0.2.4
big.example.org. IN TXT {_BIG_TXT}
*.big.example.org. IN TXT {_BIG_TXT}
short.example.org. 1 IN A 192.0.2.11
long.example.org. 604800 IN A 192.0.2.12
secure.example.org. IN DS 12345 13 2 {"ab" * 32}
secure.example.org. IN A 192.0.2.77
*.w.example.org. 300 IN A 192.0.2.200
*.w.example.org. 300 IN AAAA 2001:db8::200
2.0.192.in-addr.arpa. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
1.2.0.192.in-addr.arpa. IN PTR example.org.
svc.example.org. IN SVCB
{_SAFESEARCH_ZONE}"""

# SVCB (type 64) has no dnslib class: stored as raw rdata (same wire form as the HTTPS record).
_SVCB_RDATA = b"\x00\x01\x00\x00\x01\x00\x03\x02h2"


@dataclass
class Fault:
    """How to misbehave for matching queries. Fields combine (delay applies before the rest)."""

    delay_ms: int = 0
    drop: bool = False  # never answer
    truncate: bool = False  # UDP: TC=1 and no records; TCP: full answer
    spoof: str | None = None  # "id" | "question": send a forged reply (answer 6.6.6.6)
    then_answer: bool = False  # after a spoof, also send the genuine reply
    other_source: str | None = None  # "port" | "address": genuine reply from another socket
    garbage: bool = False  # reply with the right ID, QR set, then random bytes
    rcode: int | None = None  # e.g. RCODE.SERVFAIL, RCODE.REFUSED
    raw: Callable[[bytes], bytes] | None = None  # reply with raw(query bytes), whatever it is
    udp_only: bool = True  # faults other than delay/drop apply to UDP only unless False
    tcp: Fault | None = None  # how to misbehave over TCP instead (udp_only is then moot)


@dataclass(frozen=True)
class Seen:
    """One query as the authority received it."""

    transport: str  # "udp" | "tcp"
    qid: int
    src_port: int
    qname: str  # exactly as received (case preserved, no trailing dot)
    qtype: str
    do: bool
    edns: bool


@dataclass
class _State:
    faults: dict[str | None, Fault] = field(default_factory=dict)  # lower qname / None = all
    seen: list[Seen] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def parse_zone(text: str) -> dict[str, list[RR]]:
    """Zone text (dnslib's master-file subset, plus `IN SVCB`) -> {lower name: [RR]}."""
    records: dict[str, list[RR]] = {}
    lines = []
    for line in text.splitlines():
        parts = line.split()
        if parts[-1:] == ["SVCB"]:  # "NAME IN SVCB": the fixed rdata below
            rr = RR(parts[0], rtype=QTYPE.SVCB, ttl=300, rdata=RD(_SVCB_RDATA))
            records.setdefault(str(rr.rname).lower(), []).append(rr)
            continue
        lines.append(line)
    for rr in RR.fromZone("\n".join(lines)):
        records.setdefault(str(rr.rname).lower(), []).append(rr)
    return records


class Authority:
    """The authority server. `start()` binds and serves on a background thread."""

    def __init__(self, zone: str = DEFAULT_ZONE, port: int = 0):
        self.records = parse_zone(zone)
        self.host = "127.0.0.1"
        self.port = port
        self.aa = True  # real authorities set AA; a forwarder must clear it
        self._state = _State()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._alt_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._alt_addr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # ---- control (any thread) -------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_fault(self, fault: Fault, name: str | None = None) -> None:
        """Misbehave for `name` (any case, no trailing dot needed), or for every query."""
        with self._lock:
            self._state.faults[_key(name) if name else None] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()

    def reset(self) -> None:
        """Forget faults and everything seen (for module-scoped reuse)."""
        with self._lock:
            self._state = _State()
        self.aa = True

    def count(
        self, name: str | None = None, qtype: str | None = None, transport: str | None = None
    ) -> int:
        """How many queries arrived, filtered by name (any case), type and transport."""
        with self._lock:
            seen = list(self._state.seen)
        return sum(
            1
            for s in seen
            if (name is None or _key(s.qname) == _key(name))
            and (qtype is None or s.qtype == qtype)
            and (transport is None or s.transport == transport)
        )

    def seen(self, name: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._state.seen if name is None or _key(s.qname) == _key(name)]

    def start(self) -> Authority:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="test-authority", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._close)
        self._thread.join(5)
        self._alt_port.close()
        self._alt_addr.close()

    def __enter__(self) -> Authority:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- serving (authority thread) -------------------------------------------------------
    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        self._alt_port.bind(("127.0.0.1", 0))
        self._alt_addr.bind(("127.0.0.2", 0))
        for _ in range(50):  # port 0: find one free for both UDP and TCP
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, self.port)
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self._udp, self.port = udp, port
            return
        raise OSError("no free port for UDP and TCP")

    def _close(self) -> None:
        assert self._loop is not None
        if self._udp:
            self._udp.close()
        if self._tcp:
            self._tcp.close()
        self._loop.stop()

    def _fault_for(self, qname: str) -> Fault | None:
        with self._lock:
            return self._state.faults.get(_key(qname)) or self._state.faults.get(None)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._state.seen.append(seen)
            self._state.counts[(_key(seen.qname), seen.qtype, seen.transport)] += 1

    def handle(
        self, data: bytes, transport: str, src_port: int
    ) -> tuple[list[bytes], Fault | None]:
        """Answer one query: (replies to send in order, the fault that applied)."""
        try:
            return self._handle(data, transport, src_port)
        except Exception as exc:  # a test authority must keep serving whatever arrives
            print(f"authority: cannot answer {data[:64]!r}: {exc!r}", file=sys.stderr)
            return [], None

    def _handle(
        self, data: bytes, transport: str, src_port: int
    ) -> tuple[list[bytes], Fault | None]:
        query = DNSRecord.parse(data)
        if query.header.qr or len(query.questions) != 1:
            return [], None
        q = query.q
        opt = next((r for r in query.ar if r.rtype == QTYPE.OPT), None)
        qname = str(q.qname).rstrip(".")
        self._record(
            Seen(
                transport=transport,
                qid=query.header.id,
                src_port=src_port,
                qname=qname,
                qtype=QTYPE.get(q.qtype),
                do=bool(opt and opt.edns_do),
                edns=opt is not None,
            )
        )
        fault = self._fault_for(qname)
        if fault is not None and fault.tcp is not None and transport == "tcp":
            fault = fault.tcp
            applies = True
        else:
            applies = fault is not None and (transport == "udp" or not fault.udp_only)
        reply = self.answer(query, do=bool(opt and opt.edns_do))
        if opt is not None:
            reply.add_ar(
                RR(rtype=QTYPE.OPT, rclass=1232, ttl=0x8000 if opt.edns_do else 0, rdata=[])
            )
        if not applies or fault is None:
            packed = reply.pack()
            limit = max(512, opt.rclass) if opt is not None else 512
            if transport == "udp" and len(packed) > limit:  # too big for the asker: TC=1
                packed = self._truncated(query)
            return [packed], fault
        if fault.raw is not None:
            return [fault.raw(data)], fault
        if fault.rcode is not None:
            reply = query.reply(ra=0, aa=0)
            reply.header.rcode = fault.rcode
        if fault.garbage:
            return [data[:2] + b"\x80" + os.urandom(40)], fault
        if fault.truncate:
            return [self._truncated(query)], fault
        out: list[bytes] = []
        if fault.spoof:
            forged = query.reply(ra=0, aa=1)
            if fault.spoof == "id":
                forged.header.id = (query.header.id + 1) & 0xFFFF
            else:
                # a new question object: reply() shares the query's, and the genuine reply needs it
                forged.questions = [DNSQuestion(DNSLabel("spoofed." + qname), q.qtype, q.qclass)]
            forged.add_answer(RR(forged.q.qname, QTYPE.A, rdata=A("6.6.6.6"), ttl=86400))
            out.append(forged.pack())
            if not fault.then_answer:
                return out, fault
        out.append(reply.pack())
        return out, fault

    def _truncated(self, query: DNSRecord) -> bytes:
        trunc = query.reply(ra=0, aa=int(self.aa))
        trunc.header.tc = 1
        trunc.header.ad = 0
        return trunc.pack()

    def answer(self, query: DNSRecord, do: bool) -> DNSRecord:
        """The genuine authoritative reply: records, CNAME chain, NXDOMAIN/NODATA with SOA."""
        q = query.q
        reply = query.reply(ra=0, aa=int(self.aa))
        reply.header.ad = 0
        name = _key(str(q.qname))
        qtype = q.qtype
        for _ in range(10):  # follow CNAME chains inside the zone
            rrs = self._lookup(name)
            if rrs is None:
                soa = self._soa_for(name)
                if soa is None:
                    reply.header.rcode = RCODE.REFUSED
                    reply.header.aa = 0
                    return reply
                if not reply.rr:
                    reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(soa)
                return reply
            cname = [r for r in rrs if r.rtype == QTYPE.CNAME]
            if cname and qtype != QTYPE.CNAME:
                reply.add_answer(_named(cname[0], q.qname if not reply.rr else None))
                name = _key(str(cname[0].rdata.label))
                continue
            match = [r for r in rrs if qtype in (r.rtype, QTYPE.ANY)]
            if not match:
                soa = self._soa_for(name)
                if soa is not None:
                    reply.add_auth(soa)  # NODATA
                return reply
            owner = q.qname if not reply.rr else None
            for rr in match:
                reply.add_answer(_named(rr, owner))
            if do:
                reply.add_answer(_rrsig(match[0], owner))
            return reply
        return reply

    def _lookup(self, name: str) -> list[RR] | None:
        if name in self.records:
            return self.records[name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            wild = "*." + ".".join(labels[i:])
            if wild in self.records:
                return self.records[wild]
        return None

    def _soa_for(self, name: str) -> RR | None:
        labels = name.split(".")
        for i in range(len(labels)):
            for rr in self.records.get(".".join(labels[i:]), []):
                if rr.rtype == QTYPE.SOA:
                    # RFC 2308 section 3: negative TTL = min(SOA TTL, SOA MINIMUM)
                    ttl = min(rr.ttl, rr.rdata.times[4])
                    return RR(rr.rname, QTYPE.SOA, rdata=rr.rdata, ttl=ttl)
        return None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        src_port = writer.get_extra_info("peername")[1]
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                data = await reader.readexactly(size)
                replies, fault = self.handle(data, "tcp", src_port)
                if fault and fault.delay_ms:
                    await asyncio.sleep(fault.delay_ms / 1000)
                if fault and fault.drop:
                    continue
                for reply in replies:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, authority: Authority):
        self.authority = authority
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        replies, fault = self.authority.handle(data, "udp", addr[1])
        if fault and fault.drop:
            return
        delay = fault.delay_ms / 1000 if fault else 0
        asyncio.get_running_loop().call_later(delay, self._send, replies, addr, fault)

    def _send(self, replies: list[bytes], addr: tuple[str, int], fault: Fault | None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for i, reply in enumerate(replies):
            genuine = i == len(replies) - 1
            if fault and fault.other_source and genuine:
                alt = self.authority._alt_port
                if fault.other_source == "address":
                    alt = self.authority._alt_addr
                alt.sendto(reply, addr)
            else:
                self.transport.sendto(reply, addr)


def raw_reply(*answers: bytes, flags: int = 0x8480) -> Callable[[bytes], bytes]:
    """For `Fault(raw=...)`: the query's ID and question, then these answer records as bytes."""

    def build(query: bytes) -> bytes:
        qend = 12
        while query[qend]:
            qend += query[qend] + 1
        head = query[:2] + struct.pack("!5H", flags, 1, len(answers), 0, 0)
        return head + query[12 : qend + 5] + b"".join(answers)

    return build


def raw_record(rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    """One record owned by the question name (pointer 0xC00C), class IN."""
    return struct.pack("!HHHIH", 0xC00C, rtype, 1, ttl, len(rdata)) + rdata


def _key(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _named(rr: RR, owner: DNSLabel | None) -> RR:
    """A copy of `rr` whose owner is the queried name when it matched (wildcards, 0x20 case)."""
    return RR(owner or rr.rname, rr.rtype, rr.rclass, rr.ttl, rr.rdata)


def _rrsig(rr: RR, owner: DNSLabel | None) -> RR:
    """A fake RRSIG over `rr`'s RRset: a forwarder only has to pass it through intact."""
    name = owner or rr.rname
    labels = len(str(name).rstrip(".").split("."))
    text = (
        f"{name} {rr.ttl} IN RRSIG {QTYPE.get(rr.rtype)} 13 {labels} {rr.ttl} "
        f"20300101000000 20200101000000 12345 example.org. {'c2lnbmF0dXJl' * 8}"
    )
    return RR.fromZone(text)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description="Test DNS authority on 127.0.0.1 (UDP+TCP).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--zone", metavar="FILE", help="zone text (default: built-in example.org)")
    args = parser.parse_args()
    zone = DEFAULT_ZONE
    if args.zone:
        with open(args.zone, encoding="utf-8") as fh:
            zone = fh.read()
    authority = Authority(zone, port=args.port).start()
    print(f"authority listening on {authority.address}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        authority.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
