"""The policy file's schema: YAML document in, a validated `PolicySpec` (or every problem) out.

Validation is separate from compilation so `safe-resolver check` can report every mistake with its
file:line:column without reading a single blocklist. Nothing here touches the lists on disk.
policy/README.md documents each key; keep the two in step.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from resolver.lists.model import Scope
from resolver.lists.normalize import name_or_reason
from resolver.lists.services import Services
from resolver.policy.decision import Action, BlockMode
from resolver.policy.networks import ClientNetworks, Shown
from resolver.policy.prefixes import Network, PrefixTable, parse_network
from resolver.policy.presets import PRESET_NAMES, Preset, preset, preset_categories
from resolver.policy.safesearch import LEVELS
from resolver.policy.schedule import Schedule, Window, overlapping, parse_window
from resolver.yamlsource import Checker, ConfigError, Document, Path_, Problem, suggest

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
DEFAULT_BLOCK_TTL = 60
MANDATED = "mandated"

TOP_KEYS = (
    "version", "timezone", "clients", "profiles", "schedules", "mandated", "bypass", "lists",
    "expect", "overlay", "safesearch", "devices", "identities",
)  # fmt: skip
PROFILE_KEYS = (
    "age", "under16", "block", "unblock", "deny", "allow", "keywords", "safe_search",
    "block_mode", "block_ttl", "schedules", "log", "bypass", "description", "token",
    "display", "block_services", "allow_services",
)  # fmt: skip
DEVICE_KEYS = ("profile", "token", "schedules", "allow", "deny", "description",
               "block_services", "allow_services")  # fmt: skip
SCHEDULE_KEYS = ("windows", "timezone", "except", "extra", "block", "safe_search", "internet",
                 "block_services")  # fmt: skip
DISPLAY_LANGS = ("vi", "en")
MAX_DISPLAY = 80  # characters of a profile's display name
BYPASS_KEYS = ("firefox_canary", "icloud_private_relay", "ddr", "block_doh", "https_svcb")
EXPECT_ACTIONS = tuple(a.value for a in Action)
IDENTITY_MODES = ("tokens", "names")
# A device or profile token is one DNS label (it goes into the DoT server name) that nobody can
# guess: 16 or more lower-case letters and digits (16 of them are 82 bits).
TOKEN = re.compile(r"[a-z0-9]{16,48}")
# A device name is a DNS label too (its setup page, and its DoT name under `identities: names`).
DEVICE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class NameRule:
    """An allow or deny entry of a profile: `d` (d and below), `=d` (d only), `*.d` (below d)."""

    name: str
    scope: Scope
    text: str  # as written
    where: str  # file:line:column, for explain and warnings


@dataclass(slots=True)
class ProfileSpec:
    id: str
    preset: Preset
    categories: frozenset[str]  # preset + block - unblock (schedules add more while active)
    deny: list[NameRule]
    allow: list[NameRule]
    keywords: list[str]
    safe_search: str  # off / moderate / strict
    youtube: str
    block_mode: BlockMode
    block_ttl: int
    schedules: tuple[str, ...]
    log: bool
    bypass: bool  # bypass-prevention switches apply to this profile
    where: str
    token: str | None = None  # identity for DoH/DoT/DoQ without a device (`/dns-query/TOKEN`)
    display: dict[str, str] = field(default_factory=dict)  # lang -> name shown instead of the id
    block_services: frozenset[str] = frozenset()  # services (blocklists/services.yaml) blocked
    allow_services: frozenset[str] = frozenset()  # services whose domains are allowed
    paused: frozenset[str] = frozenset()  # categories an overlay pause lets through, schedules too


@dataclass(slots=True)
class DeviceSpec:
    """One child's device: a profile plus its own schedules and allow/deny entries.

    `identity` is what the device presents (DoH path, TLS server name): its token, or its name
    under `identities: names`."""

    name: str
    profile: str
    identity: str
    schedules: tuple[str, ...]
    allow: list[NameRule]
    deny: list[NameRule]
    where: str
    block_services: frozenset[str] = frozenset()
    allow_services: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Expectation:
    """One sample: `client` asking `name` (type `qtype`, at `at`) should get `action`."""

    client: str
    name: str
    qtype: int
    at: datetime | None
    action: str
    category: str | None
    where: str
    device: str | None = None  # asked by this device (its identity) instead of by address


@dataclass(slots=True)
class PolicySpec:
    file: Path
    timezone: ZoneInfo
    networks: PrefixTable  # client address -> owner number (longest prefix)
    network_profiles: tuple[str, ...]  # owner number -> profile id; 0 is the default profile
    default_profile: str
    trusted_forwarders: list[Network]
    profiles: dict[str, ProfileSpec]
    schedules: dict[str, Schedule]
    mandated_sources: list[dict[str, Any]]
    mandated_block_mode: BlockMode
    mandated_ttl: int
    bypass: dict[str, bool]
    lists: dict[str, Any]  # the `lists` section, handed to resolver.lists.resolve_sources
    expect: list[Expectation]
    overlay: Path | None
    safesearch: Path | None
    lists_at: tuple[int, int] = (1, 1)
    warnings: list[Problem] = field(default_factory=list)
    devices: dict[str, DeviceSpec] = field(default_factory=dict)
    identities: str = "tokens"  # or "names": names and profile ids identify (private network)
    overlay_expiry: float | None = None  # the earliest `until` of the overlay entries applied
    services: Services | None = None  # the services catalogue the policy was checked against


QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
          "SRV": 33, "SVCB": 64, "HTTPS": 65, "ANY": 255, "CAA": 257}  # fmt: skip


def qtype_number(value: str | int) -> int | None:
    """`A`, `aaaa`, `TYPE65` or `65` -> the number; None when unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < 65536 else None
    text = str(value).upper()
    if text in QTYPES:
        return QTYPES[text]
    digits = text.removeprefix("TYPE")
    return int(digits) if digits.isdigit() and int(digits) < 65536 else None


