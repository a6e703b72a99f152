"""A validated policy and its compiled list indexes in, an immutable `PolicySnapshot` out.

Pure: every file is read by the build (`resolver.build`), which hands this module the policy
spec, the safe-search table and the list indexes it compiled (one `CategoryIndex` for every
category list, one bit per category the policy uses; the mandated list in an index of its own so
no allow rule can reach it). The profiles' own allow/deny/keyword rules go into a third, small
index built here every time.

Services (blocklists/services.yaml) ride on that small index: each service some profile,
device or schedule blocks gets one bit there above the profiles' bits, and one bit in the
category bit space above the categories', so profile masks and schedule states treat it as a
category (decide() moves the bits over: one shift per query, no index of its own); a service's
domains in `allow_services` become the profile's own allow rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from resolver.lists.model import Entry, Keyword, RuleAction, Scope
from resolver.lists.services import Service
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex
from resolver.policy.decision import Action
from resolver.policy.safesearch import SafeSearchTable
from resolver.policy.schedule import Schedule
from resolver.policy.schema import MANDATED, DeviceSpec, PolicySpec, ProfileSpec
from resolver.policy.snapshot import PolicySnapshot, Profile
from resolver.yamlsource import ConfigError, Problem

# Bypass-prevention names (exact) and what they get; see policy/README.md "bypass".
BYPASS_NAMES: dict[str, tuple[str, Action]] = {
    "use-application-dns.net": ("firefox_canary", Action.NXDOMAIN),
    "mask.icloud.com": ("icloud_private_relay", Action.NXDOMAIN),
    "mask-h2.icloud.com": ("icloud_private_relay", Action.NXDOMAIN),
    "mask-canary.icloud.com": ("icloud_private_relay", Action.NXDOMAIN),
    "_dns.resolver.arpa": ("ddr", Action.NODATA),
}


class PolicyError(ConfigError):
    """The policy cannot be used; `problems` lists every error (file:line:column)."""


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """Which categories the policy uses, their bits in the main index, and its `lists:`
    section with the mandated sources added: what the build must compile."""

    used: tuple[str, ...]
    bits: dict[str, int]
    lists_section: dict[str, Any]


def plan(spec: PolicySpec) -> IndexPlan:
    used = sorted({c for p in spec.profiles.values() for c in p.categories}
                  | {c for s in spec.schedules.values() for c in s.block})  # fmt: skip
    section = dict(spec.lists)
    section["sources"] = [*(section.get("sources") or []), *spec.mandated_sources]
    return IndexPlan(tuple(used), {cat: bit for bit, cat in enumerate(used)}, section)


def list_warnings(summaries: list[dict[str, Any]]) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) about the lists compiled: a list with no usable rule at all is an
    error (it must not go live as an empty list: the old policy keeps serving); skipped lines
    are a warning."""
    errors = [
        Problem(summary["path"], 1, 1,
                f"list {summary['id']!r} has no usable rules ({summary['rejects']} rejects)")
        for summary in summaries
        if not summary["rules"]
    ]  # fmt: skip
    warnings = [_skipped_warning(summary) for summary in summaries if summary["rejects"]]
    return errors, warnings


def _skipped_warning(summary: dict[str, Any]) -> Problem:
    counts = ", ".join(f"{n} {why}" for why, n in sorted(summary["reject_counts"].items()))
    return Problem(
        summary["path"],
        summary["first_reject_line"],
        1,
        f"{summary['rejects']} lines skipped ({counts})",
        "warning",
    )


def mandated_entries(entries: list[Entry]) -> list[Entry]:
    """The mandated list's rules as indexed: rewrite-only RPZ rules must still trip the lookup."""
    return [*entries, *(Entry(e.name, e.scope) for e in entries
                        if e.action is RuleAction.REWRITE)]  # fmt: skip


