"""Answer cache holding upstream replies as bytes, served by patching ID, flags and TTLs.

The cache holds answers *before* policy, so a policy reload never needs a flush. Keys are
(name, type, class, DO): lower-case names make lookups case-insensitive, and the question is
echoed from each client's own query so 0x20 mixed case survives. TTLs are counted down by
rewriting the TTL fields found by `scan_reply`; a rendered body is reused for the rest of the
same second, so a hit costs a dict lookup and three byte concatenations.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from resolver.dns.message import MAX_MESSAGE, BadReply, Reply, without_opt
from resolver.dns.packet import AA, AD, CD, QR, RA, RD, TC, Query
from resolver.dns.settings import CacheConfig
from resolver.dns.synth import EDE_STALE_ANSWER, NOERROR, NXDOMAIN, OPT_DO, OPT_PLAIN, opt_record
from resolver.pure import serves_compiled

# Keys and entries are typed as tuples of any length on purpose. mypyc holds a tuple of a fixed
# shape as a C struct and makes a new tuple object each time it is passed or stored: the cache
# would hold a copy the collector tracks, and `_AgedBodies` (keyed by identity) would miss.
CacheKey = tuple[Any, ...]  # (name, type, class, DO): str, int, int, bool
_ID_FLAGS: Final = struct.Struct("!HH")
_COUNTS: Final = struct.Struct("!HHHH")
_TTL: Final = struct.Struct("!I")
STALE_TTL: Final = 30  # RFC 8767 section 4: every record of a stale answer gets this TTL
_OPT_ROOM: Final = len(opt_record(True, (EDE_STALE_ANSWER, "")))  # the largest OPT render() appends


_T = TypeVar("_T")


def _as_is(obj: _T) -> _T:
    return obj


def _untracker() -> Callable[[_T], _T]:
    """resolver/dns/_untrack.c's `untracked` where built (and not SAFE_RESOLVER_PURE=1): the
    cache's tuples and index leave the cyclic collector's sight when made. Without it the
    collector untracks the tuples at its first look and walks the index at each full
    collection: the same answers, longer pauses."""
    if serves_compiled("resolver.dns._untrack"):
        from resolver.dns._untrack import untracked

        return untracked
    return _as_is


_untracked = _untracker()

# A cached answer is a plain tuple of values the cyclic collector never tracks (ints, floats,
# bytes), read through the indexes below, so that the collector need never walk the cache: a
# tuple, its key (also plain values) and the index holding only them are untracked when made
# (`_untracked`). (Objects of a class stay tracked: 100k of them made every older-generation
# collection walk them all, a pause of tens of milliseconds that set a forwarding worker's p99;
# an OrderedDict of 500k entries walked by a full collection made one of ~400 ms.)
Entry = tuple[Any, ...]  # int, bytes, bytes, bytes, bytes, int, float, float: as indexed below
FLAGS: Final = 0  # the reply's header flags as served (QR, RA; AA, TC, RD, CD cleared)
COUNTS: Final = 1  # QDCOUNT to ARCOUNT, packed
COUNTS_OPT: Final = 2  # the same with our OPT record counted
BODY: Final = 3  # the records after the question, TTLs clamped as stored
TTL_FIELDS: Final = 4  # (offset in BODY, TTL as stored) of every record, packed as _TTL_FIELD
STORED_SEC: Final = 5  # int(time.monotonic()) when stored
EXPIRES: Final = 6  # time.monotonic() when it stops being fresh
STALE_UNTIL: Final = 7  # ... and when it stops being servable stale (RFC 8767)
_TTL_FIELD: Final = struct.Struct("=HI")


def new_entry(
    flags: int,
    counts: tuple[int, int, int],
    body: bytes,
    ttl_offsets: Iterable[int],
    ttls: Iterable[int],
    stored_sec: int,
    expires: float,
    stale_until: float,
) -> Entry:
    an, ns, ar = counts
    fields = b"".join(map(_TTL_FIELD.pack, ttl_offsets, ttls))
    return _untracked((flags, _COUNTS.pack(1, an, ns, ar), _COUNTS.pack(1, an, ns, ar + 1),
                       body, fields, stored_sec, expires, stale_until))  # fmt: skip


def ttl_fields(entry: Entry) -> Iterator[tuple[int, int]]:
    """(offset in the entry's body, TTL as stored) of each of its records."""
    return _TTL_FIELD.iter_unpack(entry[TTL_FIELDS])


class _AgedBodies:
    """Entries' bodies with their TTLs aged to the current second, made once per second each:
    a repeated hit then costs a dict lookup and three byte concatenations."""

    def __init__(self) -> None:
        self.sec = -1
        # keyed by the entry itself: equal entries age alike, and no tuple is made per body
        self.bodies: dict[Entry, bytes] = {}

    def get(self, entry: Entry, sec: int) -> bytes:
        elapsed = sec - entry[STORED_SEC]
        if not elapsed:  # stored this second: its body holds these TTLs (a miss's own answer)
            return bytes(entry[BODY])
        if sec != self.sec:
            self.bodies.clear()
            self.sec = sec
        body = self.bodies.get(entry)
        if body is None:
            body = _with_ttls(entry, lambda ttl: max(ttl - elapsed, 0))
            self.bodies[entry] = body
        return body


_AGED: Final = _AgedBodies()


class AnswerCache:
    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._entries: OrderedDict[CacheKey, Entry] = _untracked(OrderedDict())
        self._servfail: dict[CacheKey, float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> Entry | None:
        """A fresh entry for `key`, or None (expired entries stay for serve-stale)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[EXPIRES] <= now:
            if entry[STALE_UNTIL] <= now:
                del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def get_stale(self, key: CacheKey, now: float) -> Entry | None:
        """An expired entry still within the serve-stale window (RFC 8767), or None."""
        entry = self._entries.get(key)
        if entry is None or not self.config.serve_stale or entry[STALE_UNTIL] <= now:
            return None
        return entry

    def put(self, key: CacheKey, reply: Reply, now: float) -> Entry:
        """Make an entry for a validated reply and store it if it is cacheable (TTL above 0).

        Raises BadReply for a reply that could not be rendered within a DNS message."""
        ttl = self._cache_ttl(reply)
        entry = self.entry_from(reply, now, self.config, ttl or 0)
        if ttl:
            self._entries[_untracked(key)] = entry
            self._entries.move_to_end(key)
            self._servfail.pop(key, None)
            while len(self._entries) > self.config.size:
                self._entries.popitem(last=False)
        return entry

    @staticmethod
    def entry_from(reply: Reply, now: float, cfg: CacheConfig, ttl: int = 0) -> Entry:
        """An entry for a validated reply: OPT cut out, TTLs clamped, living `ttl` seconds."""
        if reply.opt is not None and reply.opt[1] != len(reply.data):
            reply = without_opt(reply)  # records follow the OPT: they need their names moved
        data = reply.data
        qend = reply.qend
        offsets = reply.ttl_offsets
        arcount = reply.arcount
        if reply.opt is not None:
            start, end = reply.opt
            body = data[qend:start] + data[end:]
            cut = end - start
            offsets = [o if o < start else o - cut for o in offsets]
            arcount -= 1
        else:
            body = data[qend:]
        if qend + len(body) + _OPT_ROOM > MAX_MESSAGE:
            raise BadReply("too-big")  # with our OPT it would not fit a TCP message
        rel = tuple(o - qend for o in offsets)
        # Clamp to [min_ttl, max_ttl], and never promise more than the entry lives: a negative
        # answer's SOA must not tell clients to cache it past negative_max_ttl.
        cap = min(cfg.max_ttl, ttl) if ttl > 0 else cfg.max_ttl
        ttls = tuple(
            min(max(_TTL.unpack_from(data, o)[0] & 0x7FFFFFFF, cfg.min_ttl), cap)
            for o in reply.ttl_offsets
        )
        template = bytearray(body)
        for off, value in zip(rel, ttls, strict=True):
            _TTL.pack_into(template, off, value)
        flags = (reply.flags & ~(AA | TC | RD | CD)) | QR | RA
        stale = now + ttl + (cfg.stale_ttl if cfg.serve_stale else 0)
        return new_entry(
            flags,
            (reply.ancount, reply.nscount, arcount),
            bytes(template),
            rel,
            ttls,
            int(now),
            now + ttl,
            stale,
        )

    def _cache_ttl(self, reply: Reply) -> int | None:
        """How long a reply may be cached, or None when it must not be (RFC 2308, RFC 2181)."""
        cfg = self.config
        if reply.flags & TC:
            return None
        if reply.rcode == NOERROR and reply.ancount:
            base = reply.min_ttl or 0
            return min(max(base, cfg.min_ttl), cfg.max_ttl)
        if reply.rcode in (NOERROR, NXDOMAIN):
            if reply.neg_ttl is None:
                return None  # RFC 2308 section 5: no SOA, no negative caching
            return min(max(reply.neg_ttl, cfg.min_ttl), cfg.negative_max_ttl)
        return None

    def hottest(self, limit: int, max_bytes: int, now: float) -> list[tuple[CacheKey, Entry]]:
        """Up to `limit` (key, entry) pairs (`max_bytes` of answers) still fresh or stale-servable
        at `now`, most recently used first, for `adopt` in another process (entries are plain
        values: they pickle as they are).

        A worker that replaces one that died takes its share of the traffic the moment it binds;
        with an empty cache every allowed name is a miss for it (~30 times a hit's CPU), and its
        socket overflows under load. Times are `time.monotonic()`: CLOCK_MONOTONIC is the host's,
        the same in every process."""
        out: list[tuple[CacheKey, Entry]] = []
        size = 0
        for key, e in reversed(self._entries.items()):
            body = e[BODY]
            if len(out) >= limit or size + len(body) > max_bytes:
                break
            if e[STALE_UNTIL] <= now:
                continue
            out.append((key, e))
            size += len(body)
        return out

    def adopt(self, entries: Iterable[tuple[CacheKey, Entry]]) -> int:
        """Store another worker's `hottest` entries (most recently used first) that this cache
        lacks, below its own; how many were taken."""
        taken = 0
        for key, entry in entries:
            if len(self._entries) >= self.config.size:
                break
            if key not in self._entries:
                self._entries[_untracked(key)] = _untracked(entry)
                self._entries.move_to_end(key, last=False)
                taken += 1
        return taken

    def put_servfail(self, key: CacheKey, now: float) -> None:
        """Remember for a few seconds that nobody could answer `key` (RFC 2308 section 7.1)."""
        if self.config.servfail_ttl > 0:
            self._servfail[key] = now + self.config.servfail_ttl
            if len(self._servfail) > self.config.size:
                self._servfail.pop(next(iter(self._servfail)))

    def servfail_cached(self, key: CacheKey, now: float) -> bool:
        until = self._servfail.get(key)
        if until is None:
            return False
        if until <= now:
            del self._servfail[key]
            return False
        return True

    def flush(self, name: str | None = None) -> int:
        """Drop every entry, or those for one name; return how many went."""
        if name is None:
            count = len(self._entries)
            self._entries.clear()
            self._servfail.clear()
            return count
        name = name.lower().rstrip(".")
        doomed = [k for k in self._entries if k[0] == name]
        for key in doomed:
            del self._entries[key]
        for key in [k for k in self._servfail if k[0] == name]:
            del self._servfail[key]
        return len(doomed)


def render(entry: Entry, query: Query, now: float, stale: bool = False) -> bytes:
    """The cached answer for this query: its ID, its question case, TTLs aged to `now`."""
    flags = entry[FLAGS] | (query.flags & (RD | CD))
    if not (query.do or query.flags & AD):
        flags &= ~AD  # RFC 6840 5.8: AD only for clients that asked for DNSSEC information
    body = _with_ttls(entry, lambda ttl: STALE_TTL) if stale else _AGED.get(entry, int(now))
    head = _ID_FLAGS.pack(query.qid, flags)
    question = query.data[12 : query.qend]
    if query.edns:
        opt = OPT_DO if query.do else OPT_PLAIN
        return b"".join((head, entry[COUNTS_OPT], question, body, opt))
    return b"".join((head, entry[COUNTS], question, body))


def _with_ttls(entry: Entry, age: Callable[[int], int]) -> bytes:
    body = bytearray(entry[BODY])
    for off, ttl in ttl_fields(entry):
        _TTL.pack_into(body, off, age(ttl))
    return bytes(body)