def parse_rule(text: str) -> NameRule | str:
    """A profile allow/deny entry, or why it cannot be one."""
    raw = text.strip()
    scope = Scope.SUBTREE
    if raw.startswith("="):
        scope, raw = Scope.EXACT, raw[1:]
    elif raw.startswith("*."):
        scope, raw = Scope.BELOW, raw[2:]
    name, reason = name_or_reason(raw)
    if reason:
        return f"bad domain {text!r} ({reason})"
    return NameRule(name, scope, text, "")


def parse_time(value: Any, tz: ZoneInfo) -> datetime | str:
    """An ISO 8601 time; without an offset it is wall-clock time in the policy's zone."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return f"bad time {value!r}: expected ISO 8601, e.g. 2026-03-02T09:00+07:00"
    when: datetime = value if value.tzinfo else value.replace(tzinfo=tz)
    return when


class _Reader:
    """Walks one policy document with a `Checker` and builds the spec."""

    def __init__(
        self,
        doc: Document,
        categories: frozenset[str],
        read_lines: Callable[[Path], Iterable[str]] | None = None,
        services: Collection[str] = (),
    ) -> None:
        self.doc = doc
        self.check = Checker(doc)
        self.categories = categories
        self.read_lines = read_lines
        self.services = services

    def where(self, path: Path_) -> str:
        return self.check.where(path)

    # --- small typed getters -------------------------------------------------------------
    def _bool(self, path: Path_, value: Any, default: bool) -> bool:
        if value is None:
            return default
        return value if self.check.type_ok(path, value, bool) else default

    def _int(self, path: Path_, value: Any, default: int, low: int, high: int) -> int:
        if value is None:
            return default
        if not self.check.type_ok(path, value, int):
            return default
        if not low <= value <= high:
            self.check.error(path, f"{path[-1]} must be between {low} and {high}, not {value}")
            return default
        return int(value)

    def _zone(self, path: Path_, value: Any, default: ZoneInfo) -> ZoneInfo:
        if value is None:
            return default
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.check.error(
                path,
                f"unknown time zone {value!r} (use an IANA name such as "
                f"{DEFAULT_TIMEZONE} or Europe/Paris)",
            )
            return default

    def _categories(self, path: Path_, value: Any) -> set[str]:
        out = set()
        for i, cat in enumerate(self.check.str_list(path, value)):
            if cat not in self.categories:
                self.check.error(
                    (*path, i), f"unknown category {cat!r}{suggest(cat, self.categories)}"
                )
            else:
                out.add(cat)
        return out

    def _services(self, path: Path_, value: Any) -> frozenset[str]:
        out = set()
        for i, sid in enumerate(self.check.str_list(path, value)):
            if sid not in self.services:
                self.check.error(
                    (*path, i),
                    f"unknown service {sid!r}{suggest(sid, self.services)} "
                    "(blocklists/services.yaml lists them)",
                )
            else:
                out.add(sid)
        return frozenset(out)

    def _service_choice(self, at: Path_, spec: dict[str, Any]) -> tuple[frozenset[str], ...]:
        """`block_services` and `allow_services` of a profile or device; both: the allow wins."""
        block = self._services((*at, "block_services"), spec.get("block_services"))
        allow = self._services((*at, "allow_services"), spec.get("allow_services"))
        for sid in sorted(block & allow):
            self.check.warn(
                (*at, "block_services"),
                f"service {sid!r} is both blocked and allowed; the allow wins",
            )
        return block, allow

    def _display(self, path: Path_, value: Any) -> dict[str, str]:
        """`display: Tiểu học` or `display: {vi: Tiểu học, en: Primary school}`: the name the
        block page shows for the profile (one language given serves both)."""
        if value is None:
            return {}
        texts: dict[str, str] = {}
        if isinstance(value, str):
            texts = dict.fromkeys(DISPLAY_LANGS, value)
        else:
            spec = self.check.mapping(path, value, DISPLAY_LANGS)
            for lang in DISPLAY_LANGS:
                text = spec.get(lang)
                if text is not None and self.check.type_ok((*path, lang), text, str):
                    texts[lang] = text
        out = {lang: " ".join(text.split()) for lang, text in texts.items() if text.strip()}
        if any(len(text) > MAX_DISPLAY for text in out.values()):
            self.check.error(path, f"a display name has at most {MAX_DISPLAY} characters")
        for lang in DISPLAY_LANGS:  # one language given: it serves both
            other = DISPLAY_LANGS[1 - DISPLAY_LANGS.index(lang)]
            if lang not in out and other in out:
                out[lang] = out[other]
        return out

    def _levels(self, path: Path_, value: Any, default: tuple[str, str]) -> tuple[str, str]:
        """`safe_search: strict` or `{level: strict, youtube: moderate}`."""
        if value is None:
            return default
        if isinstance(value, dict):
            spec = self.check.mapping(path, value, ["level", "youtube"])
            level = default[0]
            if "level" in spec:
                level = self.check.choice((*path, "level"), spec["level"], LEVELS) or level
            youtube = level if "level" in spec else default[1]
            if "youtube" in spec:
                youtube = self.check.choice((*path, "youtube"), spec["youtube"], LEVELS) or youtube
            return level, youtube
        chosen = self.check.choice(path, value, LEVELS)
        return (chosen, chosen) if chosen else default

    def _dates(self, path: Path_, value: Any) -> frozenset[date]:
        if value is None:
            return frozenset()
        items = value if isinstance(value, list) else [value]
        out = set()
        for i, item in enumerate(items):
            at = (*path, i) if isinstance(value, list) else path
            if isinstance(item, datetime) or not isinstance(item, date | str):
                self.check.error(at, f"bad date {item!r}: expected YYYY-MM-DD")
                continue
            if isinstance(item, str):
                try:
                    item = date.fromisoformat(item)
                except ValueError:
                    self.check.error(at, f"bad date {item!r}: expected YYYY-MM-DD")
                    continue
            out.add(item)
        return frozenset(out)

    # --- sections --------------------------------------------------------------------------
    def read(self, base: Path) -> PolicySpec:
        check = self.check
        root = check.mapping((), self.doc.data, TOP_KEYS, required=["profiles"])
        if "version" in root and root["version"] != 1:
            check.error(
                ("version",), f"unsupported policy version {root['version']!r} (expected 1)"
            )
        tz = self._zone(("timezone",), root.get("timezone"), ZoneInfo(DEFAULT_TIMEZONE))
        schedules = self.schedules(root.get("schedules"), tz)
        bypass = self.bypass(root.get("bypass"))
        profiles = self.profiles(root.get("profiles"), schedules, bypass)
        networks, default, forwarders = self.clients(root.get("clients"), profiles, base)
        table, overlaps = networks.table()
        check.problems += overlaps
        identities = (
            check.choice(("identities",), root.get("identities", "tokens"), IDENTITY_MODES)
            or "tokens"
        )
        devices = self.devices(root.get("devices"), profiles, schedules, identities)
        mandated = check.mapping(
            ("mandated",), root.get("mandated"), ["sources", "block_mode", "block_ttl", "allow"]
        )
        if "allow" in mandated:
            check.error(
                ("mandated", "allow"),
                "the mandated list cannot have exceptions: no "
                "allow overrides it (ask the authority to correct the list instead)",
                key=True,
            )
        sources = []
        for i, src in enumerate(self._list(("mandated", "sources"), mandated.get("sources"))):
            at = ("mandated", "sources", i)
            src = check.mapping(at, src, None)
            if src.get("category", MANDATED) != MANDATED:
                check.error((*at, "category"), "mandated sources belong to category 'mandated'")
            sources.append({**src, "category": MANDATED})
        block_mode = self._block_mode(
            ("mandated", "block_mode"), mandated.get("block_mode"), BlockMode.BLOCKPAGE
        )
        ttl = self._int(
            ("mandated", "block_ttl"), mandated.get("block_ttl"), DEFAULT_BLOCK_TTL, 0, 86400
        )
        lists = check.mapping(("lists",), root.get("lists"), None)
        overlay = self._path(base, "overlay", root.get("overlay"))
        safesearch = self._path(base, "safesearch", root.get("safesearch"))
        expect = read_expectations(check, ("expect",), root.get("expect"), tz, devices)
        spec = PolicySpec(
            Path(self.doc.file),
            tz,
            table,
            networks.owners,
            default,
            forwarders,
            profiles,
            schedules,
            sources,
            block_mode,
            ttl,
            bypass,
            lists,
            expect,
            overlay,
            safesearch,
        )
        spec.lists_at = self.doc.where(("lists",))
        spec.devices, spec.identities = devices, identities
        self.warn_unreachable(spec, networks.used)
        return spec

    def _list(self, path: Path_, value: Any) -> list[Any]:
        if value is None:
            return []
        return value if self.check.type_ok(path, value, list) else []

    def _path(self, base: Path, key: str, value: Any) -> Path | None:
        if value is None or not self.check.type_ok((key,), value, str):
            return None
        return base / str(value)

    def _block_mode(self, path: Path_, value: Any, default: BlockMode) -> BlockMode:
        if value is None:
            return default
        mode = self.check.choice(path, value, [m.value for m in BlockMode])
        return BlockMode(mode) if mode else default

    def schedules(self, value: Any, tz: ZoneInfo) -> dict[str, Schedule]:
        out = {}
        for name, spec in self.check.mapping(("schedules",), value, None).items():
            at = ("schedules", name)
            spec = self.check.mapping(at, spec, SCHEDULE_KEYS, required=["windows"])
            windows: list[Window] = []
            for i, text in enumerate(self.check.str_list((*at, "windows"), spec.get("windows"))):
                window = parse_window(text)
                if isinstance(window, str):
                    self.check.error((*at, "windows", i), window)
                else:
                    windows.append(window)
            for a, b in overlapping(tuple(windows)):
                self.check.warn(
                    (*at, "windows", windows.index(b)), f"windows {a.text!r} and {b.text!r} overlap"
                )
            level, youtube = self._levels((*at, "safe_search"), spec.get("safe_search"), ("", ""))
            internet = spec.get("internet", "on")
            internet_off = self.check.choice((*at, "internet"), internet, ("on", "off")) == "off"
            if not ({"block", "block_services"} & set(spec)) and not level and not internet_off:
                self.check.warn(
                    at,
                    f"schedule {name!r} does nothing: give it block, block_services, safe_search "
                    "or internet: off",
                )
            out[str(name)] = Schedule(
                str(name),
                self._zone((*at, "timezone"), spec.get("timezone"), tz),
                tuple(windows),
                self._dates((*at, "except"), spec.get("except")),
                self._dates((*at, "extra"), spec.get("extra")),
                frozenset(self._categories((*at, "block"), spec.get("block"))),
                level or None,
                youtube or None,
                internet_off,
                self._services((*at, "block_services"), spec.get("block_services")),
            )
        return out

    def bypass(self, value: Any) -> dict[str, bool]:
        spec = self.check.mapping(("bypass",), value, BYPASS_KEYS)
        return {k: self._bool(("bypass", k), spec.get(k), True) for k in BYPASS_KEYS}

    def profiles(
        self, value: Any, schedules: dict[str, Schedule], bypass: dict[str, bool]
    ) -> dict[str, ProfileSpec]:
        out = {}
        for pid, spec in self.check.mapping(("profiles",), value, None).items():
            at = ("profiles", pid)
            spec = self.check.mapping(at, spec, PROFILE_KEYS)
            chosen = preset("unrestricted")
            assert chosen is not None
            if "age" in spec:
                found = preset(str(spec["age"]))
                if found is None:
                    self.check.error(
                        (*at, "age"),
                        f"unknown age mode {spec['age']!r}; expected "
                        f"one of {', '.join(PRESET_NAMES)}"
                        f"{suggest(str(spec['age']), PRESET_NAMES)}",
                    )
                else:
                    chosen = found
            else:
                self.check.warn(
                    at, f"profile {pid!r} has no age mode; it starts from 'unrestricted'", key=True
                )
            under16 = spec.get("under16")
            if under16 is not None and not self.check.type_ok((*at, "under16"), under16, bool):
                under16 = None
            block = self._categories((*at, "block"), spec.get("block"))
            unblock = self._categories((*at, "unblock"), spec.get("unblock"))
            if MANDATED in unblock:
                self.check.error(
                    (*at, "unblock"),
                    "the mandated list cannot be unblocked: it applies to every client",
                )
            categories = (preset_categories(chosen, under16=under16) | block) - unblock
            use_bypass = self._bool((*at, "bypass"), spec.get("bypass"), True)
            if use_bypass and bypass["block_doh"]:
                categories |= {"doh"} if "doh" in self.categories else set()
            categories -= {MANDATED}
            level, youtube = self._levels(
                (*at, "safe_search"), spec.get("safe_search"), (chosen.safe_search, chosen.youtube)
            )
            names = self._schedule_names((*at, "schedules"), spec.get("schedules"), schedules)
            block_services, allow_services = self._service_choice(at, spec)
            out[str(pid)] = ProfileSpec(
                str(pid), chosen, frozenset(categories),
                self._rules((*at, "deny"), spec.get("deny")),
                self._rules((*at, "allow"), spec.get("allow")),
                [k.lower() for k in self.check.str_list((*at, "keywords"), spec.get("keywords"))],
                level, youtube,
                self._block_mode((*at, "block_mode"), spec.get("block_mode"), BlockMode.BLOCKPAGE),
                self._int((*at, "block_ttl"), spec.get("block_ttl"), DEFAULT_BLOCK_TTL, 0, 86400),
                tuple(names),
                self._bool((*at, "log"), spec.get("log"), True),
                use_bypass,
                self.where(at),
                self._token((*at, "token"), spec.get("token")),
                self._display((*at, "display"), spec.get("display")),
                block_services, allow_services,
            )  # fmt: skip
        if not out and self.check.ok:
            self.check.error(("profiles",), "the policy defines no profiles")
        return out

    def _schedule_names(
        self, path: Path_, value: Any, schedules: dict[str, Schedule]
    ) -> tuple[str, ...]:
        names = []
        for i, name in enumerate(self.check.str_list(path, value)):
            if name not in schedules:
                self.check.error((*path, i), f"unknown schedule {name!r}{suggest(name, schedules)}")
            else:
                names.append(name)
        return tuple(names)

    def _token(self, path: Path_, value: Any) -> str | None:
        if value is None or not self.check.type_ok(path, value, str):
            return None
        if not TOKEN.fullmatch(value):
            self.check.error(
                path,
                "a token is 16 to 48 lower-case letters and digits, so nobody can guess it "
                f"(for example {new_token()})",
            )
            return None
        return str(value)

    def devices(
        self,
        value: Any,
        profiles: dict[str, ProfileSpec],
        schedules: dict[str, Schedule],
        identities: str,
    ) -> dict[str, DeviceSpec]:
        """`devices: {an-phone: {profile, token, schedules, allow, deny}}`."""
        check = self.check
        out: dict[str, DeviceSpec] = {}
        seen: dict[str, str] = {}  # identity -> device, so two devices never share one
        for name, spec in check.mapping(("devices",), value, None).items():
            at = ("devices", name)
            spec = check.mapping(at, spec, DEVICE_KEYS, required=["profile"])
            if not DEVICE_NAME.fullmatch(str(name)):
                check.error(
                    at,
                    f"device name {name!r}: use lower-case letters, digits and '-' (a DNS "
                    "label of at most 32 characters), e.g. an-phone",
                    key=True,
                )
                continue
            pid = spec.get("profile")
            if pid is None:
                continue
            if not check.type_ok((*at, "profile"), pid, str, what="a profile name"):
                continue
            if pid not in profiles:
                check.error((*at, "profile"), f"unknown profile {pid!r}{suggest(pid, profiles)}")
                continue
            token = self._token((*at, "token"), spec.get("token"))
            if token is None and "token" not in spec and identities != "names":
                check.error(
                    at,
                    f"device {name!r} needs a token, its identity on encrypted DNS (for example "
                    f"token: {new_token()}); or set `identities: names` on a private network",
                    key=True,
                )
            identity = token or str(name)
            block_services, allow_services = self._service_choice(at, spec)
            if identity in seen:
                check.error((*at, "token"), f"device {name!r} has the token of {seen[identity]!r}")
            seen[identity] = str(name)
            out[str(name)] = DeviceSpec(
                str(name),
                pid,
                identity,
                self._schedule_names((*at, "schedules"), spec.get("schedules"), schedules),
                self._rules((*at, "allow"), spec.get("allow")),
                self._rules((*at, "deny"), spec.get("deny")),
                self.where(at),
                block_services,
                allow_services,
            )
        return out

    def _rules(self, path: Path_, value: Any) -> list[NameRule]:
        out = []
        for i, text in enumerate(self.check.str_list(path, value)):
            rule = parse_rule(text)
            if isinstance(rule, str):
                self.check.error((*path, i), rule)
            else:
                out.append(NameRule(rule.name, rule.scope, text, self.where((*path, i))))
        return out

    def clients(
        self, value: Any, profiles: dict[str, ProfileSpec], base: Path
    ) -> tuple[ClientNetworks, str, list[Network]]:
        check = self.check
        spec = check.mapping(
            ("clients",),
            value,
            ["default", "networks", "networks_file", "trusted_forwarders"],
            required=["default"],
        )
        default = spec.get("default")
        if default is not None and check.type_ok(("clients", "default"), default, str):
            if default not in profiles and profiles:
                check.error(
                    ("clients", "default"),
                    f"unknown profile {default!r}{suggest(default, profiles)}",
                )
        elif value is None:
            check.error((), "the policy needs clients.default: the profile for unlisted clients")
        networks = ClientNetworks(profiles, str(default or ""))
        networks.begin(self.doc.file)
        written = check.mapping(("clients", "networks"), spec.get("networks"), None)
        entries = Checker(self.doc)  # its problems are summarized: a few shown, the rest counted
        for key, pid in written.items():
            at = ("clients", "networks", key)
            if not entries.type_ok(at, pid, str, what="a profile name"):
                continue
            error = networks.unknown(pid)
            if error is not None:
                entries.error(at, error)
                continue
            error = networks.add(str(key), pid, *self.doc.where(at, key=True))
            if error is not None:
                entries.error(at, error, key=True)
        shown = Shown("bad networks")
        for problem in entries.problems:
            shown.add(problem)
        check.problems += shown.problems()
        file = spec.get("networks_file")
        if file is not None and check.type_ok(("clients", "networks_file"), file, str):
            path = base / file
            try:
                if self.read_lines is None:
                    raise OSError("no file reader given")
                check.problems += networks.read_lines(self.read_lines(path), str(path))
            except OSError as exc:
                check.error(
                    ("clients", "networks_file"),
                    f"cannot read networks file {str(path)!r}: {exc.strerror or exc}",
                )
        forwarders = []
        for i, text in enumerate(
            check.str_list(("clients", "trusted_forwarders"), spec.get("trusted_forwarders"))
        ):
            net = parse_network(text)
            if isinstance(net, str):
                check.error(("clients", "trusted_forwarders", i), net)
            else:
                forwarders.append(net)
        return networks, str(default or ""), forwarders

    def warn_unreachable(self, spec: PolicySpec, used: set[str]) -> None:
        used = used | {spec.default_profile}
        used |= {d.profile for d in spec.devices.values()}
        used |= {pid for pid, p in spec.profiles.items() if p.token}
        for pid in spec.profiles:
            if pid not in used:
                self.check.warn(
                    ("profiles", pid),
                    f"profile {pid!r} is not used by any client network nor as the default",
                    key=True,
                )
        for pid, prof in spec.profiles.items():
            denied = {(r.name, r.scope) for r in prof.deny}
            for rule in prof.allow:
                if (rule.name, rule.scope) in denied:
                    self.check.warn(
                        ("profiles", pid, "deny"),
                        f"{rule.text!r} is both allowed and denied; the allow wins",
                    )


def new_token() -> str:
    """A fresh random identity token (the policy errors suggest one)."""
    return secrets.token_hex(12)


def read_expectations(
    check: Checker,
    path: Path_,
    value: Any,
    tz: ZoneInfo,
    devices: Collection[str] = (),
) -> list[Expectation]:
    """Sample rows `{client, name, type?, at?, action|expect, category?, device?}` (policy or
    test file); `device` must be one of `devices`."""
    out: list[Expectation] = []
    if value is None:
        return out
    if not check.type_ok(path, value, list):
        return out
    keys = ["client", "name", "type", "at", "action", "expect", "category", "note", "device"]
    for i, row in enumerate(value):
        at = (*path, i)
        row = check.mapping(at, row, keys, required=["name"])
        if not row:
            continue
        if "client" not in row and "device" not in row:
            check.error(at, "each sample needs `client` (an address) or `device`")
            continue
        wanted = row.get("action", row.get("expect"))
        if wanted is None:
            check.error(at, "each sample needs `action` (or `expect`): allow, block, rewrite, ...")
            continue
        action = check.choice(
            (*at, "action" if "action" in row else "expect"), wanted, EXPECT_ACTIONS
        )
        client = parse_network(row.get("client", "127.0.0.1"))
        if isinstance(client, str) or client.num_addresses != 1:
            check.error((*at, "client"), f"bad client address {row['client']!r}")
            continue
        qtype = qtype_number(row.get("type", "A"))
        if qtype is None:
            check.error((*at, "type"), f"unknown query type {row.get('type')!r}")
        when = None
        if "at" in row:
            parsed = parse_time(row["at"], tz)
            if isinstance(parsed, str):
                check.error((*at, "at"), parsed)
            else:
                when = parsed
        name, reason = name_or_reason(str(row["name"]))
        if reason:
            check.error((*at, "name"), f"bad name {row['name']!r} ({reason})")
        device = row.get("device")
        if device is not None and str(device) not in devices:
            check.error(
                (*at, "device"), f"unknown device {device!r}{suggest(str(device), devices)}"
            )
            continue
        if action and qtype is not None and not reason:
            out.append(
                Expectation(
                    str(client.network_address),
                    name,
                    qtype,
                    when,
                    action,
                    row.get("category"),
                    check.where(at),
                    None if device is None else str(device),
                )
            )
    return out


OVERLAY_KINDS = ("allow", "pause")
# `approved_at` is the older name of `created`, still read.
OVERLAY_KEYS = ("id", "profile", "name", "category", "service", "until", "note", "by", "created",
                "approved_at", "request")  # fmt: skip
OVERLAY_TARGETS = ("name", "category", "service")


def overlay_until(value: Any, tz: ZoneInfo) -> float | str | None:
    """An overlay entry's `until` as Unix time (None: permanent), or the problem with it."""
    if value is None:
        return None
    when = parse_time(value, tz)
    return when if isinstance(when, str) else when.timestamp()


