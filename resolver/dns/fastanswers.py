"""Which answers the fast path may repeat, for which clients, until when, and how they count.

The handler offers every synchronous UDP answer it makes on the policy, cache and `id.server`
paths (`Handler._done`). It is stored only when repeating it (with the query's ID and name
case, and a cache answer's TTLs counted down) is what the handler would answer any query with
the same bytes from a client of the same class until `valid_until`:

- the class is the client's profile number + 1 (1 without a policy): the policy decides by
  profile, and nothing else about the client reaches the answer;
- a decision depends on the time only through its profile's state (schedules, minute by
  minute), so it holds until the first minute whose state differs, looked for up to
  HORIZON_MINUTES ahead (for ever without schedules). Ending every decision at its minute's
  end would send every repeated name back to Python at once each minute: 100k blocked names
  cost ~3 s of one core then;
- a cache answer holds until its entry expires; its TTLs are counted down in the fast path;
- a reload or a cache flush clears the whole table (`clear`), and so does a step of the wall
  clock (`watch_clock`), which would move schedule boundaries against the monotonic clock;
- a policy or `id.server` answer is stored from its query's second sighting on (the table's
  doorkeeper, `admit`): a query answered once and never again (random subdomains, one-off
  lookups: most first-seen names) costs no table slot, counter or install, nor its parse a
  place in the parse memo, and a flood of unique names cannot push the repeated answers out.
  A cache answer is stored at once: its entry is the earlier sighting;
- never stored: answers whose query must reach the query log, EDNS Client Subnet queries (the
  profile may come from the subnet), truncated (TC) answers and SERVFAIL, TCP answers, and
  anything answered after awaiting upstream (those never reach here with `until`).

What the fast path answers is counted here exactly as the handler counts it: each stored
answer carries the id of its counter (the `Stats` key, and the roll-up key of the reports,
with the name for a blocked answer), and `harvest_into` adds the hits to `Stats` and the
roll-up (latency: the batch's mean time, first bucket). Named counters are bounded by the
table's size (each is for a stored answer; about 300 bytes each): past that many blocked names
the table starts over at the next harvest.

Rate limits (`resolver.dns.ratelimit`) hold for repeated answers too: a client's entry in the
table carries a credit of LEASE answers, charged to its buckets in advance; its query after
the last one comes here, where the limiter decides, and the next offer grants a new credit
and refunds what was left.

Behind a load balancer (`proxy_protocol_from`) the handler sees the client each PROXY v2 header
names, so its answers are offered for that client's class and credit, as for a direct client;
the table is given the balancers' networks (`set_balancers`) and repeats answers to datagrams
whose header names a client it knows, back to the balancer. The balancer itself is never made
a client of the table: a datagram it sends without a header, or with a LOCAL one, always reaches
the PROXY gate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from resolver.dns.acl import AccessList
from resolver.dns.cache import EXPIRES, Entry, ttl_fields
from resolver.dns.fastpath import FastPathLike, address_bytes
from resolver.dns.packet import Query
from resolver.dns.ratelimit import RateLimiter
from resolver.policy.decision import ACT_REWRITE, TIER_MANDATED, Decision
from resolver.rollup import Rollup, named
from resolver.stats import Stats

FOREVER: Final = math.inf  # an answer only a reload or a flush changes (policy answers, id.server)
HORIZON_MINUTES: Final = 60  # how far ahead a profile's schedules are looked at for a state change
CLOCK_STEP: Final = 1.0  # seconds the wall clock may move against the monotonic one unnoticed
LEASE: Final = 64  # answers a rate-limited client may get from the table per grant
StatsKey = tuple[str, str, str, str, str]  # Stats.queries' key
RollupKey = tuple[str, str, str, str, str | None]  # Rollup.count's arguments, name or None
Counter = tuple[StatsKey, bool, bool, RollupKey]  # key, from the cache, mandated, roll-up
_TC: Final = 0x02  # in the answer's third byte
_SERVFAIL: Final = 2


class FastAnswers:
    """The handler's side of one worker's fast path: installs answers, folds in the counts."""

    def __init__(
        self,
        table: FastPathLike,
        policy: Any | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic_clock: Callable[[], float] = time.monotonic,
        clients: int = 65_536,
        named: int = 200_000,
        limiter: RateLimiter | None = None,
        balancers: AccessList | None = None,
        names: bool = True,
    ) -> None:
        self.table = table
        self.policy = policy  # .serving is (snapshot, memo) (resolver.holder.SnapshotHolder)
        self.wall_clock = wall_clock
        self.monotonic_clock = monotonic_clock
        self.limiter = limiter  # the handler's UDP rate limiter, if any
        self.balancers = balancers  # proxy_protocol_from, if set
        if balancers is not None:
            table.set_balancers(
                [(n.network_address.packed, n.prefixlen) for n in balancers.networks]
            )
        self._ids: dict[Counter, int] = {}
        self._counters: list[Counter] = []
        self._named = 0  # counters carrying a name
        self._named_limit = max(1, named)
        # Whether roll-up keys carry the blocked name: only a roll-up reads it, and without
        # one a counter per blocked name would only fill `_ids` and start the table over
        # every `named` names.
        self.names = names
        # profile -> (minute, Unix time its state changes): worked out once a minute each
        self._stable: dict[Any, tuple[int, float]] = {}
        self._offset = wall_clock() - monotonic_clock()
        # Clients whose class the table was given (so an install does not convert and pass the
        # address again): a client the full table evicted meanwhile is given again once this
        # starts over, at the table's size.
        self._clients: dict[str, int] = {}
        self._clients_limit = max(1, clients)

    def offer(
        self,
        query: Query,
        client: str,
        resp: bytes,
        until: float,
        started: float,
        wall: float,
        key: StatsKey,
        decision: Decision | None,
        entry: Entry | None,
    ) -> bool:
        """Store `resp` if it may be repeated (see the module docstring). `until` is when its
        source stops standing behind it (monotonic), `started` when the query came in,
        `wall` the Unix time the decision was made for, `entry` the cache entry it came from.
        True when the parse memo need not keep the query's parse: the table will answer this
        client's repeats of it, or this was its first sighting."""
        if query.ecs is not None or resp[2] & _TC or resp[3] & 0x0F == _SERVFAIL:
            return False
        serving = self.policy.serving if self.policy is not None else None
        profile = serving[1].profile(client) if serving is not None else None
        klass = profile.num + 1 if profile is not None else 1
        if entry is None and not self.table.admit(klass, query.data):
            return True  # a first sighting: most never come back, and a repeat is parsed anew
        if decision is not None and profile is not None:
            stands = self.decision_stands_until(profile, wall)
            if stands != FOREVER:
                until = min(until, started + stands - self.wall_clock())
        ttls: list[int] = []
        if entry is not None:
            until = min(until, entry[EXPIRES])
            ttls = [query.qend + offset for offset, _ in ttl_fields(entry)]
        if until <= started:
            return False
        mandated = (
            decision is not None
            and decision.tier is TIER_MANDATED
            and decision.action is not ACT_REWRITE
        )
        action = key[2]
        if decision is None:
            rollup: RollupKey = ("", "", "", action, None)
        else:
            tier = str(decision.tier)  # its value (a StrEnum's str)
            name = query.qname if self.names and named(tier, action) else None
            rollup = (decision.profile, decision.category or "", tier, action, name)
        counter = (key, entry is not None, mandated, rollup)
        stats_id = self._ids.get(counter)
        if stats_id is None:
            if rollup[4] is not None:
                if self._named >= self._named_limit:
                    return False  # the table starts over at the next harvest
                self._named += 1
            stats_id = self._ids[counter] = len(self._counters)
            self._counters.append(counter)
        if not self.table.put(klass, query.data, resp, until, stats_id, ttls, int(started)):
            return False
        if self.balancers is not None and self.balancers.allows(client):
            return False  # a balancer's own query (LOCAL): never repeated from the table
        limiter = self.limiter
        if limiter is not None:
            credit = limiter.lease(client, started, LEASE)
            left = self.table.set_client(address_bytes(client), klass, credit)
            limiter.refund(client, left)
            return credit != 0
        known = self._clients
        if known.get(client) != klass:
            if len(known) >= self._clients_limit:
                known.clear()
            known[client] = klass
            self.table.set_client(address_bytes(client), klass)
        return True

    def decision_stands_until(self, profile: Any, wall: float) -> float:
        """The Unix time `profile`'s state first differs from its state at `wall`."""
        minute = int(wall // 60)
        known = self._stable.get(profile)
        if known is not None and known[0] == minute:
            return known[1]
        if not profile.schedules:
            until = FOREVER
        else:
            now = profile.compute_state(wall)
            until = (minute + HORIZON_MINUTES) * 60.0
            for ahead in range(minute + 1, minute + HORIZON_MINUTES):
                if profile.compute_state(ahead * 60.0) != now:
                    until = ahead * 60.0
                    break
        if len(self._stable) > 4096:  # profiles of generations gone
            self._stable.clear()
        self._stable[profile] = (minute, until)
        return until

    def clear(self) -> None:
        """A new policy generation or a cache flush: nothing stored may be repeated. (Credits
        not used are not refunded: a client's next query comes here and gets a new one.)"""
        self.table.clear()
        self._stable.clear()
        self._clients.clear()

    def watch_clock(self) -> None:
        """Clear the table when the wall clock stepped (NTP at boot, an admin's `date`):
        decisions are stored until a monotonic time worked out from the wall clock."""
        offset = self.wall_clock() - self.monotonic_clock()
        if abs(offset - self._offset) > CLOCK_STEP:
            self.clear()
        self._offset = offset

    def harvest_into(self, stats: Stats, rollup: Rollup | None = None) -> None:
        """Add what the fast path answered since the last harvest to `stats` and `rollup`."""
        hits, seconds, send_errors = self.table.harvest()
        total = 0
        for stats_id, count in hits:
            key, cached, mandated, rollup_key = self._counters[stats_id]
            stats.queries[key] += count
            if cached:
                stats.cache_hits += count
            if mandated:
                stats.mandated_hits += count
            if rollup is not None:
                rollup.count(*rollup_key, count)
            total += count
        if self._named >= self._named_limit:  # every count is in: the ids may start over
            self.clear()
            self._ids.clear()
            self._counters.clear()
            self._named = 0
        if total:
            stats.fast_answers += total
            stats.latency_buckets[0] += total
            stats.latency_count += total
            stats.latency_sum += seconds
        if send_errors:
            stats.dropped["udp-send-error"] += send_errors
