"""`decide()`: what one query gets. Pure: same snapshot, client, name, type and minute, same answer.

The precedence is written once, in `PRECEDENCE`, one stage per position. `decide()` first does the
three index lookups every query needs; when none of them hits and the name is not a safe-search or
bypass name (the common case) it returns the profile's preallocated ALLOW decision without running
the stages and without allocating anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from resolver.lists.model import RuleAction
from resolver.match.key import NameKey, name_key
from resolver.policy.decision import Action, Decision, Tier
from resolver.policy.safesearch import REWRITE_QTYPES

if TYPE_CHECKING:
    from resolver.match.index import CategoryIndex
    from resolver.policy.schema import Expectation
    from resolver.policy.snapshot import PolicySnapshot, Profile, State

SVCB_QTYPES = frozenset({64, 65})
_RPZ_ACTIONS = {RuleAction.NXDOMAIN: Action.NXDOMAIN, RuleAction.NODATA: Action.NODATA,
                RuleAction.REWRITE: Action.REWRITE}  # fmt: skip


class Query:
    """The facts every stage reads; built only when the fast path did not answer."""

    __slots__ = ("hits", "mandated", "name", "own", "profile", "qtype", "snap", "state")

    def __init__(self, snap: PolicySnapshot, profile: Profile, state: State, name: str,
                 qtype: int, hits: int, own: int, mandated: int) -> None:  # fmt: skip
        self.snap, self.profile, self.state = snap, profile, state
        self.name, self.qtype = name, qtype
        self.hits, self.own, self.mandated = hits, own, mandated


Stage = Callable[[Query], Decision | None]


def _mandated(q: Query) -> Decision | None:
    if not q.mandated:
        return None
    snap, p = q.snap, q.profile
    assert snap.mandated is not None
    special = snap.mandated.special(q.name)
    action, target, rule, source = Action.BLOCK, None, None, None
    if special is not None:
        action, target = _RPZ_ACTIONS[special.action], special.target
        rule, source = special.rule, special.source
        if action is Action.REWRITE and target == "":
            action, target, rule, source = Action.NXDOMAIN, None, None, None
    # Plain blocks share one decision per profile; RPZ actions per rule (there are few of those).
    key = (p.num, rule or "", -1)
    found = snap.block_cache.get(key)
    if found is None:
        found = Decision(action, Tier.MANDATED, p.id, "mandated", snap.mandated_block_mode,
                         target, rule, source, snap.mandated_ttl, p.log)  # fmt: skip
        _remember(snap, key, found)
    return found


def _bypass(q: Query) -> Decision | None:
    if not q.profile.bypass:
        return None
    action = q.snap.bypass_names.get(q.name)
    if action is None:
        return None
    p = q.profile
    found = p.shared.get(q.name)
    if found is None:
        found = p.shared[q.name] = Decision(
            action,
            Tier.BYPASS,
            p.id,
            None,
            p.block_mode,
            None,
            q.name,
            "policy bypass",
            p.block_ttl,
            p.log,
        )
    return found


def _allow(q: Query) -> Decision | None:
    if not q.own >> q.profile.allow_bit & 1:
        return None
    return _safesearch(q) or q.profile.allow_listed


def _deny(q: Query) -> Decision | None:
    if not q.own >> q.profile.deny_bit & 1:
        return None
    return _own_block(q, q.profile.deny_bit, Tier.DENY_LIST)


def _category(q: Query) -> Decision | None:
    p, snap = q.profile, q.snap
    base = q.hits & p.mask
    if base:
        return _list_block(q, base, Tier.CATEGORY)
    if q.own >> p.keyword_bit & 1:
        return _own_block(q, p.keyword_bit, Tier.KEYWORD)
    if snap.has_keywords:
        found = snap.index.keywords(q.name) & q.state.mask
        if found:
            return _list_block(q, found, Tier.KEYWORD)
    return None


def _schedule(q: Query) -> Decision | None:
    extra = q.hits & q.state.schedule_mask
    if extra:
        return _list_block(q, extra, Tier.SCHEDULE)
    if q.state.internet_off:
        return q.profile.internet_off
    return None


def _safesearch(q: Query) -> Decision | None:
    engine = q.snap.safesearch.hosts.get(q.name)
    if engine is None:
        return None
    p = q.profile
    level = p.level_for(engine, q.state)
    if level == "off":
        return None
    rewrite = q.qtype in REWRITE_QTYPES
    key = (engine.id, level, rewrite)
    found = p.shared.get(key)
    if found is None:
        action, target = (
            (Action.REWRITE, engine.targets[level]) if rewrite else (Action.NODATA, None)
        )
        found = p.shared[key] = Decision(
            action, Tier.SAFESEARCH, p.id, None, p.block_mode, target, f"safesearch:{engine.id}",
            q.snap.safesearch.source, p.block_ttl, p.log)  # fmt: skip
    return found


# The precedence, highest first. Each stage returns a decision or None (= ask the next one).
PRECEDENCE: tuple[tuple[Tier, Stage], ...] = (
    # 1. The authorities' list: blocked for every client; no allow, schedule or switch reaches it.
    (Tier.MANDATED, _mandated),
    # 2. Bypass prevention (Firefox canary, iCloud Private Relay, DDR): protects the filter itself,
    #    so it sits above the profile's own allow list.
    (Tier.BYPASS, _bypass),
    # 3. The profile's allow list: ends the chain (safe search still rewrites search hosts).
    (Tier.ALLOW_LIST, _allow),
    # 4. The profile's deny list.
    (Tier.DENY_LIST, _deny),
    # 5. Category lists the profile blocks, then keyword rules (profile's own, then lists').
    (Tier.CATEGORY, _category),
    # 6. Schedules: categories blocked only in a window, then "internet: off" (REFUSED).
    (Tier.SCHEDULE, _schedule),
    # 7. Safe search: allowed search/video hosts answered with the engine's safe front end.
    (Tier.SAFESEARCH, _safesearch),
    # 8. Otherwise: allowed (the profile's preallocated ALLOW decision).
)


def decide(
    snap: PolicySnapshot,
    client: str,
    qname: str,
    qtype: int,
    now: datetime | float,
    ecs: str | None = None,
    key: NameKey | None = None,
) -> Decision:
    """The decision for `client` asking `qname` (lower-case, no trailing dot) type `qtype`.

    `now` is an aware datetime (a naive one is wall-clock time in the policy's zone) or, cheaper,
    a Unix timestamp. `ecs` is the EDNS Client Subnet, honoured only from trusted forwarders.
    `key` is `qname`'s `name_key` pair: the DNS packet reader hands it over ready-made.
    """
    profile = snap.client_cache.get(client) if ecs is None else None
    if profile is None:
        profile = snap.profile_object(client, ecs)
    if type(now) is float or type(now) is int:
        t = now
    else:
        t = (now if now.tzinfo else now.replace(tzinfo=snap.timezone)).timestamp()  # type: ignore[union-attr]
    cached = profile.cache
    known = cached[1]
    state = known if cached[0] == t // 60 and known is not None else profile.state(t)
    qkey, dots = name_key(qname) if key is None else key
    mandated = snap.mandated.lookup(qkey, dots) if snap.mandated is not None else 0
    own = snap.own.lookup(qkey, dots) if snap.own is not None else 0
    if snap.own_keywords:
        own |= snap.own.keywords(qname)  # type: ignore[union-attr]
    hits = snap.index.lookup(qkey, dots)
    if not (
        hits or own or mandated or state.internet_off or snap.has_keywords
        or qname in snap.special_names
    ):  # fmt: skip
        return profile.allow_default
    q = Query(snap, profile, state, qname, qtype, hits, own, mandated)
    for tier, stage in PRECEDENCE:
        found = stage(q)
        if found is not None:
            if (
                qtype in SVCB_QTYPES
                and not snap.block_svcb
                and found.action is Action.BLOCK
                and tier is not Tier.MANDATED
            ):
                return profile.allow_default
            return found
    return profile.allow_default


def _remember(snap: PolicySnapshot, key: tuple[int, str, int], decision: Decision) -> None:
    cache = snap.block_cache
    if len(cache) >= 65_536:
        cache.clear()
    cache[key] = decision


def _list_block(q: Query, bits: int, tier: Tier) -> Decision:
    """A block by category bits: one shared decision per (profile, bits, tier).

    Which rule matched is not looked up here: an ISP's resolver sees millions of distinct
    blocked names, and finding the rule costs an index walk. `explain` finds it (`rule_for`).
    """
    snap, p = q.snap, q.profile
    key = (p.num, "", bits if tier is not Tier.KEYWORD else ~bits)
    found = snap.block_cache.get(key)
    if found is None:
        found = Decision(Action.BLOCK, tier, p.id, snap.category_of(bits), p.block_mode,
                         None, None, None, p.block_ttl, p.log)  # fmt: skip
        _remember(snap, key, found)
    return found


def rule_for(index: CategoryIndex, name: str, bits: int) -> tuple[str | None, str | None]:
    """(rule as written, list file) of the first rule in `index` blocking `name` for `bits`."""
    for hit in index.explain(name):
        if bits >> hit.bit & 1 and hit.action is not RuleAction.ALLOW:
            return hit.rule, hit.source
    return None, None


def _own_block(q: Query, bit: int, tier: Tier) -> Decision:
    """A block by the profile's deny list or keywords; the rule is the entry as written."""
    snap, p = q.snap, q.profile
    key = (p.num, q.name, -2 - bit)
    found = snap.block_cache.get(key)
    if found is None:
        assert snap.own is not None
        hit = next((h for h in snap.own.explain(q.name) if h.bit == bit), None)
        rule, source = (hit.rule, hit.source) if hit else (None, None)
        found = Decision(Action.BLOCK, tier, p.id, None, p.block_mode, None, rule, source,
                         p.block_ttl, p.log)  # fmt: skip
        _remember(snap, key, found)
    return found


def check_sample(snap: PolicySnapshot, sample: Expectation) -> str:
    """'' when the sample holds, else a one-line failure."""
    when = sample.at if sample.at is not None else datetime.now(snap.timezone)
    got = decide(snap, sample.client, sample.name, sample.qtype, when)
    problems = []
    if got.action.value != sample.action:
        problems.append(f"got {got.action.value} ({got.tier.value}), expected {sample.action}")
    if sample.category is not None and got.category != sample.category:
        problems.append(f"category {got.category}, expected {sample.category}")
    if not problems:
        return ""
    return f"{sample.where}: {sample.client} {sample.name}: {'; '.join(problems)}"