def apply_overlay(
    doc: Document,
    spec: PolicySpec,
    check_problems: list[Problem],
    *,
    categories: Collection[str],
    now: float,
    services: Services | None = None,
) -> None:
    """Merge the overlay's entries that still apply at `now` into the profiles, and set
    `spec.overlay_expiry` to the earliest `until` among them (when a reload is due).

    Format (written by `resolver.store.overlay`): `allow:` approved unblock requests, `pause:`
    a teacher's pauses, each `{id, profile, name | category | service, until, note, by, ...}`.
    A name (or a service's domains, from the `services` catalogue) becomes an allow rule of the
    profile; a paused category is blocked neither by the profile nor by its schedules. An entry
    whose `until` has passed is skipped. A bad entry (a profile renamed since, say) is a warning
    and is left out: what it would allow stays blocked, and the policy still loads.
    """
    check = Checker(doc)
    root = check.mapping((), doc.data, OVERLAY_KINDS)
    expiry: float | None = None
    for kind in OVERLAY_KINDS:
        rows = root.get(kind) or []
        if not check.type_ok((kind,), rows, list):
            continue
        for i, row in enumerate(rows):
            until = _overlay_entry(check, (kind, i), kind, row, spec, categories, now, services)
            if until is not None:
                expiry = until if expiry is None else min(expiry, until)
    spec.overlay_expiry = expiry
    check_problems.extend(check.problems)


