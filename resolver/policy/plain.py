"""A compiled `PolicySnapshot` as plain data (dicts, lists, str, int) and back.

Why: the build compiles a policy once, in one process, and every serving process (the
supervisor and each worker) must get exactly that snapshot without compiling again. The list
indexes travel as mapped index files; everything else travels as this plain form, which
`marshal` can write (marshal cannot run code when it reads, unlike pickle, and the format is
checked field by field here). `snapshot_from_plain(snapshot_to_plain(s), indexes)` decides every
query as `s` does.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from resolver.match.index import CategoryIndex
from resolver.policy.decision import Action, BlockMode
from resolver.policy.prefixes import PrefixTable
from resolver.policy.safesearch import Engine, SafeSearchTable
from resolver.policy.schedule import Schedule, Window
from resolver.policy.schema import Expectation
from resolver.policy.snapshot import PolicySnapshot, Profile
from resolver.yamlsource import Problem

FORMAT = 3


def snapshot_to_plain(snap: PolicySnapshot) -> dict[str, Any]:
    """Everything of `snap` but its indexes (`index`, `mandated`, `own`) and its compile time
    as plain data: the same policy gives the same bytes."""
    engines = snap.safesearch.engines
    return {
        "format": FORMAT,
        "source": snap.source,
        "timezone": snap.timezone.key,
        "profiles": [_profile(p) for p in snap.profiles.values()],
        "default_profile": snap.default_profile.id,
        "categories": dict(snap.categories),
        "mandated_block_mode": snap.mandated_block_mode.value,
        "mandated_ttl": snap.mandated_ttl,
        "safesearch": {
            "source": snap.safesearch.source,
            "engines": [(e.id, e.setting, dict(e.targets)) for e in engines.values()],
            "hosts": {host: engine.id for host, engine in snap.safesearch.hosts.items()},
        },
        "bypass_names": {name: action.value for name, action in snap.bypass_names.items()},
        "block_svcb": snap.block_svcb,
        "trusted_forwarders": [str(net) for net in snap.trusted_forwarders],
        "networks": snap.networks.plain(),
        "network_profiles": [profile.id for profile in snap.network_profiles],
        "list_sizes": dict(snap.list_sizes),
        "warnings": [tuple(p.as_dict().values()) for p in snap.warnings],
        "expect": [_expectation(e) for e in snap.expect],
        "sources": [dict(source) for source in snap.sources],
        "cache_dir": snap.cache_dir,
        "overlay": None if snap.overlay is None else str(snap.overlay),
        "has_keywords": snap.has_keywords,
        "own_keywords": snap.own_keywords,
        "special_names": sorted(snap.special_names),
        "keep_ratio": snap.keep_ratio,
        "devices": [_profile(p) for p in snap.devices.values()],
        "identities": [(key, p.device, p.id) for key, p in snap.identities.items()],
        "services": dict(snap.services),
        "service_info": {sid: list(info) for sid, info in snap.service_info.items()},
        "service_base": snap.service_base,
        "service_shift": snap.service_shift,
    }


def snapshot_from_plain(
    plain: dict[str, Any],
    *,
    index: CategoryIndex,
    mandated: CategoryIndex | None,
    own: CategoryIndex | None,
    generation: int = 0,
) -> PolicySnapshot:
    """The snapshot `plain` describes, over its indexes. Raises KeyError, TypeError or
    ValueError on anything malformed."""
    if plain["format"] != FORMAT:
        raise ValueError(f"policy plain format {plain['format']}, expected {FORMAT}")
    profiles = {p.id: p for p in (_profile_from(row) for row in plain["profiles"])}
    ss = plain["safesearch"]
    engines = {eid: Engine(eid, setting, dict(targets)) for eid, setting, targets in ss["engines"]}
    devices = {p.device: p for p in (_profile_from(row) for row in plain["devices"])}
    identities = {
        key: devices[device] if device else profiles[pid]
        for key, device, pid in plain["identities"]
    }
    return PolicySnapshot(
        generation=generation,
        source=plain["source"],
        timezone=ZoneInfo(plain["timezone"]),
        profiles=profiles,
        default_profile=profiles[plain["default_profile"]],
        categories=dict(plain["categories"]),
        index=index,
        mandated=mandated,
        mandated_block_mode=BlockMode(plain["mandated_block_mode"]),
        mandated_ttl=int(plain["mandated_ttl"]),
        own=own,
        safesearch=SafeSearchTable(
            ss["source"], {host: engines[eid] for host, eid in ss["hosts"].items()}, engines
        ),
        bypass_names={name: Action(action) for name, action in plain["bypass_names"].items()},
        block_svcb=bool(plain["block_svcb"]),
        trusted_forwarders=tuple(ipaddress.ip_network(net) for net in plain["trusted_forwarders"]),
        networks=PrefixTable.from_plain(plain["networks"]),
        network_profiles=tuple(profiles[pid] for pid in plain["network_profiles"]),
        list_sizes=dict(plain["list_sizes"]),
        warnings=[Problem(*row) for row in plain["warnings"]],
        expect=[_expectation_from(row) for row in plain["expect"]],
        sources=[dict(source) for source in plain["sources"]],
        cache_dir=plain["cache_dir"],
        overlay=None if plain["overlay"] is None else Path(plain["overlay"]),
        has_keywords=bool(plain["has_keywords"]),
        own_keywords=bool(plain["own_keywords"]),
        special_names=frozenset(plain["special_names"]),
        keep_ratio=float(plain["keep_ratio"]),
        devices=devices,
        identities=identities,
        services={sid: int(bit) for sid, bit in plain["services"].items()},
        service_info={
            sid: (str(vi), str(en), str(cat))
            for sid, (vi, en, cat) in plain["service_info"].items()
        },
        service_base=int(plain["service_base"]),
        service_shift=int(plain["service_shift"]),
    )


def _profile(p: Profile) -> dict[str, Any]:
    return {
        "id": p.id,
        "num": p.num,
        "mask": p.mask,
        "categories": sorted(p.categories),
        "bits": (p.allow_bit, p.deny_bit, p.keyword_bit),
        "search": p.search,
        "youtube": p.youtube,
        "block_mode": p.block_mode.value,
        "block_ttl": p.block_ttl,
        "log": p.log,
        "bypass": p.bypass,
        "schedules": [_schedule(s) for s in p.schedules],
        "cat_bits": dict(p.cat_bits),
        "device": p.device,
        "display": dict(p.display),
        "service_bits": dict(p.service_bits),
    }


def _profile_from(row: dict[str, Any]) -> Profile:
    allow_bit, deny_bit, keyword_bit = row["bits"]
    return Profile(
        id=row["id"],
        num=int(row["num"]),
        mask=int(row["mask"]),
        categories=frozenset(row["categories"]),
        allow_bit=int(allow_bit),
        deny_bit=int(deny_bit),
        keyword_bit=int(keyword_bit),
        search=row["search"],
        youtube=row["youtube"],
        block_mode=BlockMode(row["block_mode"]),
        block_ttl=int(row["block_ttl"]),
        log=bool(row["log"]),
        bypass=bool(row["bypass"]),
        schedules=tuple(_schedule_from(s) for s in row["schedules"]),
        cat_bits=dict(row["cat_bits"]),
        device=str(row["device"]),
        display={str(lang): str(text) for lang, text in row["display"].items()},
        service_bits={str(sid): int(mask) for sid, mask in row["service_bits"].items()},
    )


def _schedule(s: Schedule) -> dict[str, Any]:
    return {
        "name": s.name,
        "tz": s.tz.key,
        "windows": [(w.text, sorted(w.days), w.start, w.end) for w in s.windows],
        "except": sorted(d.toordinal() for d in s.except_dates),
        "extra": sorted(d.toordinal() for d in s.extra_dates),
        "block": sorted(s.block),
        "safe_search": s.safe_search,
        "youtube": s.youtube,
        "internet_off": s.internet_off,
        "block_services": sorted(s.block_services),
    }


def _schedule_from(row: dict[str, Any]) -> Schedule:
    return Schedule(
        name=row["name"],
        tz=ZoneInfo(row["tz"]),
        windows=tuple(
            Window(text, frozenset(days), int(start), int(end))
            for text, days, start, end in row["windows"]
        ),
        except_dates=frozenset(date.fromordinal(d) for d in row["except"]),
        extra_dates=frozenset(date.fromordinal(d) for d in row["extra"]),
        block=frozenset(row["block"]),
        safe_search=row["safe_search"],
        youtube=row["youtube"],
        internet_off=bool(row["internet_off"]),
        block_services=frozenset(row["block_services"]),
    )


def _expectation(e: Expectation) -> tuple[Any, ...]:
    at = None if e.at is None else (e.at.isoformat(), _zone_key(e.at))
    return (e.client, e.name, e.qtype, at, e.action, e.category, e.where, e.device)


def _expectation_from(row: tuple[Any, ...]) -> Expectation:
    client, name, qtype, at, action, category, where, device = row
    when = None
    if at is not None:
        text, zone = at
        when = datetime.fromisoformat(text)
        if zone is not None:
            when = when.astimezone(ZoneInfo(zone))
    return Expectation(client, name, int(qtype), when, action, category, where, device)


def _zone_key(when: datetime) -> str | None:
    return getattr(when.tzinfo, "key", None)
