"""Why a name gets the answer it gets: the report behind `safe-resolver explain` and the admin API.

Pure apart from re-reading one list file to find the rule's line number (explain is a slow path:
the index keeps no line numbers, so millions of rules cost no memory for it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from resolver.lists.reader import read_list
from resolver.policy.decide import decide, rule_for
from resolver.policy.decision import Tier
from resolver.policy.schema import qtype_number
from resolver.policy.snapshot import PolicySnapshot


def list_line(snapshot: PolicySnapshot, source: str | None, rule: str | None) -> int | None:
    """The rule's line in its list file (re-reads the file)."""
    if source is None or rule is None:
        return None
    for src in snapshot.sources:
        if src["path"] == source:
            for entry in read_list(src["path"], src["format"]).entries:
                if entry.name == rule:
                    return entry.line
    return None


def explain_report(
    snapshot: PolicySnapshot, client: str, name: str, qtype: str, when: datetime
) -> dict[str, Any]:
    """Profile, schedule state, decision, rule, list and line, as one JSON-ready mapping.

    Raises ValueError for an unknown query type.
    """
    number = qtype_number(qtype)
    if number is None:
        raise ValueError(f"unknown query type {qtype!r}")
    name = name.lower().rstrip(".")
    profile = snapshot.profile_object(client)
    state = profile.compute_state(when.timestamp())
    decision = decide(snapshot, client, name, number, when)
    rule, source = decision.rule, decision.source
    if rule is None and decision.category is not None:
        # List blocks are shared decisions without the rule: find it now (slow path).
        if decision.tier is Tier.MANDATED and snapshot.mandated is not None:
            rule, source = rule_for(snapshot.mandated, name, 1)
        elif decision.category in snapshot.categories:
            rule, source = rule_for(
                snapshot.index, name, 1 << snapshot.categories[decision.category]
            )
    return {
        "client": client,
        "name": name,
        "type": qtype.upper(),
        "at": when.isoformat(),
        "profile": profile.id,
        "schedules_active": list(state.active),
        "internet_off": state.internet_off,
        "safe_search": {"search": state.search, "youtube": state.youtube},
        "action": decision.action.value,
        "tier": decision.tier.value,
        "category": decision.category,
        "block_mode": decision.block_mode.value,
        "target": decision.target,
        "rule": rule,
        "source": source,
        "line": list_line(snapshot, source, rule),
        "ttl": decision.ttl,
    }
