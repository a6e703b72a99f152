"""The compiled policy: immutable data that `decide()` reads.

Assembled once per build (`resolver.policy.compile`), mapped by every serving process, then read
by every query until the next swap. Nothing here changes after construction: what `decide()`
remembers between queries lives in a `DecisionMemo` (resolver/policy/memo.py) that each process
creates with the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resolver.match.index import CategoryIndex
from resolver.netaddr import client_ip
from resolver.policy.decide import check_sample
from resolver.policy.decision import Action, BlockMode, Decision, Tier
from resolver.policy.prefixes import Network, PrefixTable
from resolver.policy.safesearch import Engine, SafeSearchTable
from resolver.policy.schedule import Schedule
from resolver.policy.schema import Expectation
from resolver.yamlsource import Problem


@dataclass(frozen=True, slots=True)
class State:
    """What a profile does during one minute: its schedules applied."""

    mask: int  # category bits blocked (profile + active schedules)
    schedule_mask: int  # bits blocked only because a schedule is active
    internet_off: bool
    search: str  # safe-search level for search engines
    youtube: str
    active: tuple[str, ...]  # names of the active schedules (explain)


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """One compiled profile. `allow_bit`/`deny_bit`/`keyword_bit` index the policy's own index."""

    id: str
    num: int
    mask: int
    categories: frozenset[str]
    allow_bit: int
    deny_bit: int
    keyword_bit: int
    search: str
    youtube: str
    block_mode: BlockMode
    block_ttl: int
    log: bool
    bypass: bool
    schedules: tuple[Schedule, ...]
    cat_bits: dict[str, int]
    # A device's variant of profile `id` (its own schedules and allow/deny bits) carries the
    # device's name; decisions, metrics and reports still name the profile.
    device: str = ""
    display: dict[str, str] = field(default_factory=dict)  # lang -> name shown for `id`
    service_bits: dict[str, int] = field(default_factory=dict)  # service id -> its hits bit
    allow_default: Decision = field(init=False)
    allow_listed: Decision = field(init=False)
    internet_off: Decision = field(init=False)

    def __post_init__(self) -> None:
        """The decisions every query of this profile shares, made once."""
        common: dict[str, Any] = {"profile": self.id, "block_mode": self.block_mode,
                                  "ttl": self.block_ttl, "log": self.log}  # fmt: skip
        made = {
            "allow_default": Decision(Action.ALLOW, Tier.DEFAULT, **common),
            "allow_listed": Decision(Action.ALLOW, Tier.ALLOW_LIST, **common),
            "internet_off": Decision(Action.REFUSED, Tier.SCHEDULE, rule="internet: off",
                                     **common),
        }  # fmt: skip
        for name, decision in made.items():
            object.__setattr__(self, name, decision)

    def compute_state(self, unix_time: float) -> State:
        """What the profile does in the minute of `unix_time`: its schedules applied."""
        ranks = {"off": 0, "moderate": 1, "strict": 2}
        extra, off, search, youtube, active = 0, False, self.search, self.youtube, []
        for schedule in self.schedules:
            if not schedule.active(unix_time):
                continue
            active.append(schedule.name)
            for cat in schedule.block:
                extra |= self.cat_bits.get(cat, 0)
            for service in schedule.block_services:
                extra |= self.service_bits.get(service, 0)
            off = off or schedule.internet_off
            if schedule.safe_search and ranks[schedule.safe_search] > ranks[search]:
                search = schedule.safe_search
            if schedule.youtube and ranks[schedule.youtube] > ranks[youtube]:
                youtube = schedule.youtube
        return State(self.mask | extra, extra & ~self.mask, off, search, youtube, tuple(active))

    def level_for(self, engine: Engine, state: State) -> str:
        return state.youtube if engine.setting == "youtube" else state.search


