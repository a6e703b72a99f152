"""`decide()`: what one query gets. Pure: same snapshot, client, name, type and minute, same answer.

The precedence is written once, in `PRECEDENCE`: one `Stage` per position, with the facts that can
make it answer and whether its blocks apply to SVCB/HTTPS queries when `bypass.https_svcb` is off.
`decide()` first works out the facts every query needs (three index lookups, the profile's state,
whether the name is a safe-search or bypass name); when none of the facts any stage answers on
holds (the common case) it returns the profile's preallocated ALLOW decision without running the
stages and without allocating anything. What it remembers between queries lives in the caller's
`DecisionMemo`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final, NamedTuple

from resolver.lists.model import RuleAction
from resolver.match.key import NameKey, name_key
from resolver.policy.decision import (
    ACT_BLOCK,
    TIER_CATEGORY,
    TIER_KEYWORD,
    TIER_SCHEDULE,
    Action,
    Decision,
    Tier,
)
from resolver.policy.memo import DecisionMemo
from resolver.policy.safesearch import REWRITE_QTYPES

if TYPE_CHECKING:
    from resolver.match.index import CategoryIndex
    from resolver.policy.schema import Expectation
    from resolver.policy.snapshot import PolicySnapshot, Profile, State

SVCB_QTYPES: Final = frozenset({64, 65})
_RPZ_ACTIONS: Final = {RuleAction.NODATA: Action.NODATA, RuleAction.REWRITE: Action.REWRITE}


class Query:
    """The facts every stage reads; built only when the fast path did not answer."""

    __slots__ = ("hits", "mandated", "memo", "name", "own", "profile", "qtype", "snap", "state")

    def __init__(self, snap: PolicySnapshot, memo: DecisionMemo, profile: Profile, state: State,
                 name: str, qtype: int, hits: int, own: int, mandated: int) -> None:  # fmt: skip
        self.snap, self.memo, self.profile, self.state = snap, memo, profile, state
        self.name, self.qtype = name, qtype
        self.hits, self.own, self.mandated = hits, own, mandated


StageFn = Callable[[Query], Decision | None]


def _mandated(q: Query) -> Decision | None:
    if not q.mandated:
        return None
    snap, p = q.snap, q.profile
    assert snap.mandated is not None
    special = snap.mandated.special(q.name)
    action, target, rule, source = Action.BLOCK, None, None, None
    # `CNAME .` (NXDOMAIN) is how an RPZ says "block": it is answered in the mandated block
    # mode like any list's block (`blockpage` shows the page that says why; `block_mode:
    # nxdomain` keeps NXDOMAIN). NODATA and a rewrite to a named target are the authority's own
    # answer for the name: kept as written.
    if special is not None and special.action is not RuleAction.NXDOMAIN:
        action, target = _RPZ_ACTIONS[special.action], special.target
        rule, source = special.rule, special.source
        if action is Action.REWRITE and target == "":
            action, target, rule, source = Action.BLOCK, None, None, None
    # Plain blocks share one decision per profile; RPZ actions per rule (there are few of those).
    key = (p.num, rule or "", -1)
    found = q.memo.blocks.get(key)
    if found is None:
        found = Decision(action, Tier.MANDATED, p.id, "mandated", snap.mandated_block_mode,
                         target, rule, source, snap.mandated_ttl, p.log)  # fmt: skip
        q.memo.remember(key, found)
    return found


def _bypass(q: Query) -> Decision | None:
    if not q.profile.bypass:
        return None
    action = q.snap.bypass_names.get(q.name)
    if action is None:
        return None
    p = q.profile
    shared = q.memo.shared[p.num]
    found = shared.get(q.name)
    if found is None:
        found = shared[q.name] = Decision(
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
        return _list_block(q, base, TIER_CATEGORY)
    if q.own >> p.keyword_bit & 1:
        return _own_block(q, p.keyword_bit, Tier.KEYWORD)
    if snap.has_keywords:
        found = snap.index.keywords(q.name) & q.state.mask
        if found:
            return _list_block(q, found, TIER_KEYWORD)
    return None


def _schedule(q: Query) -> Decision | None:
    extra = q.hits & q.state.schedule_mask
    if extra:
        return _list_block(q, extra, TIER_SCHEDULE)
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
    shared = q.memo.shared[p.num]
    found = shared.get(key)
    if found is None:
        action, target = (
            (Action.REWRITE, engine.targets[level]) if rewrite else (Action.NODATA, None)
        )
        found = shared[key] = Decision(
            action, Tier.SAFESEARCH, p.id, None, p.block_mode, target, f"safesearch:{engine.id}",
            q.snap.safesearch.source, p.block_ttl, p.log)  # fmt: skip
    return found


class Stage(NamedTuple):
    """One position of the precedence: who decides, on which facts, and the SVCB rule."""

    tier: Tier
    decide: StageFn
    facts: frozenset[str]  # the stage can answer only when one of these facts holds
    svcb: bool  # its blocks apply to SVCB/HTTPS queries even with `bypass.https_svcb` off


def _stage(tier: Tier, fn: StageFn, *facts: str, svcb: bool = False) -> Stage:
    return Stage(tier, fn, frozenset(facts), svcb)


# The precedence, highest first. Each stage returns a decision or None (= ask the next one).
# Facts: "mandated", "own" (the profile's own rules), "hits" (category lists), "keywords" (the
# lists have keyword rules), "internet_off" (a schedule switched it off), "special" (a
# safe-search or bypass name).
PRECEDENCE: Final[tuple[Stage, ...]] = (
    # 1. The authorities' list: blocked for every client; no allow, schedule or switch reaches it,
    #    and its blocks hold for SVCB/HTTPS queries whatever `bypass.https_svcb` says.
    _stage(Tier.MANDATED, _mandated, "mandated", svcb=True),
    # 2. Bypass prevention (Firefox canary, iCloud Private Relay, DDR): protects the filter itself,
    #    so it sits above the profile's own allow list.
    _stage(Tier.BYPASS, _bypass, "special"),
    # 3. The profile's allow list: ends the chain (safe search still rewrites search hosts).
    _stage(Tier.ALLOW_LIST, _allow, "own"),
    # 4. The profile's deny list.
    _stage(Tier.DENY_LIST, _deny, "own"),
    # 5. Category lists the profile blocks, then keyword rules (profile's own, then lists').
    _stage(Tier.CATEGORY, _category, "hits", "own", "keywords"),
    # 6. Schedules: categories blocked only in a window, then "internet: off" (REFUSED).
    _stage(Tier.SCHEDULE, _schedule, "hits", "internet_off"),
    # 7. Safe search: allowed search/video hosts answered with the engine's safe front end.
    _stage(Tier.SAFESEARCH, _safesearch, "special"),
    # 8. Otherwise: allowed (the profile's preallocated ALLOW decision).
)
# The facts `decide()` works out before the stages, each with its bit in `held`; no stage may
# answer on anything else.
_FACT_BITS: Final = {
    "mandated": 1,
    "own": 2,
    "hits": 4,
    "keywords": 8,
    "internet_off": 16,
    "special": 32,
}
FACTS: Final = frozenset(_FACT_BITS)
assert frozenset().union(*(stage.facts for stage in PRECEDENCE)) == FACTS
# The stages that can answer, by the bits of the facts that hold: only those are asked (a
# blocked name's query runs _category alone, not four stages that return None first).
_STAGES_FOR: Final[tuple[tuple[Stage, ...], ...]] = tuple(
    tuple(s for s in PRECEDENCE if any(held & _FACT_BITS[f] for f in s.facts)) for held in range(64)
)


def decide(
    snap: PolicySnapshot,
    client: str,
    qname: str,
    qtype: int,
    now: datetime | float,
    ecs: str | None = None,
    key: NameKey | None = None,
    memo: DecisionMemo | None = None,
    chosen: Profile | None = None,
) -> Decision:
    """The decision for `client` asking `qname` (lower-case, no trailing dot) type `qtype`.

    `now` is an aware datetime (a naive one is wall-clock time in the policy's zone) or, cheaper,
    a Unix timestamp. `ecs` is the EDNS Client Subnet, honoured only from trusted forwarders.
    `key` is `qname`'s `name_key` pair: the DNS packet reader hands it over ready-made. `memo` is
    the serving process's memo for `snap`; without one the call remembers nothing. `chosen` is
    the profile (or device variant) an encrypted-DNS identity selected, from `snap`: it replaces
    the one the client's address would pick.
    """
    if memo is None:
        memo = DecisionMemo(snap)
    profile = chosen or (memo.clients.get(client) if ecs is None else None)
    if profile is None:
        profile = memo.profile(client, ecs)
    if isinstance(now, datetime):
        t = (now if now.tzinfo else now.replace(tzinfo=snap.timezone)).timestamp()
    else:
        t = now
    cached = memo.states[profile.num]
    known = cached[1]
    state = known if cached[0] == t // 60 and known is not None else memo.state(profile, t)
    qkey, dots = name_key(qname) if key is None else key
    mandated_lookup = memo.mandated_lookup  # the snapshot's fields, as the memo holds them
    mandated = mandated_lookup(qkey, dots) if mandated_lookup is not None else 0
    own = 0
    own_lookup = memo.own_lookup
    if own_lookup is not None:
        own = own_lookup(qkey, dots)
        own_index = memo.own
        if memo.own_keywords and own_index is not None:
            own |= own_index.keywords(qname)
    hits = memo.index_lookup(qkey, dots)
    shift = memo.service_shift
    if shift:  # blocked services' domains: own-index bits -> category bits
        services = own >> shift
        if services:
            hits |= services << memo.service_base
    # The facts (FACTS, as _FACT_BITS): when none holds, no stage can answer.
    held = 1 if mandated else 0
    if own:
        held |= 2
    if hits:
        held |= 4
    if memo.has_keywords:
        held |= 8
    if state.internet_off:
        held |= 16
    if qname in memo.special_names:
        held |= 32
    if not held:
        return profile.allow_default
    q = Query(snap, memo, profile, state, qname, qtype, hits, own, mandated)
    svcb_allowed = qtype in SVCB_QTYPES and not memo.block_svcb
    for stage in _STAGES_FOR[held]:
        found = stage.decide(q)
        if found is not None:
            if svcb_allowed and found.action is ACT_BLOCK and not stage.svcb:
                return profile.allow_default
            return found
    return profile.allow_default


def _list_block(q: Query, bits: int, tier: Tier) -> Decision:
    """A block by category bits: one shared decision per (profile, bits, tier).

    Which rule matched is not looked up here: an ISP's resolver sees millions of distinct
    blocked names, and finding the rule costs an index walk. `explain` finds it (`rule_for`).
    """
    snap, p = q.snap, q.profile
    services = bits >> snap.service_base if snap.service_shift and tier is not TIER_KEYWORD else 0
    # Two blocked services share a domain (Garena's login): the name decides which one.
    shared = services & (services - 1) != 0
    key = (p.num, q.name if shared else "", bits if tier is not TIER_KEYWORD else ~bits)
    found = q.memo.blocks.get(key)
    if found is None:
        # A blocked service names the block (its category is what reports count it under).
        service = None
        if services:
            service = _closest_service(q, bits) if shared else snap.service_of(bits)
        category = snap.service_info[service][2] if service else snap.category_of(bits)
        found = Decision(ACT_BLOCK, tier, p.id, category, p.block_mode, None, None, None,
                         p.block_ttl, p.log, service)  # fmt: skip
        q.memo.remember(key, found)
    return found


def _closest_service(q: Query, bits: int) -> str | None:
    """Of the services among `bits`, the one with the longest domain covering the name
    (`lienquan.garena.vn` is Liên Quân's, though `garena.vn` is Free Fire's too)."""
    snap = q.snap
    assert snap.own is not None
    best, length = snap.service_of(bits), -1
    by_bit = {bit: sid for sid, bit in snap.services.items()}
    for hit in snap.own.explain(q.name):
        service = by_bit.get(hit.bit - snap.service_shift + snap.service_base)
        chosen = hit.bit >= snap.service_shift and service and bits >> snap.services[service] & 1
        if chosen and len(hit.rule) > length:
            best, length = service, len(hit.rule)
    return best


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
    found = q.memo.blocks.get(key)
    if found is None:
        assert snap.own is not None
        hit = next((h for h in snap.own.explain(q.name) if h.bit == bit), None)
        rule, source = (hit.rule, hit.source) if hit else (None, None)
        found = Decision(Action.BLOCK, tier, p.id, None, p.block_mode, None, rule, source,
                         p.block_ttl, p.log)  # fmt: skip
        q.memo.remember(key, found)
    return found


def check_sample(snap: PolicySnapshot, sample: Expectation) -> str:
    """'' when the sample holds, else a one-line failure."""
    when = sample.at if sample.at is not None else datetime.now(snap.timezone)
    chosen = snap.devices[sample.device] if sample.device else None
    got = decide(snap, sample.client, sample.name, sample.qtype, when, chosen=chosen)
    problems = []
    if got.action.value != sample.action:
        problems.append(f"got {got.action.value} ({got.tier.value}), expected {sample.action}")
    if sample.category is not None and got.category != sample.category:
        problems.append(f"category {got.category}, expected {sample.category}")
    if not problems:
        return ""
    who = f"device {sample.device}" if sample.device else sample.client
    return f"{sample.where}: {who} {sample.name}: {'; '.join(problems)}"
