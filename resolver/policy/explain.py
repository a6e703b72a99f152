"""Why a name gets the answer it gets: the report behind `safe-resolver explain` and the admin API.

Pure: the rule's line number in its list file is found by the caller's `line_of(path, rule)`
(the index keeps no line numbers, so millions of rules cost no memory for them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from resolver.policy.decide import decide, rule_for
from resolver.policy.decision import Tier
from resolver.policy.schema import qtype_number
from resolver.policy.snapshot import PolicySnapshot

LineOf = Callable[[str, str], int | None]


def explain_report(
    snapshot: PolicySnapshot,
    client: str,
    name: str,
    qtype: str,
    when: datetime,
    line_of: LineOf | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Profile, schedule state, decision, rule, list and line, as one JSON-ready mapping; with
    `device`, as that device (its identity) asks.

    Raises ValueError for an unknown query type or device.
    """
    number = qtype_number(qtype)
    if number is None:
        raise ValueError(f"unknown query type {qtype!r}")
    name = name.lower().rstrip(".")
    if device is not None and device not in snapshot.devices:
        raise ValueError(f"unknown device {device!r}")
    chosen = snapshot.devices[device] if device is not None else None
    profile = chosen or snapshot.profile_for_client(client)
    state = profile.compute_state(when.timestamp())
    decision = decide(snapshot, client, name, number, when, chosen=chosen)
    rule, source = decision.rule, decision.source
    service = decision.service
    if rule is None and service is not None and snapshot.own is not None:
        # A blocked service's domains sit in the own index, `service_shift` up.
        bit = snapshot.service_shift + snapshot.services[service] - snapshot.service_base
        rule, source = rule_for(snapshot.own, name, 1 << bit)
    elif rule is None and decision.category is not None:
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
        "device": profile.device or None,
        "schedules_active": list(state.active),
        "internet_off": state.internet_off,
        "safe_search": {"search": state.search, "youtube": state.youtube},
        "action": decision.action.value,
        "tier": decision.tier.value,
        "category": decision.category,
        "service": service,
        "service_name": _service_names(snapshot, service),
        "block_mode": decision.block_mode.value,
        "target": decision.target,
        "rule": rule,
        "source": source,
        "line": line_of(source, rule) if line_of and source and rule else None,
        "ttl": decision.ttl,
    }


def _service_names(snapshot: PolicySnapshot, service: str | None) -> dict[str, str] | None:
    if service is None:
        return None
    vi, en, _category = snapshot.service_info[service]
    return {"vi": vi, "en": en}