def _overlay_entry(
    check: Checker,
    at: Path_,
    kind: str,
    row: Any,
    spec: PolicySpec,
    categories: Collection[str],
    now: float,
    services: Services | None,
) -> float | None:
    """Apply one overlay entry; its `until` when it applies and expires, else None."""
    problems = len(check.problems)
    row = check.mapping(at, row, OVERLAY_KEYS, required=["profile"])
    targets = [key for key in OVERLAY_TARGETS if key in row]
    if len(targets) != 1 or (kind == "allow" and targets != ["name"]):
        need = "a name" if kind == "allow" else "one of name, category, service"
        check.error(at, f"an overlay {kind} entry needs {need}")
    pid = row.get("profile")
    if pid is not None and pid not in spec.profiles:
        check.error((*at, "profile"), f"unknown profile {pid!r}{suggest(str(pid), spec.profiles)}")
    until = overlay_until(row.get("until"), spec.timezone)
    if isinstance(until, str):
        check.error((*at, "until"), until)
    elif until is None and kind == "pause":
        check.error(at, "a pause needs an `until`")
    rules: list[NameRule] = []
    paused: str | None = None
    if "name" in row:
        rule = parse_rule(str(row["name"]))
        if isinstance(rule, str):
            check.error((*at, "name"), rule)
        else:
            rules.append(rule)
    if "category" in row:
        paused = str(row["category"])
        if paused == MANDATED:
            check.error((*at, "category"), "the mandated list cannot be paused")
        elif paused not in categories:
            hint = suggest(paused, categories)
            check.error((*at, "category"), f"unknown category {paused!r}{hint}")
    if "service" in row:
        known = services.services if services is not None else {}
        service = known.get(str(row["service"]))
        if service is None:
            hint = suggest(str(row["service"]), known)
            check.error((*at, "service"), f"unknown service {row['service']!r}{hint}")
        else:
            rules += [r for r in map(parse_rule, service.domains) if not isinstance(r, str)]
    if len(check.problems) > problems:
        # Demoted: one stale entry must not stop the policy from loading.
        check.problems[problems:] = [
            replace(p, severity="warning", message=f"{p.message} (entry left out)")
            for p in check.problems[problems:]
        ]
        return None
    if isinstance(until, float) and until <= now:
        return None  # expired: the supervisor drops it from the file
    profile = spec.profiles[str(pid)]
    where = check.where(at)
    profile.allow += [NameRule(r.name, r.scope, r.text, where) for r in rules]
    if paused is not None:
        profile.paused |= {paused}
        profile.categories -= {paused}
    return until if isinstance(until, float) else None


