"""The UDP fast path: read queries in batches, repeat answers already rendered, send in batches.

A worker answers most of its queries with bytes it has sent before: the same blocked name, the
same cache hit, asked again by a client of the same profile. `FastPath` keeps those answers in
a bounded table keyed by (client class, the query from byte 2 with its name lower-cased) and
answers a repeat by patching in the query's ID and its question-name case (0x20), and counting
the TTLs of a cache answer down by the seconds since it was stored, as the cache does. Everything
else is handed back to Python, which decides, answers, and may store its answer
(`resolver.dns.fastanswers` says what may be stored and for how long).

Two implementations with one API and the same results:
- `resolver.dns._fastpath.FastPath` (C, built at install): one recvmmsg per batch, one sendmmsg
  for the answers, no Python object per repeated query;
- `PyFastPath` below, the reference the C type is tested against and the fallback where it is
  not built (or `SAFE_RESOLVER_PURE=1`): a recvfrom per datagram, a sendto per answer.

Behind a load balancer (`proxy_protocol_from`, given by `set_balancers`), a datagram from a
balancer that starts with a PROXY v2 header the gate (`resolver.dns.proxygate`) accepts with a
client address is looked up as the query after the header from that client (its class, its
credit), and a hit is answered to the balancer as plain DNS, as the gate's path answers. LOCAL
and malformed headers, headers from anyone else and a balancer's datagrams without one go to
Python unchanged, where the gate counts them.

Both tables have a fixed capacity and evict with CLOCK (second chance for entries hit since the
hand last passed), so memory is bounded whatever the traffic. A doorkeeper (`admit`) remembers
the queries offered once, so that an answer is stored from its second sighting on: one-off names
never take a slot (TinyLFU's doorkeeper; bounded too).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from resolver.dns.acl import AccessList
from resolver.dns.proxyproto import SIGNATURE, ProxyError, parse
from resolver.match.packed import walk_compiled
from resolver.pure import serves_compiled

Address = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id): socket's form
Reply = tuple[bytes, Address]
Harvest = tuple[list[tuple[int, int]], float, int]  # [(stats_id, hits)], seconds, send errors
Network = tuple[bytes, int]  # (address bytes, prefix length)

RECV_SIZE = 65535  # the largest UDP payload: nothing is ever cut short
HEADER = 12
MIN_QUERY = 17  # header, root name, type and class
MAX_KEY = 512  # keys (queries from byte 2) longer than this are never stored
MAX_ANSWER = 4096  # UDP answers are at most 1232 bytes in practice
MAX_NAME = 255
MAX_KLASS = 65535
MAX_STATS = 1 << 20
MAX_CREDIT = (1 << 32) - 1  # credits are below this (C: uint32, all ones is no limit)
MAX_TTLS = 128  # TTL fields aged per answer at most (a 1232-byte answer has fewer)
# Batches of only repeated answers one `serve` call reads at most: what arrived while one was
# served is read at once, without a turn of the event loop, which gets its turn after these.
SERVE_ROUNDS = 4
MAX_BALANCERS = 4096  # networks given to set_balancers at most
SEEN = 262_144  # queries the doorkeeper (`admit`) remembers at most


class FastPathLike(Protocol):
    """The API both implementations offer (resolver/dns/_fastpath.c documents the C side)."""

    @property
    def answers(self) -> int: ...
    @property
    def clients(self) -> int: ...
    @property
    def batch(self) -> int: ...
    def serve(self, sock: socket.socket, now: float) -> list[Reply]: ...
    def send(self, sock: socket.socket, replies: list[Reply]) -> None: ...
    def put(
        self,
        klass: int,
        query: bytes,
        answer: bytes,
        valid_until: float,
        stats_id: int,
        ttl_offsets: Sequence[int] = (),
        second: int = 0,
    ) -> bool: ...
    def admit(self, klass: int, query: bytes) -> bool: ...
    def set_client(self, address: bytes, klass: int, credit: int = -1) -> int: ...
    def set_balancers(self, networks: Sequence[Network]) -> None: ...
    def clear(self) -> None: ...
    def harvest(self) -> Harvest: ...


class _Stored:
    __slots__ = ("answer", "name_len", "referenced", "second", "stats_id", "ttls", "valid_until")

    def __init__(
        self,
        answer: bytes,
        name_len: int,
        valid_until: float,
        stats_id: int,
        ttls: tuple[int, ...],
        second: int,
    ) -> None:
        self.answer = answer
        self.name_len = name_len
        self.valid_until = valid_until
        self.stats_id = stats_id
        self.ttls = ttls  # offsets of TTL fields counted down from `second` on
        self.second = second
        self.referenced = False


class _Client:
    """A client address's class and credit: the answers it may still get from the table before
    its next query goes to Python (-1: no limit). Rate limits stay in Python
    (`resolver.dns.ratelimit`), which grants the credit charged in advance to the client's
    buckets and is refunded the unused part when it grants the next (`set_client`)."""

    __slots__ = ("credit", "klass", "referenced")

    def __init__(self, klass: int, credit: int) -> None:
        self.klass = klass
        self.credit = credit
        self.referenced = False


class PyFastPath:
    """The reference implementation (see the module docstring)."""

    def __init__(self, batch: int = 64, answers: int = 200_000, clients: int = 65_536) -> None:
        if not (1 <= batch <= 1024 and 0 <= answers <= 50_000_000 and 0 <= clients <= 50_000_000):
            raise ValueError("batch 1..1024, answers and clients 0..50,000,000")
        self.batch = batch
        self._answer_capacity = answers
        self._client_capacity = clients
        self._answers: OrderedDict[tuple[int, bytes], _Stored] = OrderedDict()
        self._clients: OrderedDict[bytes, _Client] = OrderedDict()
        self._balancers: AccessList | None = None
        self._seen: OrderedDict[tuple[int, bytes], None] = OrderedDict()
        self._hits: dict[int, int] = {}
        self._seconds = 0.0
        self._send_errors = 0

    @property
    def answers(self) -> int:
        return len(self._answers)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def serve(self, sock: socket.socket, now: float) -> list[Reply]:
        """Read up to `batch` datagrams; answer the stored ones; return the others. A batch
        that was all answered here is followed by the next one, up to SERVE_ROUNDS batches."""
        first = time.monotonic()
        for round_ in range(SERVE_ROUNDS):
            try:
                misses, received = self._serve_batch(sock, now + time.monotonic() - first)
            except OSError:
                if round_:
                    return []  # as the C type: a lasting error shows on the next call
                raise
            if misses or not received:
                return misses
        return []

    def _serve_batch(self, sock: socket.socket, now: float) -> tuple[list[Reply], int]:
        misses: list[Reply] = []
        hits: list[Reply] = []
        started = time.monotonic()
        lookups = bool(self._answers) and bool(self._clients)
        received = 0
        while received < self.batch:
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except BlockingIOError:
                break
            except OSError:
                if received:
                    break  # the next call reports it, as recvmmsg does
                raise
            received += 1
            answer = self._lookup(data, addr, now) if lookups else None
            if answer is None:
                misses.append((data, addr))
            else:
                hits.append((answer, addr))
        if hits:
            self.send(sock, hits)
            self._seconds += (time.monotonic() - started) / received * len(hits)
        return misses, received

    def _lookup(self, packet: bytes, addr: Address, now: float) -> bytes | None:
        opened = self._query_of(packet, addr[0])
        if opened is None:
            return None
        data, source = opened
        end = key_end(data)
        if end < 0:
            return None
        client = self._clients.get(source)
        if client is None or client.klass == 0 or client.credit == 0:
            return None
        client.referenced = True
        table_key = (client.klass, table_key_of(data, end))
        stored = self._answers.get(table_key)
        if stored is None:
            return None
        if not stored.valid_until > now:
            del self._answers[table_key]
            return None
        stored.referenced = True
        if client.credit > 0:
            client.credit -= 1
        self._hits[stored.stats_id] = self._hits.get(stored.stats_id, 0) + 1
        cut = HEADER + stored.name_len
        answer = stored.answer
        elapsed = int(now) - stored.second
        if stored.ttls and elapsed > 0:
            answer = aged(answer, stored.ttls, elapsed)
        return data[:2] + answer[2:HEADER] + data[HEADER:cut] + answer[cut:]

    def _query_of(self, data: bytes, host: str) -> tuple[bytes, bytes] | None:
        """(the DNS query, its client's address bytes): the source's own query, or the one
        after a PROXY v2 header from a balancer; None when the gate must see the datagram."""
        balancers = self._balancers
        if balancers is None or not balancers.allows(host):
            return None if data.startswith(SIGNATURE) else (data, address_bytes(host))
        if not data.startswith(SIGNATURE):
            return None
        try:
            client, payload = parse(data)
        except ProxyError:
            return None
        return None if client is None else (payload, address_bytes(client))

    def send(self, sock: socket.socket, replies: list[Reply]) -> None:
        for data, addr in replies:
            try:
                sock.sendto(data, addr)
            except (OSError, TypeError, ValueError, OverflowError):
                self._send_errors += 1

    def put(
        self,
        klass: int,
        query: bytes,
        answer: bytes,
        valid_until: float,
        stats_id: int,
        ttl_offsets: Sequence[int] = (),
        second: int = 0,
    ) -> bool:
        """Store `answer` for queries of clients of `klass` with the bytes of `query` (ID and
        question-name case aside), until `valid_until`; the TTL fields at `ttl_offsets` hold
        their values for `second`."""
        if not (1 <= klass <= MAX_KLASS and 0 <= stats_id < MAX_STATS):
            raise ValueError("klass 1..65535, stats_id 0..2**20-1")
        end = storable(query, answer)
        if self._answer_capacity == 0 or end < 0:
            return False
        ttls = tuple(ttl_offsets)
        if len(ttls) > MAX_TTLS or any(not end <= at <= len(answer) - 4 for at in ttls):
            return False
        name_len = end - HEADER
        table_key = (klass, table_key_of(bytes(query), end))
        self._answers.pop(table_key, None)
        if len(self._answers) >= self._answer_capacity:
            _evict(self._answers)
        stored = _Stored(bytes(answer), name_len, valid_until, stats_id, ttls, second)
        self._answers[table_key] = stored
        return True

    def admit(self, klass: int, query: bytes) -> bool:
        """Whether a query like `query` (ID and question-name case aside) from a client of
        `klass` was offered before and is still remembered (the last SEEN at most; the compiled
        twin keeps fingerprints in buckets of four and may forget one sooner); remember it if
        not. The table's doorkeeper: FastAnswers stores an answer from its query's second
        sighting on."""
        data = bytes(query)
        end = key_end(data) if 1 <= klass <= MAX_KLASS else -1
        if end < 0:
            return False
        key = (klass, table_key_of(data, end))
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return False

    def set_client(self, address: bytes, klass: int, credit: int = -1) -> int:
        """The class of clients at `address` (4 or 16 bytes; 0 forgets it) and their credit
        (-1: no limit). Returns the credit the client had (0 if it was not known)."""
        if not (len(address) in (4, 16) and 0 <= klass <= MAX_KLASS and -1 <= credit < MAX_CREDIT):
            raise ValueError("an address of 4 or 16 bytes, klass 0..65535, credit -1..2**32-2")
        address = bytes(address)
        client = self._clients.get(address)
        if client is not None:
            had = client.credit
            if klass == 0:
                del self._clients[address]
            else:
                client.klass = klass
                client.credit = credit
            return had
        if klass == 0 or self._client_capacity == 0:
            return 0
        if len(self._clients) >= self._client_capacity:
            _evict(self._clients)
        self._clients[address] = _Client(klass, credit)
        return 0

    def set_balancers(self, networks: Sequence[Network]) -> None:
        """The load balancers whose PROXY v2 headers name the client (`proxy_protocol_from`),
        as (address bytes, prefix length); replaces the previous ones."""
        nets = []
        for network in networks:
            try:
                address, prefix = network
                nets.append(ipaddress.ip_network((bytes(address), prefix), strict=False))
            except (TypeError, ValueError):
                raise ValueError("a network is (address bytes, prefix length)") from None
        if len(nets) > MAX_BALANCERS:
            raise ValueError("4096 networks at most")
        self._balancers = AccessList(str(net) for net in nets) if nets else None

    def clear(self) -> None:
        """Forget every answer and client (not the balancers)."""
        self._answers.clear()
        self._clients.clear()

    def harvest(self) -> Harvest:
        hits = sorted(self._hits.items())
        out = (hits, self._seconds, self._send_errors)
        self._hits = {}
        self._seconds = 0.0
        self._send_errors = 0
        return out


def _evict(table: OrderedDict[Any, Any]) -> None:
    """CLOCK in insertion order: an entry hit since the hand passed gets one more round."""
    while True:
        key, entry = table.popitem(last=False)
        if not entry.referenced:
            return
        entry.referenced = False
        table[key] = entry


def aged(answer: bytes, ttls: tuple[int, ...], elapsed: int) -> bytes:
    """`answer` with the TTL fields at `ttls` counted down by `elapsed` seconds (not below 0)."""
    out = bytearray(answer)
    for at in ttls:
        ttl = int.from_bytes(out[at : at + 4], "big")
        out[at : at + 4] = max(ttl - elapsed, 0).to_bytes(4, "big")
    return bytes(out)


def name_end(packet: bytes) -> int:
    """Offset just past the uncompressed question name of a packet, or -1."""
    pos = HEADER
    size = len(packet)
    while True:
        if pos >= size:
            return -1
        length = packet[pos]
        if length == 0:
            break
        if length & 0xC0:
            return -1
        pos += length + 1
        if pos - HEADER >= MAX_NAME:
            return -1
    pos += 1
    return pos if pos + 4 <= size else -1


def storable(query: bytes, answer: bytes) -> int:
    """The end of the question name of `query` when `answer` may be stored for it, else -1:
    the query must be one `serve` can look up, the answer must echo its question name."""
    if len(answer) > MAX_ANSWER:
        return -1
    end = key_end(query)
    if end < 0 or len(answer) < end or answer[HEADER:end].lower() != query[HEADER:end].lower():
        return -1
    return end


def key_end(query: bytes) -> int:
    """The end of the question name of a query the table can key (its length within bounds,
    its name uncompressed), or -1."""
    if not MIN_QUERY <= len(query) <= MAX_KEY + 2:
        return -1
    return name_end(query)


def table_key_of(query: bytes, end: int) -> bytes:
    """The table key of a query: its bytes from 2 on, the question name (ending at `end`)
    lower-cased."""
    return query[2:HEADER] + query[HEADER:end].lower() + query[end:]


def address_bytes(host: str) -> bytes:
    """A client address as the client table keys it (4 or 16 bytes; any %zone dropped)."""
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    return socket.inet_pton(socket.AF_INET, host)


def use_compiled() -> bool:
    """Whether `new_fastpath` serves with the C type here (built, not disabled)."""
    return serves_compiled("resolver.dns._fastpath")


def new_fastpath(batch: int, answers: int, clients: int) -> FastPathLike:
    """The compiled FastPath when built and not disabled by SAFE_RESOLVER_PURE=1, else the twin."""
    if use_compiled():
        from resolver.dns._fastpath import FastPath

        compiled: FastPathLike = FastPath(batch=batch, answers=answers, clients=clients)
        return compiled
    return PyFastPath(batch=batch, answers=answers, clients=clients)


def mypyc_compiled() -> bool:
    """Whether the query path's Python modules run compiled with mypyc (`make compiled`)."""
    import resolver.dns.handler

    return not str(resolver.dns.handler.__file__).endswith(".py")


def describe(compiled: bool, batch: int, answers: int) -> str:
    """Which UDP path serves, for `safe-resolver version` and the admin status."""
    more = (
        (", mypyc: yes" if mypyc_compiled() else "")
        + (", name walk: C" if walk_compiled() else "")
        + (", question reader: C" if serves_compiled("resolver.dns._question") else "")
    )
    if compiled:
        return f"udp: recvmmsg batch {batch}, fast answers {answers}, compiled: yes{more}"
    return f"udp: recvfrom batch {batch} (pure Python), fast answers {answers}, compiled: no{more}"