@dataclass(frozen=True, slots=True, eq=False)
class PolicySnapshot:
    """Everything `decide()` needs; attributes the server reads are listed in policy/README.md."""

    generation: int
    source: str  # the policy file
    timezone: Any  # ZoneInfo of the policy
    profiles: dict[str, Profile]
    default_profile: Profile
    categories: dict[str, int]  # category id -> bit in `index`
    index: CategoryIndex  # every category list
    mandated: CategoryIndex | None  # the authorities' list, its own index: no allow reaches it
    mandated_block_mode: BlockMode
    mandated_ttl: int
    own: CategoryIndex | None  # profiles' allow/deny/keyword rules
    safesearch: SafeSearchTable
    bypass_names: dict[str, Action]  # exact name -> NXDOMAIN / NODATA
    block_svcb: bool  # blocked names are blocked for HTTPS/SVCB queries too
    trusted_forwarders: tuple[Network, ...]
    networks: PrefixTable  # client address -> owner number, longest prefix (0: none)
    network_profiles: tuple[Profile, ...]  # owner number -> profile; 0 is the default profile
    list_sizes: dict[str, int]  # category -> rules (metrics)
    warnings: list[Problem]
    expect: list[Expectation]
    sources: list[dict[str, Any]]  # per list: category, id, path, rules, rejects, stale, digest
    compile_seconds: float = 0.0
    cache_dir: str = ""  # where the compiled list indexes are cached
    overlay: Path | None = None  # the file approved unblock requests are written to
    has_keywords: bool = False  # the category lists have keyword rules
    own_keywords: bool = False  # some profile has keyword rules
    special_names: frozenset[str] = frozenset()  # safe-search and bypass names (exact)
    keep_ratio: float = 0.5  # `lists.min_keep_ratio`: how far the mandated list may shrink
    devices: dict[str, Profile] = field(default_factory=dict)  # device name -> its variant
    # What a client may present on encrypted DNS (a DoH path after /dns-query/, the first label
    # of the TLS server name) -> the profile or device variant it selects.
    identities: dict[str, Profile] = field(default_factory=dict)
    # Services (blocklists/services.yaml) the policy blocks: each has a bit in the category
    # bit space after the categories' (`service_base` up), matched in the own index at
    # `service_shift` up (decide() moves those bits over: services cost no index of their own).
    services: dict[str, int] = field(default_factory=dict)  # service id -> its hits bit
    service_info: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # vi, en, cat
    service_base: int = 0
    service_shift: int = 0  # 0: no service is blocked anywhere

    @property
    def profile_ids(self) -> list[str]:
        return list(self.profiles)

    @property
    def profile_count(self) -> int:
        """Profiles and device variants: the range of `Profile.num`."""
        return len(self.profiles) + len(self.devices)

    def _by_address(self, text: str) -> Profile:
        ip = client_ip(text)
        if ip is None:
            return self.default_profile
        return self.network_profiles[self.networks.owner(ip.version, int(ip))]

    def _trusted(self, client: str) -> bool:
        ip = client_ip(client)
        return ip is not None and any(ip in net for net in self.trusted_forwarders)

    def profile_for_client(self, client: str, ecs: str | None = None) -> Profile:
        """Client (or, from a trusted forwarder, its EDNS Client Subnet) -> profile. Not
        memoized: `DecisionMemo.profile` is the cached way."""
        if ecs is not None and self._trusted(client):
            return self._by_address(ecs.split("/", 1)[0])
        return self._by_address(client)

    def profile_for(self, client: str, ecs: str | None = None) -> str:
        return self.profile_for_client(client, ecs).id

    def category_of(self, bits: int) -> str | None:
        """The first category id (in bit order) among `bits`."""
        for cat, bit in self.categories.items():
            if bits >> bit & 1:
                return cat
        return None

    def service_of(self, bits: int) -> str | None:
        """The first service id (in bit order) among `bits`."""
        for service, bit in self.services.items():
            if bits >> bit & 1:
                return service
        return None

    def profile_name(self, pid: str, lang: str) -> str:
        """The profile's display name in `lang`, else its id."""
        profile = self.profiles.get(pid)
        return (profile.display.get(lang) if profile else None) or pid

    def device_paths(self) -> dict[str, str]:
        """Device name -> its DoH path identity (`profile/token`), for its set-up page."""
        return {p.device: key for key, p in self.identities.items() if p.device and "/" in key}

    def check_expectations(self) -> list[str]:
        """Failures of the policy's own `expect` samples, one line each."""
        return [msg for sample in self.expect if (msg := check_sample(self, sample))]