def assemble(
    spec: PolicySpec,
    *,
    safesearch: SafeSearchTable,
    plan: IndexPlan,
    index: CategoryIndex,
    mandated: CategoryIndex | None,
    summaries: list[dict[str, Any]],
    warnings: list[Problem],
    cache_dir: str,
    keep_ratio: float,
    compile_seconds: float = 0.0,
) -> PolicySnapshot:
    """The snapshot of `spec` over the indexes the build compiled; raises PolicyError when a
    list has no usable rule."""
    used, bits = plan.used, plan.bits
    errors, more = list_warnings(summaries)
    warnings = [*warnings, *more]
    if errors:
        raise PolicyError(errors + warnings)
    blocked = blocked_services(spec)
    service_bits = {sid: len(used) + i for i, sid in enumerate(blocked)}
    profiles = _profiles(spec, bits, service_bits)
    devices = _devices(spec, profiles, service_bits)
    identities = _identities(spec, profiles, devices)
    shift = 3 * (len(profiles) + len(devices)) if blocked else 0
    own = _own_index(spec, profiles, devices, blocked, shift)
    if mandated is not None:
        _warn_shadowed(spec, mandated, warnings)
    sizes = {cat: 0 for cat in used}
    for bit, count in index.rule_counts().items():
        sizes[used[bit]] = count
    if mandated is not None:
        sizes[MANDATED] = len(mandated)
    bypass = {name: action for name, (switch, action) in BYPASS_NAMES.items()
              if spec.bypass[switch]}  # fmt: skip
    return PolicySnapshot(
        generation=0,
        source=str(spec.file),
        timezone=spec.timezone,
        profiles=profiles,
        default_profile=profiles[spec.default_profile],
        categories=dict(bits),
        index=index,
        mandated=mandated,
        mandated_block_mode=spec.mandated_block_mode,
        mandated_ttl=spec.mandated_ttl,
        own=own,
        safesearch=safesearch,
        bypass_names=bypass,
        block_svcb=spec.bypass["https_svcb"],
        trusted_forwarders=tuple(spec.trusted_forwarders),
        networks=spec.networks,
        network_profiles=tuple(profiles[pid] for pid in spec.network_profiles),
        list_sizes=sizes,
        warnings=warnings,
        expect=spec.expect,
        sources=[
            {
                key: summary[key]
                for key in (
                    "category",
                    "id",
                    "path",
                    "format",
                    "rules",
                    "rejects",
                    "stale",
                    "digest",
                )
            }
            for summary in summaries
        ],
        compile_seconds=compile_seconds,
        has_keywords=index.has_keywords,
        own_keywords=any(p.keywords for p in spec.profiles.values()),
        special_names=frozenset(safesearch.hosts) | frozenset(bypass),
        cache_dir=cache_dir,
        overlay=spec.overlay,
        keep_ratio=keep_ratio,
        devices=devices,
        identities=identities,
        services=service_bits,
        service_info=_service_info(spec, blocked),
        service_base=len(used),
        service_shift=shift,
    )


def blocked_services(spec: PolicySpec) -> tuple[str, ...]:
    """The services some profile, device or schedule blocks: each gets a bit."""
    owners: list[ProfileSpec | DeviceSpec | Schedule] = [
        *spec.profiles.values(), *spec.devices.values(), *spec.schedules.values()
    ]  # fmt: skip
    return tuple(sorted({sid for owner in owners for sid in owner.block_services}))


def _service_info(spec: PolicySpec, blocked: tuple[str, ...]) -> dict[str, tuple[str, str, str]]:
    """Blocked service id -> (Vietnamese name, English name, category): what blocks say."""
    catalogue = _catalogue(spec)
    return {sid: (catalogue[sid].name_vi, catalogue[sid].name_en, catalogue[sid].category)
            for sid in blocked}  # fmt: skip


def _catalogue(spec: PolicySpec) -> dict[str, Service]:
    return spec.services.services if spec.services is not None else {}


def _service_mask(services: frozenset[str], service_bits: dict[str, int]) -> int:
    mask = 0
    for sid in services:
        mask |= 1 << service_bits[sid]
    return mask


def _profiles(
    spec: PolicySpec, bits: dict[str, int], service_bits: dict[str, int]
) -> dict[str, Profile]:
    out = {}
    for num, (pid, p) in enumerate(spec.profiles.items()):
        mask = _service_mask(p.block_services, service_bits)
        for cat in p.categories:
            mask |= 1 << bits[cat]
        out[pid] = Profile(
            id=pid, num=num, mask=mask, categories=p.categories,
            allow_bit=3 * num, deny_bit=3 * num + 1, keyword_bit=3 * num + 2,
            search=p.safe_search, youtube=p.youtube, block_mode=p.block_mode,
            block_ttl=p.block_ttl, log=p.log, bypass=p.bypass,
            schedules=tuple(spec.schedules[s] for s in p.schedules),
            # A paused category has no bit here: no schedule of the profile can block it.
            cat_bits={cat: 1 << bit for cat, bit in bits.items() if cat not in p.paused},
            display=dict(p.display),
            service_bits={sid: 1 << bit for sid, bit in service_bits.items()},
        )  # fmt: skip
    return out


