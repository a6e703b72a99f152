"""The shared vocabulary of list parsing: what a rule is, what a rejected line is.

Every parser turns lines into `Entry` values and counted `Reject`s; the matching core and the
policy compiler consume `Entry` values only, so they never see a list's format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Scope(StrEnum):
    """Which names a domain rule covers."""

    EXACT = "exact"  # the name itself only (hosts files, `|host^`)
    SUBTREE = "subtree"  # the name and all below it (UT1, `||d^`, dnsmasq, RPZ `d` + `*.d`)
    BELOW = "below"  # only names strictly below it (`*.d` wildcard, RPZ `*.d` alone)
    # (an RPZ `d` record alone is EXACT)


class RuleAction(StrEnum):
    """What a rule asks for. Lists mostly say BLOCK; RPZ and AdBlock can say more."""

    BLOCK = "block"  # category block: the profile's block mode decides the answer
    ALLOW = "allow"  # exception (`@@||d^`, RPZ `rpz-passthru.`)
    NXDOMAIN = "nxdomain"  # RPZ `CNAME .`
    NODATA = "nodata"  # RPZ `CNAME *.`
    REWRITE = "rewrite"  # RPZ `CNAME target.` / AdGuard dnsrewrite: answer with `target`


@dataclass(frozen=True, slots=True)
class Entry:
    """One normalized domain rule.

    `name` is lower-case ASCII (IDN already punycode), no trailing dot.
    `line` is the 1-based line of the source file, kept for "explain".
    """

    name: str
    scope: Scope = Scope.SUBTREE
    action: RuleAction = RuleAction.BLOCK
    target: str | None = None  # for REWRITE: the CNAME target; an IP literal for A/AAAA rewrites
    line: int = 0


@dataclass(frozen=True, slots=True)
class Keyword:
    """A substring rule: any queried name containing `text` matches."""

    text: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class Reject:
    """A line that could not be used, with the reason an admin can act on."""

    line: int
    reason: str
    text: str  # the offending line, truncated to 200 characters


@dataclass(slots=True)
class ParseResult:
    """Everything one list file yielded."""

    format: str
    entries: list[Entry] = field(default_factory=list)
    keywords: list[Keyword] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    lines: int = 0  # lines read, comments and blanks included

    def reject_counts(self) -> dict[str, int]:
        """Rejected lines counted by reason (for metrics and reports)."""
        counts: dict[str, int] = {}
        for reject in self.rejects:
            counts[reject.reason] = counts.get(reject.reason, 0) + 1
        return counts
