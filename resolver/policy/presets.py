"""Age modes: the starting point of every profile.

A school admin should not have to list twenty categories to protect a class of seven-year-olds.
A profile names an age mode (`age: 6-10`) and then adds (`block:`) or removes (`unblock:`)
categories. The table below is the documented contract (policy/README.md repeats it); changing a
preset changes every profile that uses it, so changes belong in the changelog.
"""

from __future__ import annotations

from dataclasses import dataclass

# Always blocked except in `unrestricted`: threats to the device and the person, not "content".
SECURITY = frozenset({"malware", "phishing", "scam", "cryptojacking"})
# Ways around the filter: other resolvers (DoH/DoT), proxies and VPNs, search engines that cannot
# be forced into safe mode.
BYPASS = frozenset({"proxy", "doh", "search-unsafe"})
HARMFUL = frozenset({"adult", "gambling", "drugs", "self-harm", "weapons", "hate"})

# The programme's "under-16" rule set, on by default for 15-17 (classes mix 15- and 16-year-olds).
UNDER16 = frozenset({"dating", "violence"})


@dataclass(frozen=True, slots=True)
class Preset:
    id: str
    aliases: tuple[str, ...]
    title: str
    categories: frozenset[str]
    safe_search: str  # off / moderate / strict (Google, Bing, DuckDuckGo, ...)
    youtube: str  # off / moderate / strict


PRESETS: dict[str, Preset] = {
    p.id: p
    for p in (
        Preset(
            "under-6",
            ("preschool",),
            "Preschool (under 6)",
            SECURITY
            | BYPASS
            | HARMFUL
            | UNDER16
            | {"social", "games", "video", "chat", "piracy", "ads"},
            "strict",
            "strict",
        ),
        Preset(
            "6-10",
            ("primary",),
            "Primary school (6-10)",
            SECURITY | BYPASS | HARMFUL | UNDER16 | {"social", "chat", "piracy"},
            "strict",
            "strict",
        ),
        Preset(
            "11-14",
            ("lower-secondary",),
            "Lower secondary (11-14)",
            SECURITY | BYPASS | HARMFUL | UNDER16 | {"piracy"},
            "strict",
            "moderate",
        ),
        Preset(
            "15-17",
            ("upper-secondary",),
            "Upper secondary (15-17); the under-16 rule set is on unless `under16: false`",
            SECURITY | BYPASS | HARMFUL | {"piracy"},
            "strict",
            "moderate",
        ),
        Preset(
            "adult-staff",
            ("staff", "teachers"),
            "Adult staff (teachers, office)",
            SECURITY | {"adult", "gambling", "doh", "proxy"},
            "moderate",
            "off",
        ),
        Preset(
            "unrestricted",
            ("none",),
            "Unrestricted (mandated list only)",
            frozenset(),
            "off",
            "off",
        ),
    )
}

_BY_NAME: dict[str, Preset] = {
    name: preset for preset in PRESETS.values() for name in (preset.id, *preset.aliases)
}
PRESET_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def preset(name: str) -> Preset | None:
    """The preset called `name` (id or alias), or None."""
    return _BY_NAME.get(name)


def preset_categories(p: Preset, *, under16: bool | None) -> frozenset[str]:
    """The preset's categories; 15-17 adds the under-16 rule set unless `under16` is False."""
    if p.id == "15-17" and under16 is not False:
        return p.categories | UNDER16
    if under16:
        return p.categories | UNDER16
    return p.categories
