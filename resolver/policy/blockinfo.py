"""What people are told about a block: the facts the block page shows, and who may lift it.

Pure, like decide(): the block page asks through the supervisor (`ResolverControl.block_info`)
and gets the decision, the profile's display name, the blocked service's name and, for a block
by a schedule, when the name opens again. Approving an unblock request asks `mandated_refusal`
first: no allow reaches the mandated list, so approving one would change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from resolver.policy.decide import decide
from resolver.policy.decision import Action, Decision, Tier
from resolver.policy.memo import DecisionMemo
from resolver.policy.snapshot import PolicySnapshot, Profile

BLOCKED = frozenset((Action.BLOCK, Action.NXDOMAIN, Action.NODATA, Action.REFUSED))
OPEN_HORIZON = 8 * 86400  # seconds looked ahead for a schedule block to lift
MAX_STEPS = 200  # window ends stepped over at most (schedules overlapping for a week)


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """Why a name is blocked for a client, in the words the block page uses."""

    decision: Decision
    profile_name: dict[str, str] = field(default_factory=dict)  # lang -> display name
    service_name: dict[str, str] = field(default_factory=dict)  # lang -> name; {}: no service
    opens_at: datetime | None = None  # a schedule block: the first minute it is allowed again


def block_info(
    snap: PolicySnapshot,
    client: str,
    name: str,
    now: float,
    memo: DecisionMemo | None = None,
) -> BlockInfo | None:
    """The block of `name` (lower-case, no trailing dot) for `client` at Unix time `now`, or
    None when it is not blocked."""
    memo = memo or DecisionMemo(snap)
    profile = memo.profile(client)
    decision = decide(snap, client, name, 1, now, memo=memo)
    if decision.action not in BLOCKED:
        return None
    service: dict[str, str] = {}
    if decision.service is not None:
        vi, en, _category = snap.service_info[decision.service]
        service = {"vi": vi, "en": en}
    opens = None
    if decision.tier is Tier.SCHEDULE:
        opens = opens_at(snap, profile, name, now)
    return BlockInfo(decision, dict(profile.display), service, opens)


def opens_at(snap: PolicySnapshot, profile: Profile, name: str, now: float) -> datetime | None:
    """The first moment after `now` at which `name`, blocked for `profile` by a schedule, is
    allowed again (in the policy's zone), or None when it stays blocked for the next
    OPEN_HORIZON seconds.

    A schedule block can only lift when one of the windows active then ends, so this steps
    from window end to window end, asking decide() at each (overlapping and back-to-back
    windows, holidays and the other schedules of the profile all count), never minute by
    minute."""
    t = now
    for _ in range(MAX_STEPS):
        ends = [end for schedule in profile.schedules for end in schedule.run_ends(t)]
        if not ends:
            return None
        t = min(ends)
        if t - now > OPEN_HORIZON:
            return None
        decision = decide(snap, "", name, 1, t, chosen=profile)
        if decision.action not in BLOCKED:
            return datetime.fromtimestamp(t, snap.timezone)
        if decision.tier is not Tier.SCHEDULE:
            return None
    return None


def mandated_refusal(snap: PolicySnapshot, name: str) -> str | None:
    """Why an unblock of `name` cannot be approved (it is on the mandated list), or None."""
    if snap.mandated is None or not snap.mandated.lookup_name(name):
        return None
    return (
        f"{name} is on the authorities' mandated list, which applies to every client: it "
        "cannot be unblocked here (ask the authority to correct the list)"
    )