def read_policy(
    doc: Document,
    categories: frozenset[str],
    read_overlay: Callable[[Path], Document | None] | None = None,
    read_lines: Callable[[Path], Iterable[str]] | None = None,
    *,
    now: float,
    services: Services | None = None,
) -> tuple[PolicySpec | None, list[Problem]]:
    """Validate a loaded policy document: `(spec, problems)`; spec is None on errors. Relative
    paths in it are relative to the document's folder. The caller does the I/O:
    `read_overlay(path)` loads the overlay the policy names (None when there is none yet; it
    raises ConfigError) and its entries apply as of `now` (Unix time), `read_lines(path)`
    gives the lines of `clients.networks_file` (it raises OSError). `services` is the
    services catalogue (blocklists/services.yaml)."""
    reader = _Reader(doc, categories, read_lines, services.services if services else ())
    spec = reader.read(Path(doc.file).parent)
    spec.services = services
    problems = reader.check.problems
    if spec.overlay is not None and read_overlay is not None:
        try:
            overlay = read_overlay(spec.overlay)
        except ConfigError as exc:
            problems.extend(exc.problems)
            overlay = None
        if overlay is not None:
            apply_overlay(
                overlay, spec, problems, categories=categories, now=now, services=services
            )
    if any(p.severity == "error" for p in problems):
        return None, problems
    spec.warnings = [p for p in problems if p.severity != "error"]
    return spec, problems
