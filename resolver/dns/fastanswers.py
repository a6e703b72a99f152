"""Which answers the fast path may repeat, for which clients, until when, and how they count.

The handler offers every synchronous UDP answer it makes on the policy, cache and `id.server`
paths (`Handler._done`, with how long the answer's own source lets it stand). It is stored
only when repeating it byte for byte (ID and name case aside) is what the handler would do for
any query with the same bytes from a client of the same class until `valid_until`:

- the class is the client's profile number + 1 (1 without a policy): the policy decides by
  profile, and nothing else about the client reaches the answer;
- a decision holds until its wall-clock minute ends (schedules change at minute boundaries),
  a cache answer until the next whole second (TTLs count down per second) and its entry's
  expiry; a reload or a cache flush clears the whole table (`clear`);
- never stored: answers whose query must reach the query log, EDNS Client Subnet queries (the
  profile may come from the subnet), truncated (TC) answers and SERVFAIL, TCP answers, and
  anything answered after awaiting upstream (those never reach here with `until`).

What the fast path answers is counted here exactly as the handler counts it: each stored
answer carries the id of its (transport, qtype, action, profile, category) counter, and
`harvest_into` adds the hits to `Stats` (latency: the batch's mean time, first bucket).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from resolver.dns.fastpath import FastPathLike, address_bytes
from resolver.dns.packet import Query
from resolver.policy.decision import Action, Decision, Tier
from resolver.stats import Stats

FOREVER = math.inf  # an answer only a reload or a flush changes (policy answers, id.server)
StatsKey = tuple[str, str, str, str, str]  # Stats.queries' key
_TC = 0x02  # in the answer's third byte
_SERVFAIL = 2


class FastAnswers:
    """The handler's side of one worker's fast path: installs answers, folds in the counts."""

    def __init__(
        self,
        table: FastPathLike,
        policy: Any | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.policy = policy  # .current is the snapshot served (resolver.holder.SnapshotHolder)
        self.wall_clock = wall_clock
        self._ids: dict[tuple[StatsKey, bool, bool], int] = {}
        self._counters: list[tuple[StatsKey, bool, bool]] = []

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
        cached: bool,
    ) -> None:
        """Store `resp` if it may be repeated (see the module docstring). `until` is when its
        source stops standing behind it (monotonic), `started` when the query came in,
        `wall` the Unix time the decision was made for."""
        if query.ecs is not None or resp[2] & _TC or resp[3] & 0x0F == _SERVFAIL:
            return
        if decision is not None:
            minute_end = (wall // 60 + 1) * 60
            until = min(until, started + minute_end - self.wall_clock())
        if cached:
            until = min(until, float(int(started) + 1))
        if until <= started:
            return
        snapshot = self.policy.current if self.policy is not None else None
        klass = snapshot.profile_object(client).num + 1 if snapshot is not None else 1
        mandated = (
            decision is not None
            and decision.tier is Tier.MANDATED
            and decision.action is not Action.REWRITE
        )
        counter = (key, cached, mandated)
        stats_id = self._ids.get(counter)
        if stats_id is None:
            stats_id = self._ids[counter] = len(self._counters)
            self._counters.append(counter)
        data = query.data
        end = query.qend - 4
        table_key = data[2:12] + data[12:end].lower() + data[end:]
        if self.table.put(klass, table_key, resp, until, stats_id):
            self.table.set_client(address_bytes(client), klass)

    def clear(self) -> None:
        """A new policy generation or a cache flush: nothing stored may be repeated."""
        self.table.clear()

    def harvest_into(self, stats: Stats) -> None:
        """Add what the fast path answered since the last harvest to `stats`."""
        hits, seconds, send_errors = self.table.harvest()
        total = 0
        for stats_id, count in hits:
            key, cached, mandated = self._counters[stats_id]
            stats.queries[key] += count
            if cached:
                stats.cache_hits += count
            if mandated:
                stats.mandated_hits += count
            total += count
        if total:
            stats.fast_answers += total
            stats.latency_buckets[0] += total
            stats.latency_count += total
            stats.latency_sum += seconds
        if send_errors:
            stats.dropped["udp-send-error"] += send_errors