def _devices(
    spec: PolicySpec, profiles: dict[str, Profile], service_bits: dict[str, int]
) -> dict[str, Profile]:
    """Each device as a variant of its profile: numbered after the profiles, with bits of its
    own in the own-rules index, its schedules added to the profile's, its blocked services to
    the profile's mask."""
    out = {}
    for i, (name, d) in enumerate(spec.devices.items(), len(profiles)):
        parent = profiles[d.profile]
        extra = tuple(spec.schedules[s] for s in d.schedules if s not in spec.profiles[d.profile]
                      .schedules)  # fmt: skip
        out[name] = replace(
            parent, num=i, allow_bit=3 * i, deny_bit=3 * i + 1, keyword_bit=3 * i + 2,
            schedules=parent.schedules + extra, device=name,
            mask=parent.mask | _service_mask(d.block_services, service_bits),
        )  # fmt: skip
    return out


def _identities(
    spec: PolicySpec, profiles: dict[str, Profile], devices: dict[str, Profile]
) -> dict[str, Profile]:
    """What selects a profile on encrypted DNS: a profile's token (or, under `identities:
    names`, its id); for a device `PROFILE/IDENTITY` (the DoH path) and `IDENTITY-PROFILE`
    (the first label of the DoT/DoQ server name, Android's Private DNS form)."""
    out: dict[str, Profile] = {}
    problems = []

    def add(key: str, profile: Profile, where: str) -> None:
        other = out.get(key)
        if other is not None and other is not profile:
            file, line, column = where.rsplit(":", 2)
            message = f"identity {key!r} would select two profiles or devices"
            problems.append(Problem(file, int(line), int(column), message))
        out[key] = profile

    for pid, p in spec.profiles.items():
        if p.token:
            add(p.token, profiles[pid], p.where)
        if spec.identities == "names":
            add(pid, profiles[pid], p.where)
    for name, d in spec.devices.items():
        add(f"{d.profile}/{d.identity}", devices[name], d.where)
        add(f"{d.identity}-{d.profile}", devices[name], d.where)
    if problems:
        raise PolicyError(problems)
    return out


def _own_index(
    spec: PolicySpec,
    profiles: dict[str, Profile],
    devices: dict[str, Profile],
    blocked: tuple[str, ...],
    shift: int,
) -> CategoryIndex | None:
    """The profiles' (and devices') allow, deny and keyword rules, and the blocked services'
    domains (bit `shift` up): small, rebuilt on every compile. A device has its profile's rules
    and its own under its own bits; `allow_services` add the services' domains to the allow
    rules."""
    builder = IndexBuilder()
    empty = True
    catalogue = _catalogue(spec)
    source = str(spec.services.path) if spec.services is not None else ""
    owners = [(profiles[pid], p.allow, p.deny, p, p.allow_services)
              for pid, p in spec.profiles.items()]  # fmt: skip
    for name, d in spec.devices.items():
        p = spec.profiles[d.profile]
        owners.append((devices[name], [*p.allow, *d.allow], [*p.deny, *d.deny], p,
                       p.allow_services | d.allow_services))  # fmt: skip
    for compiled, allow, deny, p, allowed in owners:
        for bit, rules in ((compiled.allow_bit, allow), (compiled.deny_bit, deny)):
            for rule in rules:
                builder.add(bit, [Entry(rule.name, rule.scope, RuleAction.BLOCK)], rule.where)
                empty = False
        for sid in sorted(allowed):
            builder.add(compiled.allow_bit, _domains(catalogue[sid].domains), source)
            empty = False
        if p.keywords:
            builder.add_keywords(compiled.keyword_bit, [Keyword(k) for k in p.keywords],
                                 f"{p.where} keywords")  # fmt: skip
            empty = False
    for i, sid in enumerate(blocked):
        builder.add(shift + i, _domains(catalogue[sid].domains), source)
        empty = False
    return None if empty else builder.build()


def _domains(domains: tuple[str, ...]) -> list[Entry]:
    return [Entry(name, Scope.SUBTREE, RuleAction.BLOCK) for name in domains]


def _warn_shadowed(spec: PolicySpec, mandated: CategoryIndex, warnings: list[Problem]) -> None:
    """An allow entry the mandated list overrides can never take effect: say so."""
    for p in spec.profiles.values():
        for rule in p.allow:
            if rule.scope is not Scope.BELOW and mandated.lookup_name(rule.name):
                file, line, column = rule.where.rsplit(":", 2)
                warnings.append(
                    Problem(
                        file,
                        int(line),
                        int(column),
                        f"allow {rule.text!r} in "
                        f"profile {p.id!r} is unreachable: the name is on the "
                        "mandated list, which no allow overrides",
                        "warning",
                    )
                )
