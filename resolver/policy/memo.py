"""What `decide()` remembers between queries, for one snapshot in one process.

The snapshot is immutable and shared; these caches are not, so they live here, owned by the process
that serves the snapshot and created with it (`SnapshotHolder.commit`), dropped with it. Each is
bounded and derived only from the snapshot, so clearing it at any time changes no answer: client ->
profile, each profile's state for the current minute, and the decisions shared by many queries (one
per profile and category set, rewrite target or rule) so that a blocked query allocates nothing.
The snapshot's fields `decide()` reads for every query are copied here once, too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from resolver.match.index import CategoryIndex
    from resolver.policy.decision import Decision
    from resolver.policy.snapshot import PolicySnapshot, Profile, State

Lookup = Callable[[bytes, list[int]], int]  # an index's walk: (key, dots) -> category bits

LIMIT: Final = 65_536  # entries per cache before it is cleared (cheap and bounded)


class DecisionMemo:
    __slots__ = (
        "block_svcb",
        "blocks",
        "clients",
        "ecs",
        "has_keywords",
        "index_lookup",
        "mandated_lookup",
        "own",
        "own_keywords",
        "own_lookup",
        "service_base",
        "service_shift",
        "shared",
        "snapshot",
        "special_names",
        "states",
    )

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        # What decide() reads of the snapshot for every query, read once: compiled, a field of
        # this class is one load, where the frozen snapshot's cost a descriptor call each (and
        # an index's walk one attribute lookup more).
        mandated = snapshot.mandated
        self.mandated_lookup: Lookup | None = mandated.lookup if mandated is not None else None
        self.own: CategoryIndex | None = snapshot.own
        self.own_lookup: Lookup | None = snapshot.own.lookup if snapshot.own is not None else None
        self.own_keywords: bool = snapshot.own_keywords
        self.index_lookup: Lookup = snapshot.index.lookup
        self.has_keywords: bool = snapshot.has_keywords
        self.special_names: frozenset[str] = snapshot.special_names
        self.block_svcb: bool = snapshot.block_svcb
        self.service_shift: int = snapshot.service_shift
        self.service_base: int = snapshot.service_base
        self.clients: dict[str, Profile] = {}  # client address -> profile
        self.ecs: dict[str, Profile] = {}  # "client|subnet" -> profile
        self.blocks: dict[tuple[int, str, int], Decision] = {}  # shared block decisions
        count = snapshot.profile_count
        self.states: list[tuple[int, State | None]] = [(-1, None)] * count  # (minute, state)
        self.shared: list[dict[Any, Decision]] = [{} for _ in range(count)]  # rewrites, NODATA

    def profile(self, client: str, ecs: str | None = None) -> Profile:
        """Client (or, from a trusted forwarder, its EDNS Client Subnet) -> profile."""
        snap = self.snapshot
        if ecs is not None and snap.trusted_forwarders:
            key = client + "|" + ecs
            found = self.ecs.get(key)
            if found is None:
                found = snap.profile_for_client(client, ecs)
                if len(self.ecs) >= LIMIT:
                    self.ecs.clear()
                self.ecs[key] = found
            return found
        found = self.clients.get(client)
        if found is None:
            found = snap.profile_for_client(client)
            if len(self.clients) >= LIMIT:
                self.clients.clear()
            self.clients[client] = found
        return found

    def state(self, profile: Profile, unix_time: float) -> State:
        """`profile`'s state for the minute of `unix_time`, computed at most once a minute."""
        minute = int(unix_time // 60)
        cached = self.states[profile.num]
        if cached[0] == minute and cached[1] is not None:
            return cached[1]
        state = profile.compute_state(unix_time)
        self.states[profile.num] = (minute, state)
        return state

    def remember(self, key: tuple[int, str, int], decision: Decision) -> None:
        if len(self.blocks) >= LIMIT:
            self.blocks.clear()
        self.blocks[key] = decision
