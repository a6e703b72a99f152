"""One query's way through the resolver, from bytes in to bytes out.

The stages run in this fixed order; the first that answers ends the query:

  1. read      header + question + OPT only (packet.read_query); malformed -> FORMERR (NOTIMP
               for an opcode other than QUERY) or drop
  2. access    client not in the allowed networks -> REFUSED with RA clear (never an open
               resolver); then, for UDP, the client's and its prefix's rate limits (ratelimit.py):
               over them -> TC=1 with the question only, or no answer. Encrypted DNS (DoT, DoH,
               DoQ) passes the identity the client presented: a known one picks the profile or
               device, whatever the address, under its own rate limit (-> REFUSED); an unknown
               or missing one is served only to an address the access list allows
  3. guards    opcode != QUERY -> NOTIMP (QR and opcode only); EDNS version > 0 -> BADVERS;
               `id.server` CH TXT -> which worker answered; other class != IN -> REFUSED;
               ANY -> one HINFO (RFC 8482); `_dns.resolver.arpa` SVCB with encrypted
               listeners on -> our own DoT/DoH/DoQ endpoints (DDR); zone transfers -> NOTIMP
               (NOTIFY, opcode 4, from a zone-transfer primary goes to `notify_sink`, before the
               access check too: a primary need not be a client)
  4. policy    the snapshot is read once per query, so a reload mid-query cannot mix two
               policies; block / NXDOMAIN / NODATA / REFUSED / rewrite answers are built here
  5. cache     byte-level hit: patch ID, flags and TTLs, echo the client's question
  6. forward   coalesced upstream exchange; reply validated, cached, then served like a hit;
               SERVFAIL (or stale data) within the query's time budget, whatever upstreams do

RA is set exactly when recursion is offered: a QUERY from a client in the access list.
Stages 1-5 are synchronous and return bytes; only stage 6 (and rewrites whose target is not
cached) return a coroutine, which the transport awaits. Synchronous UDP answers of stages 3-5
are offered to the fast path (`resolver.dns.fastanswers`), which repeats them to later queries
with the same bytes from clients of the same profile without coming here.

Each packet read becomes one `Context` (parse, client, transport, arrival, decision), which
the stages hand on; `Handler._done` fits, counts and logs every answer from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, Protocol

from resolver.dns.cache import FLAGS, AnswerCache, CacheKey, Entry, render
from resolver.dns.fastanswers import FOREVER, FastAnswers
from resolver.dns.message import BadReply, scan_reply
from resolver.dns.packet import CD, OPCODE_MASK, Malformed, Query, encode_name, read_query
from resolver.dns.ratelimit import RateLimiter
from resolver.dns.synth import (
    ADVERTISED_UDP_SIZE,
    EDE_CENSORED,
    EDE_FILTERED,
    EDE_NETWORK_ERROR,
    EDE_NO_REACHABLE_AUTHORITY,
    EDE_NOT_SUPPORTED,
    EDE_PROHIBITED,
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
    nodata,
    not_served,
    notimp,
    opt_record,
    truncated,
    txt_answer,
    unreadable,
)
from resolver.dns.upstream import Forwarder, UpstreamFailure
from resolver.dns.wire import address_rdata, compose_rewrite
from resolver.match.key import NameKey
from resolver.policy.decision import (
    ACT_ALLOW,
    ACT_NODATA,
    ACT_NXDOMAIN,
    ACT_REFUSED,
    ACT_REWRITE,
    MODE_BLOCKPAGE,
    MODE_NXDOMAIN,
    MODE_REFUSED,
    TIER_MANDATED,
    TIER_SAFESEARCH,
    Decision,
)
from resolver.stats import Stats
from resolver.store.events import QueryEvent

log = logging.getLogger(__name__)

Answer = bytes | Awaitable[bytes | None] | None
TYPE_HTTPS: Final = 65
TYPE_SVCB: Final = 64
DDR_TTL: Final = 300  # seconds clients may keep our DDR designation
TYPE_ANY: Final = 255
ZONE_TRANSFERS: Final = frozenset((251, 252, 253, 254))  # IXFR, AXFR, MAILB, MAILA
OPCODE_NOTIFY: Final = 4
REWRITE_TYPES: Final = frozenset((TYPE_A, TYPE_AAAA, TYPE_HTTPS))
QTYPE_NAMES: Final[dict[int, str]] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
    52: "TLSA", 64: "SVCB", 65: "HTTPS", 255: "ANY", 257: "CAA",
}  # fmt: skip
# Stats count cache hits and guard refusals apart; the query log uses the coarser vocabulary.
_LOG_ACTIONS: Final = {"cached": "allowed", "notimp": "refused", "formerr": "refused"}
PARSE_MEMO_SIZE = 65_536  # distinct query packets (ID aside) whose parse is kept: those the
# fast path does not answer (TCP, logged profiles, rate-limited clients): `_done` keeps no other
EDE_MEMO_SIZE: Final = 4_096  # decisions whose Extended DNS Error is kept
NULL_V4: Final = bytes(4)
NULL_V6: Final = bytes(16)
CLASS_CH: Final = 3
IDENTITY_NAMES: Final = frozenset(("id.server", "hostname.bind"))  # RFC 4892: which server answered


class PolicySource(Protocol):
    """Where the handler reads the policy it serves: (snapshot, this process's memo of it),
    one reference swapped whole on reload (`resolver.holder.SnapshotHolder`)."""

    serving: tuple[Any, Any] | None


class QueryLogSink(Protocol):
    def submit(self, event: QueryEvent) -> None: ...


class RollupSink(Protocol):
    """`resolver.rollup.Rollup`: every answer counted for the daily reports."""

    def count(
        self, profile: str, category: str, tier: str, action: str, qname: str, n: int = 1
    ) -> None: ...


class NotifySink(Protocol):
    """Answers NOTIFY from zone-transfer primaries (in a worker: asks the supervisor, which runs
    resolver.transfer.notify); None when it is not for us."""

    def wants(self, client: str) -> bool: ...

    async def notify(self, data: bytes, client: str) -> bytes | None: ...


# decide(snapshot, client, qname, qtype, now, ecs, key, memo, chosen); `now` is Unix time
# (datetime also accepted); `key` is the query's `name_key` pair, read with the packet; `chosen`
# the profile an encrypted-DNS identity selected (None: the client's address picks).
Decide = Callable[[Any, str, str, int, float, str | None, NameKey, Any, Any], Decision]


class Context:
    """One query on its way through the stages: the parse, who asked, over which transport,
    when it arrived, and what the policy decided (None until it has, or when none serves).

    Built once per packet that reaches the handler; the answer's bookkeeping (`Handler._done`)
    reads everything it counts and logs from here."""

    __slots__ = ("client", "decision", "fresh", "query", "started", "transport")

    def __init__(
        self, query: Query, client: str, transport: str, started: float, fresh: bool
    ) -> None:
        self.query = query
        self.client = client  # the address, or "device:NAME" once an identity names a device
        self.transport = transport
        self.started = started  # time.monotonic() when the packet reached the handler
        self.decision: Decision | None = None
        # A parse made for this packet, not the memo's: `_done` may keep it there
        self.fresh = fresh


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
        rollup: RollupSink | None = None,
        blockpage_v4: list[bytes] | None = None,
        blockpage_v6: list[bytes] | None = None,
        identity: str = "safe-resolver",
        limiter: RateLimiter | None = None,
        identity_limiter: RateLimiter | None = None,
        fast: FastAnswers | None = None,
    ) -> None:
        self.acl = acl
        self.limiter = limiter
        self.cache = cache
        self.forwarder = forwarder
        self.stats = stats
        self.policy = policy
        self.decide = decide
        self.querylog = querylog
        self.rollup = rollup
        self.blockpage_v4 = blockpage_v4 or []
        self.blockpage_v6 = blockpage_v6 or []
        self.identity = identity
        self.identity_limiter = identity_limiter
        # DDR (RFC 9462): SVCB records naming our encrypted endpoints, by query name; set by
        # `resolver.dns.encrypted` when encrypted listeners are on, else empty.
        self.ddr: dict[str, list[bytes]] = {}
        self.notify_sink: NotifySink | None = None  # set when the policy transfers zones
        self.fast = fast  # answers it may repeat without us (resolver.dns.fastanswers)
        self._parsed: dict[bytes, Query] = {}
        self._memo_misses = 0  # packets not memoized since the memo filled
        # Decisions are shared objects: their Extended DNS Error is worked out once each.
        self._ede: dict[int, tuple[Decision, tuple[int, str] | None]] = {}
        self._wall_sec = -1
        self._wall = time.time()

    # -- the pipeline -------------------------------------------------------------------------

    def answer(
        self, data: bytes, client: str, transport: str, identity: str | None = None
    ) -> Answer:
        """Bytes to send now, a coroutine producing them, or None to stay silent.

        `identity` is None for plain DNS; on encrypted DNS, what the client presented (a DoH
        path after /dns-query/, the first label of the TLS server name; "" for none)."""
        started = time.monotonic()
        # 1. read (memoized: clients repeat the same bytes but for the ID)
        query = self._parsed.get(data[2:])
        fresh = query is None
        if query is None:
            try:
                query = read_query(data)
            except Malformed as exc:
                self.stats.malformed[exc.reason] += 1
                if not exc.formerr:
                    return None
                return unreadable(data, exc.qid, self.acl.allows(client))
        else:
            # The shared parse gets this packet's ID. Synchronous answers use it before the next
            # packet is read; paths that await take a private parse instead (`_detach`).
            query.qid = (data[0] << 8) | data[1]
        ctx = Context(query, client, transport, started, fresh)
        # 2. access
        chosen = None
        if query.flags & OPCODE_MASK == OPCODE_NOTIFY << 11:
            # NOTIFY from a zone-transfer primary (RFC 1996), whether or not it is a client.
            notified = self._notify(ctx, data)
            if notified is not None:
                return notified
        if identity is None:
            if not self.acl.allows(client):
                return self._done(ctx, not_served(query), "refused")
        else:
            chosen = self.identified(identity)
            if chosen is None:
                if not self.acl.allows(client):
                    self.stats.dropped["identity-unknown"] += 1
                    resp = not_served(query, (EDE_PROHIBITED, "unknown identity"))
                    return self._done(ctx, resp, "refused")
            else:
                if chosen.device:
                    client = ctx.client = "device:" + chosen.device  # the log pseudonymizes it
                over = self._over_identity_limit(query, identity, started)
                if over is not None:
                    return over
        limiter = self.limiter
        if limiter is not None and transport == "udp":
            scope = limiter.check(client, started)
            if scope is not None:
                return self._limited(query, scope, limiter.config.action)
        # 3. guards
        qtype = query.qtype
        if query.flags & OPCODE_MASK:
            return self._done(ctx, notimp(query), "notimp")
        if query.edns and query.edns_version > 0:
            return self._done(ctx, badvers(query), "formerr")
        if query.qclass != 1:
            if query.qclass == CLASS_CH and qtype == 16 and query.qname in IDENTITY_NAMES:
                return self._done(ctx, txt_answer(query, self.identity), "allowed", until=FOREVER)
            ede = (EDE_NOT_SUPPORTED, "only class IN is served")
            return self._done(ctx, error_response(query, REFUSED, ede), "refused")
        if qtype == TYPE_ANY:
            return self._done(ctx, any_answer(query), "allowed")
        if qtype == TYPE_SVCB and self.ddr:
            designation = self.ddr.get(query.qname)
            if designation is not None:  # DDR: upgrade to our own encrypted endpoints
                resp = address_answer(query, TYPE_SVCB, designation, DDR_TTL)
                return self._done(ctx, resp, "allowed")
        if qtype in ZONE_TRANSFERS:
            return self._done(ctx, error_response(query, NOTIMP), "notimp")
        # 4. policy
        if self.policy is not None and self.decide is not None:
            serving = self.policy.serving
            if serving is not None:
                decision = ctx.decision = self.decide(
                    serving[0],
                    client,
                    query.qname,
                    qtype,
                    self._now_wall(started),
                    query.ecs,
                    query.key,
                    serving[1],
                    chosen,
                )
                if decision.action is not ACT_ALLOW:
                    return self._apply(ctx, decision)
        # 5. cache
        key: CacheKey = (query.qname, qtype, 1, query.do)
        entry = self.cache.get(key, started)
        if entry is not None:
            self.stats.cache_hits += 1
            resp = render(entry, query, started)
            return self._done(ctx, resp, "cached", cached=True, until=FOREVER, entry=entry)
        self.stats.cache_misses += 1
        # 6. forward
        return self._forward(self._detach(ctx), key)

    def _detach(self, ctx: Context) -> Context:
        """`ctx` with a parse of its own, for answers that await. A memoized parse leaves the
        memo with it: the next packet with the same bytes would give it its own ID, and a name
        that goes upstream is answered from the cache (or the fast path) next time, so its
        parse kept there would only be more long-lived objects for the collector to walk. (A
        fresh parse is never kept: `_done` keeps only those of answers it makes at once.)"""
        query = ctx.query
        data = query.data
        if not ctx.fresh:
            tail = data[2:]
            if self._parsed.get(tail) is query:
                del self._parsed[tail]
        ctx.fresh = False  # an answer made after awaiting: `_done` keeps no parse of it
        if (data[0] << 8) | data[1] != query.qid:  # a memo hit: the bytes are an earlier packet's
            ctx.query = query.own_copy()
        return ctx

    def _remember(self, query: Query) -> None:
        """Keep a parse for the packet's repeats (ID aside). Full, the memo keeps what it holds,
        so traffic with more distinct names than it has room for still hits on those, and starts
        over once as many packets have missed."""
        parsed = self._parsed
        if len(parsed) < PARSE_MEMO_SIZE:
            parsed[query.data[2:]] = query
            return
        self._memo_misses += 1
        if self._memo_misses >= PARSE_MEMO_SIZE:
            parsed.clear()
            self._memo_misses = 0

    def identified(self, identity: str) -> Any:
        """The profile or device variant `identity` selects in the policy serving now, or None."""
        serving = self.policy.serving if self.policy is not None else None
        if serving is None or not identity:
            return None
        return serving[0].identities.get(identity)

    def _over_identity_limit(self, query: Query, identity: str, now: float) -> bytes | None:
        """REFUSED when `identity` is over its rate (a leaked token used by many), else None."""
        limiter = self.identity_limiter
        if limiter is None or limiter.check(identity, now) is None:
            return None
        self.stats.ratelimited[("identity", "refuse")] += 1
        return not_served(query, (EDE_PROHIBITED, "rate limited"))

    def _limited(self, query: Query, scope: str, action: str) -> bytes | None:
        """Over a rate limit: TC=1 and the question only (no bigger than the query), so a real
        client retries over TCP where it is answered; or, with action drop, nothing."""
        self.stats.ratelimited[(scope, action)] += 1
        return None if action == "drop" else truncated(query)

    def _notify(self, ctx: Context, data: bytes) -> Answer | None:
        """The transfer manager's answer to a NOTIFY from a configured primary, or None (not
        ours: the usual REFUSED or NOTIMP follows)."""
        sink = self.notify_sink
        if sink is None or not sink.wants(ctx.client):
            return None
        return self._notified(sink, self._detach(ctx), data)

    async def _notified(self, sink: NotifySink, ctx: Context, data: bytes) -> bytes | None:
        resp = await sink.notify(data, ctx.client)
        if resp is None:
            resp = not_served(ctx.query)
        return self._done(ctx, resp, _rcode_action(resp))

    def _now_wall(self, monotonic_now: float) -> float:
        """Wall-clock Unix time for schedules, read at most once per second."""
        sec = int(monotonic_now)
        if sec != self._wall_sec:
            self._wall_sec = sec
            self._wall = time.time()
        return self._wall

    def _forward(self, ctx: Context, key: CacheKey) -> Answer:
        """The answer from upstream: a future the forwarder's callback completes (no task per
        query). A name upstream failed on lately gets the stale entry or SERVFAIL at once; one
        with an expired entry to fall back on takes `_forward_stale`."""
        now = time.monotonic()
        if self.cache.servfail_cached(key, now):
            return self._from_upstream(ctx, key, None)
        if self.cache.get_stale(key, now) is not None:
            return self._forward_stale(ctx, key)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        budget = self.forwarder.config.query_budget_ms / 1000
        self._ask(ctx.query, key, ctx.started + budget, partial(self._settle, ctx, key, future))
        return future

    def _settle(
        self,
        ctx: Context,
        key: CacheKey,
        future: asyncio.Future[bytes | None],
        entry: Entry | None,
    ) -> None:
        if future.done():
            return
        try:
            future.set_result(self._from_upstream(ctx, key, entry))
        except Exception as exc:  # reaches whoever awaits the answer, counted there
            future.set_exception(exc)

    async def _forward_stale(self, ctx: Context, key: CacheKey) -> bytes:
        """With an expired entry to fall back on (RFC 8767): the fresh answer, or the stale
        one when upstreams fail or at the client response timer (`stale_answer_ms`), while the
        refresh goes on until the query budget to update the cache."""
        cfg = self.forwarder.config
        refresh: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self._ask(ctx.query, key, ctx.started + cfg.query_budget_ms / 1000,
                  partial(_settle_once, refresh))  # fmt: skip
        stale_at = ctx.started + min(cfg.stale_answer_ms, cfg.query_budget_ms) / 1000
        await asyncio.wait((refresh,), timeout=max(stale_at - time.monotonic(), 0))
        return self._from_upstream(ctx, key, refresh.result() if refresh.done() else None)

    def _from_upstream(self, ctx: Context, key: CacheKey, entry: Entry | None) -> bytes:
        """The answer rendered from what upstream gave, counted; for nothing, the stale entry
        if serve_stale keeps one (RFC 8767), else SERVFAIL."""
        query = ctx.query
        stale = False
        if entry is None:
            entry, stale = self._stale(key, time.monotonic())
        if entry is None:
            resp = error_response(query, SERVFAIL, (EDE_NO_REACHABLE_AUTHORITY, "no upstream"))
            return self._done(ctx, resp, "servfail")
        resp = render(entry, query, time.monotonic(), stale=stale)
        if stale and query.edns:
            resp = _replace_opt(resp, opt_record(query.do, (EDE_STALE_ANSWER, "")))
        return self._done(ctx, resp, "allowed")

    def _ask(
        self, query: Query, key: CacheKey, deadline: float, then: Callable[[Entry | None], None]
    ) -> None:
        """Ask upstream by `deadline`, cache the reply, and hand `then` the entry (None when
        no usable reply came: counted, and remembered for servfail_ttl)."""
        data, qend = query.data, query.qend
        self.forwarder.start(
            data[12 : qend - 4].lower(),
            data[qend - 4 : qend],
            query.do,
            bool(query.flags & CD),
            deadline,
            partial(self._store, query, key, then),
        )

    def _store(
        self,
        query: Query,
        key: CacheKey,
        then: Callable[[Entry | None], None],
        reply: bytes | None,
        error: str,
    ) -> None:
        now = time.monotonic()
        entry: Entry | None = None
        if reply is None:  # counted per upstream by the forwarder
            log.debug("upstream failure for %s: %s", query.qname, error)
        else:
            try:
                entry = self.cache.put(key, scan_reply(reply), now)
            except BadReply as exc:
                self.stats.dropped[f"upstream-{exc.reason}"] += 1
        if entry is None or entry[FLAGS] & 0x000F == SERVFAIL:
            # Every upstream failed to resolve it: ask again only after servfail_ttl (RFC 2308 7.1).
            self.cache.put_servfail(key, now)
        self.stats.cache_size = len(self.cache)
        then(entry)

    def _stale(self, key: CacheKey, now: float) -> tuple[Entry | None, bool]:
        entry = self.cache.get_stale(key, now)
        if entry is not None:
            self.stats.cache_stale_served += 1
        return entry, entry is not None

    # -- answers the policy chose ----------------------------------------------------------------

    def _apply(self, ctx: Context, decision: Decision) -> Answer:
        """The answer for a decision other than ALLOW (`ctx.decision`)."""
        if decision.tier is TIER_MANDATED:  # an RPZ rewrite of a mandated name counts too
            self.stats.mandated_hits += 1
        action = decision.action
        query = ctx.query
        if action is ACT_REWRITE:
            return self._rewrite(ctx, decision)
        known = self._ede.get(id(decision))
        if known is not None and known[0] is decision:
            ede = known[1]
        else:
            ede = _ede_for(decision)
            if len(self._ede) >= EDE_MEMO_SIZE:
                self._ede.clear()
            self._ede[id(decision)] = (decision, ede)
        if action is ACT_NXDOMAIN:
            resp = error_response(query, NXDOMAIN, ede)
        elif action is ACT_NODATA:
            resp = nodata(query, ede)
        elif action is ACT_REFUSED:
            resp = error_response(query, REFUSED, ede)
        else:
            resp = self._blocked(query, decision, ede)
        label = "refused" if action is ACT_REFUSED else "blocked"
        return self._done(ctx, resp, label, until=FOREVER)

    def _blocked(self, query: Query, decision: Decision, ede: tuple[int, str] | None) -> bytes:
        mode = decision.block_mode
        if mode is MODE_BLOCKPAGE and not (self.blockpage_v4 or self.blockpage_v6):
            mode = MODE_NXDOMAIN  # no block page to point at: the quiet answer instead
        if mode is MODE_NXDOMAIN:
            return error_response(query, NXDOMAIN, ede)
        if mode is MODE_REFUSED:
            return error_response(query, REFUSED, ede)
        if query.qtype == TYPE_A:
            addrs = self.blockpage_v4 if mode is MODE_BLOCKPAGE else [NULL_V4]
        elif query.qtype == TYPE_AAAA:
            addrs = self.blockpage_v6 if mode is MODE_BLOCKPAGE else [NULL_V6]
        else:
            addrs = []
        if not addrs:
            return nodata(query, ede)
        qtype = query.qtype
        return address_answer(query, qtype, addrs, decision.ttl, ede)

    def _rewrite(self, ctx: Context, decision: Decision) -> Answer:
        query = ctx.query
        target = decision.target or ""
        if query.qtype not in REWRITE_TYPES:
            return self._done(ctx, nodata(query), "rewritten", until=FOREVER)
        if _is_ip(target):
            # Rewrite to an address (RPZ A/AAAA, Yandex): answer it, or NODATA for the other family.
            literal = address_rdata(target, query.qtype)
            resp = (
                address_answer(query, query.qtype, [literal], decision.ttl)
                if literal is not None
                else nodata(query)
            )
            return self._done(ctx, resp, "rewritten", until=FOREVER)
        key: CacheKey = (f"{query.qname}\0{target}", query.qtype, 1, query.do)
        entry = self.cache.get(key, ctx.started)
        if entry is not None:
            self.stats.cache_hits += 1
            resp = render(entry, query, ctx.started)
            return self._done(ctx, resp, "rewritten", cached=True, until=FOREVER, entry=entry)
        return self._compose(self._detach(ctx), decision, key)

    async def _compose(self, ctx: Context, decision: Decision, key: CacheKey) -> bytes | None:
        query = ctx.query
        target = decision.target or ""
        type_class = query.data[query.qend - 4 : query.qend]
        deadline = ctx.started + self.forwarder.config.query_budget_ms / 1000
        try:
            name = encode_name(target).lower()
            reply = await self.forwarder.resolve(
                name, type_class, query.do, bool(query.flags & CD), deadline
            )
            info = compose_rewrite(query, target, scan_reply(reply), decision.ttl)
            now = time.monotonic()
            entry = self.cache.put(key, info, now)
        except UpstreamFailure as exc:  # counted per upstream by the forwarder
            log.debug("rewrite of %s to %s failed: %s", query.qname, target, exc)
            resp = error_response(query, SERVFAIL, (EDE_NO_REACHABLE_AUTHORITY, "rewrite target"))
            return self._done(ctx, resp, "servfail")
        except BadReply as bad:  # the target's reply, or the answer made of it, is unusable
            # (not `exc` again: a mypyc build would give it the first clause's type)
            self.stats.dropped[f"upstream-{bad.reason}"] += 1
            ede = (EDE_NETWORK_ERROR, "unusable upstream reply")
            resp = error_response(query, SERVFAIL, ede)
            return self._done(ctx, resp, "servfail")
        except ValueError:  # a target the policy should never have let through
            self.stats.dropped["rewrite-target"] += 1
            resp = error_response(query, SERVFAIL, (EDE_NETWORK_ERROR, "bad rewrite target"))
            return self._done(ctx, resp, "servfail")
        resp = render(entry, query, now)
        return self._done(ctx, resp, "rewritten")

    # -- bookkeeping -----------------------------------------------------------------------------

    def _done(
        self,
        ctx: Context,
        resp: bytes,
        action: str,
        *,
        cached: bool = False,
        until: float = 0.0,
        entry: Entry | None = None,
    ) -> bytes:
        """Fit the answer to the transport, count it, log it, or offer it to the fast path
        (`action`: the stats label; `cached`: rendered from the cache; `until`: how long its
        source stands behind it, 0 for never; `entry`: the cache entry it was rendered from)."""
        query = ctx.query
        transport = ctx.transport
        started = ctx.started
        decision = ctx.decision
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
        if self.rollup is not None:  # every answer, `log: false` profiles too (no client)
            if decision is None:
                self.rollup.count("", "", "", action, query.qname)
            else:
                self.rollup.count(
                    decision.profile, decision.category or "", decision.tier, action, query.qname
                )
        if self.querylog is not None and (decision is None or decision.log):
            self.querylog.submit(
                QueryEvent(
                    time.time(),
                    ctx.client,
                    decision.profile if decision else "",
                    query.qname,
                    qtype_name,
                    _LOG_ACTIONS.get(action, action),
                    str(decision.tier) if decision else "",
                    decision.category if decision else None,
                    resp[3] & 0x0F,
                    elapsed * 1000.0,
                    transport,
                    cached,
                )
            )
        elif (
            until
            and self.fast is not None
            and transport == "udp"
            and self.fast.offer(
                query, ctx.client, resp, until, started, self._wall, key, decision, entry
            )
        ):
            # Its repeats are the fast path's now, or this was its first sighting: the parse
            # memo keeps the parses of packets that come back here (logged profiles, TCP).
            if not ctx.fresh:
                self._parsed.pop(query.data[2:], None)
            return resp
        if ctx.fresh:
            self._remember(query)
        return resp


def _settle_once(future: asyncio.Future[Entry | None], entry: Entry | None) -> None:
    if not future.done():
        future.set_result(entry)


def _rcode_action(resp: bytes) -> str:
    return "allowed" if resp[3] & 0x0F == 0 else "refused"


def _ede_for(decision: Decision) -> tuple[int, str] | None:
    """The Extended DNS Error (RFC 8914) a policy answer carries."""
    if decision.tier is TIER_MANDATED:
        return (EDE_CENSORED, "mandated by the authorities")
    if decision.tier is TIER_SAFESEARCH:
        return None  # NODATA for a search host's other types: nothing was filtered
    return (EDE_FILTERED, f"{decision.tier.value}: {decision.category or decision.rule}")


def _replace_opt(resp: bytes, opt: bytes) -> bytes:
    """Swap the trailing OPT record our renderer appended for another one (same ARCOUNT)."""
    # Our OPT without options is always the last 11 bytes of a rendered answer.
    return resp[:-11] + opt


def _is_ip(text: str) -> bool:
    return address_rdata(text, TYPE_A) is not None or address_rdata(text, TYPE_AAAA) is not None
