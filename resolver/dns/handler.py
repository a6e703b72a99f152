"""One query's way through the resolver, from bytes in to bytes out.

The stages run in this fixed order; the first that answers ends the query:

  1. read      header + question + OPT only (packet.read_query); malformed -> FORMERR or drop
  2. access    client not in the allowed networks -> REFUSED (never an open resolver)
  3. guards    opcode != QUERY -> NOTIMP; EDNS version > 0 -> BADVERS; `id.server` CH TXT ->
               which worker answered; other class != IN -> REFUSED; ANY -> one HINFO
               (RFC 8482); zone transfers -> NOTIMP
  4. policy    the snapshot is read once per query, so a reload mid-query cannot mix two
               policies; block / NXDOMAIN / NODATA / REFUSED / rewrite answers are built here
  5. cache     byte-level hit: patch ID, flags and TTLs, echo the client's question
  6. forward   coalesced upstream exchange; reply validated, cached, then served like a hit

Stages 1-5 are synchronous and return bytes; only stage 6 (and rewrites whose target is not
cached) return a coroutine, which the transport awaits. Synchronous UDP answers of stages 3-5
are offered to the fast path (`resolver.dns.fastanswers`), which repeats them to later queries
with the same bytes from clients of the same profile without coming here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from resolver.dns.cache import AnswerCache, CacheKey, Entry, render
from resolver.dns.fastanswers import FOREVER, FastAnswers
from resolver.dns.message import BadReply, scan_reply
from resolver.dns.packet import CD, Malformed, Query, encode_name, read_query
from resolver.dns.synth import (
    ADVERTISED_UDP_SIZE,
    EDE_CENSORED,
    EDE_FILTERED,
    EDE_NO_REACHABLE_AUTHORITY,
    EDE_NOT_SUPPORTED,
    EDE_STALE_ANSWER,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    address_answer,
    any_answer,
    badvers,
    error_response,
    formerr,
    nodata,
    opt_record,
    truncated,
    txt_answer,
)
from resolver.dns.upstream import Forwarder, UpstreamFailure
from resolver.dns.wire import ComposeError, address_rdata, compose_rewrite
from resolver.match.key import NameKey
from resolver.policy.decision import Action, BlockMode, Decision, Tier
from resolver.stats import Stats
from resolver.store.events import QueryEvent

log = logging.getLogger(__name__)

Answer = bytes | Coroutine[Any, Any, bytes | None] | None
TYPE_HTTPS = 65
TYPE_ANY = 255
ZONE_TRANSFERS = frozenset((251, 252, 253, 254))  # IXFR, AXFR, MAILB, MAILA
REWRITE_TYPES = frozenset((TYPE_A, TYPE_AAAA, TYPE_HTTPS))
QTYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
    52: "TLSA", 64: "SVCB", 65: "HTTPS", 255: "ANY", 257: "CAA",
}  # fmt: skip
# Stats count cache hits and guard refusals apart; the query log uses the coarser vocabulary.
_LOG_ACTIONS = {"cached": "allowed", "notimp": "refused", "formerr": "refused"}
PARSE_MEMO_SIZE = 65_536  # distinct query packets (ID aside) whose parse is kept
EDE_MEMO_SIZE = 4_096  # decisions whose Extended DNS Error is kept
NULL_V4 = bytes(4)
NULL_V6 = bytes(16)
CLASS_CH = 3
IDENTITY_NAMES = frozenset(("id.server", "hostname.bind"))  # RFC 4892: which server answered


class PolicySource(Protocol):
    """Where the handler reads the current policy snapshot (swapped atomically on reload)."""

    current: Any


class QueryLogSink(Protocol):
    def submit(self, event: QueryEvent) -> None: ...


# decide(snapshot, client, qname, qtype, now, ecs, key); `now` is Unix time (datetime also
# accepted); `key` is the query's `name_key` pair, read with the packet.
Decide = Callable[[Any, str, str, int, float, str | None, NameKey], Decision]


class Handler:
    def __init__(
        self,
        *,
        acl: Any,
        cache: AnswerCache,
        forwarder: Forwarder,
        stats: Stats,
        policy: PolicySource | None = None,
        decide: Decide | None = None,
        querylog: QueryLogSink | None = None,
        blockpage_v4: list[bytes] | None = None,
        blockpage_v6: list[bytes] | None = None,
        identity: str = "safe-resolver",
        fast: FastAnswers | None = None,
    ) -> None:
        self.acl = acl
        self.cache = cache
        self.forwarder = forwarder
        self.stats = stats
        self.policy = policy
        self.decide = decide
        self.querylog = querylog
        self.blockpage_v4 = blockpage_v4 or []
        self.blockpage_v6 = blockpage_v6 or []
        self.identity = identity
        self.fast = fast  # answers it may repeat without us (resolver.dns.fastanswers)
        self._parsed: dict[bytes, Query] = {}
        self._memo_misses = 0  # packets not memoized since the memo filled
        # Decisions are shared objects: their Extended DNS Error is worked out once each.
        self._ede: dict[int, tuple[Decision, tuple[int, str] | None]] = {}
        self._wall_sec = -1
        self._wall = time.time()

    # -- the pipeline -------------------------------------------------------------------------

    def answer(self, data: bytes, client: str, transport: str) -> Answer:
        """Bytes to send now, a coroutine producing them, or None to stay silent."""
        started = time.monotonic()
        # 1. read (memoized: clients repeat the same bytes but for the ID)
        query = self._parsed.get(data[2:])
        if query is None:
            try:
                query = read_query(data)
            except Malformed as exc:
                self.stats.malformed[exc.reason] += 1
                return formerr(data, exc.qid) if exc.formerr else None
            if len(self._parsed) < PARSE_MEMO_SIZE:
                self._parsed[data[2:]] = query
            else:
                # Full: keep what it holds, so traffic with more distinct names than it has
                # room for still hits on those; start over once as many packets have missed.
                self._memo_misses += 1
                if self._memo_misses >= PARSE_MEMO_SIZE:
                    self._parsed.clear()
                    self._memo_misses = 0
        else:
            # The shared parse gets this packet's ID. Synchronous answers use it before the next
            # packet is read; paths that await take a private parse instead (see _private).
            query.qid = (data[0] << 8) | data[1]
        # 2. access
        if not self.acl.allows(client):
            return self._done(
                query, client, error_response(query, REFUSED), transport, started, "refused"
            )
        # 3. guards
        qtype = query.qtype
        if query.flags & 0x7800:
            return self._done(
                query, client, error_response(query, NOTIMP), transport, started, "notimp"
            )
        if query.edns and query.edns_version > 0:
            return self._done(query, client, badvers(query), transport, started, "formerr")
        if query.qclass != 1:
            if query.qclass == CLASS_CH and qtype == 16 and query.qname in IDENTITY_NAMES:
                resp = txt_answer(query, self.identity)
                return self._done(query, client, resp, transport, started, "allowed", until=FOREVER)
            ede = (EDE_NOT_SUPPORTED, "only class IN is served")
            resp = error_response(query, REFUSED, ede)
            return self._done(query, client, resp, transport, started, "refused")
        if qtype == TYPE_ANY:
            return self._done(query, client, any_answer(query), transport, started, "allowed")
        if qtype in ZONE_TRANSFERS:
            return self._done(
                query, client, error_response(query, NOTIMP), transport, started, "notimp"
            )
        # 4. policy
        decision: Decision | None = None
        if self.policy is not None and self.decide is not None:
            snapshot = self.policy.current
            if snapshot is not None:
                decision = self.decide(
                    snapshot,
                    client,
                    query.qname,
                    qtype,
                    self._now_wall(started),
                    query.ecs,
                    query.key,
                )
                if decision.action is not Action.ALLOW:
                    return self._apply(query, client, decision, transport, started)
        # 5. cache
        key: CacheKey = (query.qname, qtype, 1, query.do)
        entry = self.cache.get(key, started)
        if entry is not None:
            self.stats.cache_hits += 1
            resp = render(entry, query, started)
            return self._done(
                query, client, resp, transport, started, "cached", decision, True, FOREVER, entry
            )
        self.stats.cache_misses += 1
        # 6. forward
        return self._forward(_private(query), client, key, transport, started, decision)

    def _now_wall(self, monotonic_now: float) -> float:
        """Wall-clock Unix time for schedules, read at most once per second."""
        sec = int(monotonic_now)
        if sec != self._wall_sec:
            self._wall_sec = sec
            self._wall = time.time()
        return self._wall

    async def _forward(
        self,
        query: Query,
        client: str,
        key: CacheKey,
        transport: str,
        started: float,
        decision: Decision | None,
    ) -> bytes | None:
        entry, stale = await self._fetch(query, key, query.data[12 : query.qend - 4].lower())
        if entry is None:
            resp = error_response(query, SERVFAIL, (EDE_NO_REACHABLE_AUTHORITY, "no upstream"))
            return self._done(query, client, resp, transport, started, "servfail", decision)
        resp = render(entry, query, time.monotonic(), stale=stale)
        if stale and query.edns:
            resp = _replace_opt(resp, opt_record(query.do, (EDE_STALE_ANSWER, "")))
        return self._done(query, client, resp, transport, started, "allowed", decision)

    async def _fetch(
        self, query: Query, key: CacheKey, name_lower: bytes
    ) -> tuple[Entry | None, bool]:
        """Cache entry for `key` after asking upstream; (None, False) on failure.

        Serves stale (RFC 8767) when upstreams fail and the configuration allows it.
        """
        now = time.monotonic()
        if self.cache.servfail_cached(key, now):
            return self._stale(key, now)
        type_class = query.data[query.qend - 4 : query.qend]
        try:
            reply = await self.forwarder.resolve(
                name_lower, type_class, query.do, bool(query.flags & CD)
            )
            info = scan_reply(reply)
        except UpstreamFailure as exc:
            log.debug("upstream failure for %s: %s", query.qname, exc)
            self.cache.put_servfail(key, time.monotonic())
            return self._stale(key, time.monotonic())
        except BadReply as exc:
            self.stats.dropped[f"upstream-{exc.reason}"] += 1
            self.cache.put_servfail(key, time.monotonic())
            return self._stale(key, time.monotonic())
        now = time.monotonic()
        if info.rcode == SERVFAIL:
            # Every upstream failed to resolve it: ask again only after servfail_ttl (RFC 2308 7.1).
            self.cache.put_servfail(key, now)
        entry = self.cache.put(key, info, now)
        self.stats.cache_size = len(self.cache)
        return entry, False

    def _stale(self, key: CacheKey, now: float) -> tuple[Entry | None, bool]:
        entry = self.cache.get_stale(key, now)
        if entry is not None:
            self.stats.cache_stale_served += 1
        return entry, entry is not None

    # -- answers the policy chose ----------------------------------------------------------------

    def _apply(
        self, query: Query, client: str, decision: Decision, transport: str, started: float
    ) -> Answer:
        action = decision.action
        if action is Action.REWRITE:
            return self._rewrite(query, client, decision, transport, started)
        if decision.tier is Tier.MANDATED:
            self.stats.mandated_hits += 1
        known = self._ede.get(id(decision))
        if known is not None and known[0] is decision:
            ede = known[1]
        else:
            ede = _ede_for(decision)
            if len(self._ede) >= EDE_MEMO_SIZE:
                self._ede.clear()
            self._ede[id(decision)] = (decision, ede)
        if action is Action.NXDOMAIN:
            resp = error_response(query, NXDOMAIN, ede)
        elif action is Action.NODATA:
            resp = nodata(query, ede)
        elif action is Action.REFUSED:
            resp = error_response(query, REFUSED, ede)
        else:
            resp = self._blocked(query, decision, ede)
        label = "refused" if action is Action.REFUSED else "blocked"
        return self._done(query, client, resp, transport, started, label, decision, until=FOREVER)

    def _blocked(self, query: Query, decision: Decision, ede: tuple[int, str] | None) -> bytes:
        mode = decision.block_mode
        if mode is BlockMode.BLOCKPAGE and not (self.blockpage_v4 or self.blockpage_v6):
            mode = BlockMode.NXDOMAIN  # no block page to point at: the quiet answer instead
        if mode is BlockMode.NXDOMAIN:
            return error_response(query, NXDOMAIN, ede)
        if mode is BlockMode.REFUSED:
            return error_response(query, REFUSED, ede)
        if query.qtype == TYPE_A:
            addrs = self.blockpage_v4 if mode is BlockMode.BLOCKPAGE else [NULL_V4]
        elif query.qtype == TYPE_AAAA:
            addrs = self.blockpage_v6 if mode is BlockMode.BLOCKPAGE else [NULL_V6]
        else:
            addrs = []
        if not addrs:
            return nodata(query, ede)
        qtype = query.qtype
        return address_answer(query, qtype, addrs, decision.ttl, ede)

    def _rewrite(
        self, query: Query, client: str, decision: Decision, transport: str, started: float
    ) -> Answer:
        target = decision.target or ""
        if query.qtype not in REWRITE_TYPES:
            return self._done(
                query, client, nodata(query), transport, started, "rewritten", decision,
                until=FOREVER,
            )  # fmt: skip
        if _is_ip(target):
            # Rewrite to an address (RPZ A/AAAA, Yandex): answer it, or NODATA for the other family.
            literal = address_rdata(target, query.qtype)
            resp = (
                address_answer(query, query.qtype, [literal], decision.ttl)
                if literal is not None
                else nodata(query)
            )
            return self._done(
                query, client, resp, transport, started, "rewritten", decision, until=FOREVER
            )
        key: CacheKey = (f"{query.qname}\0{target}", query.qtype, 1, query.do)
        entry = self.cache.get(key, started)
        if entry is not None:
            self.stats.cache_hits += 1
            resp = render(entry, query, started)
            return self._done(
                query, client, resp, transport, started, "rewritten", decision, True, FOREVER,
                entry,
            )  # fmt: skip
        return self._compose(_private(query), client, decision, key, transport, started)

    async def _compose(
        self,
        query: Query,
        client: str,
        decision: Decision,
        key: CacheKey,
        transport: str,
        started: float,
    ) -> bytes | None:
        target = decision.target or ""
        type_class = query.data[query.qend - 4 : query.qend]
        try:
            reply = await self.forwarder.resolve(
                encode_name(target), type_class, query.do, bool(query.flags & CD)
            )
            scan_reply(reply)
            composed = compose_rewrite(query, target, reply, decision.ttl)
            info = scan_reply(composed)
        except (UpstreamFailure, BadReply, ComposeError, ValueError) as exc:
            log.debug("rewrite of %s to %s failed: %s", query.qname, target, exc)
            resp = error_response(query, SERVFAIL, (EDE_NO_REACHABLE_AUTHORITY, "rewrite target"))
            return self._done(query, client, resp, transport, started, "servfail", decision)
        now = time.monotonic()
        resp = render(self.cache.put(key, info, now), query, now)
        return self._done(query, client, resp, transport, started, "rewritten", decision)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _done(
        self,
        query: Query,
        client: str,
        resp: bytes,
        transport: str,
        started: float,
        action: str,
        decision: Decision | None = None,
        cached: bool = False,
        until: float = 0.0,
        entry: Entry | None = None,
    ) -> bytes:
        """Fit the answer to the transport, count it, log it, or offer it to the fast path
        (`until`: how long its source stands behind it, 0 for never; `entry`: the cache entry
        it was rendered from)."""
        # RFC 6891: never more than the client's UDP size, nor more than we advertise.
        limit = min(query.udp_size, ADVERTISED_UDP_SIZE) if query.edns else 512
        if transport == "udp" and len(resp) > limit:
            resp = truncated(query)
        stats = self.stats
        elapsed = time.monotonic() - started
        stats.observe_latency(elapsed)
        qtype_name = QTYPE_NAMES.get(query.qtype, "other")
        if decision is None:
            key = (transport, qtype_name, action, "", "")
        else:
            key = (transport, qtype_name, action, decision.profile, decision.category or "")
        stats.queries[key] += 1
        if self.querylog is not None and (decision is None or decision.log):
            self.querylog.submit(
                QueryEvent(
                    time.time(),
                    client,
                    decision.profile if decision else "",
                    query.qname,
                    qtype_name,
                    _LOG_ACTIONS.get(action, action),
                    decision.tier.value if decision else "",
                    decision.category if decision else None,
                    resp[3] & 0x0F,
                    elapsed * 1000.0,
                    transport,
                    cached,
                )
            )
        elif until and self.fast is not None and transport == "udp":
            self.fast.offer(query, client, resp, until, started, self._wall, key, decision, entry)
        return resp


def _ede_for(decision: Decision) -> tuple[int, str] | None:
    """The Extended DNS Error (RFC 8914) a policy answer carries."""
    if decision.tier is Tier.MANDATED:
        return (EDE_CENSORED, "mandated by the authorities")
    if decision.tier is Tier.SAFESEARCH:
        return None  # NODATA for a search host's other types: nothing was filtered
    return (EDE_FILTERED, f"{decision.tier.value}: {decision.category or decision.rule}")


def _private(query: Query) -> Query:
    """A parse of this packet that no later packet will touch, for answers that await."""
    return read_query(query.qid.to_bytes(2, "big") + query.data[2:])


def _replace_opt(resp: bytes, opt: bytes) -> bytes:
    """Swap the trailing OPT record our renderer appended for another one (same ARCOUNT)."""
    # Our OPT without options is always the last 11 bytes of a rendered answer.
    return resp[:-11] + opt


def _is_ip(text: str) -> bool:
    return address_rdata(text, TYPE_A) is not None or address_rdata(text, TYPE_AAAA) is not None
