"""Guess a list's format from its first lines (an explicit format always wins).

Each meaningful line votes for the formats it is valid in; the most specific syntax wins
(a `||d^` line can only be AdBlock, a bare name could be several). Keyword lists cannot be
told from plain domain lists reliably, so `keywords` is never guessed: name it explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FORMATS = ("domains", "hosts", "adblock", "dnsmasq", "unbound", "wildcard", "rpz", "keywords")
DETECT_LINES = 200  # how many leading lines the reader hands to `detect_format`

_HOSTS = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.%a-z]*)\s+[^\s#]").match
_RPZ_RECORD = re.compile(
    r"\S*\s+(?:\d+\s+)?(?:IN\s+)?(?:CNAME|A|AAAA|SOA|NS|TXT)\s", re.IGNORECASE
).match
_DNSMASQ = re.compile(r"(?:server|local|address)=/").match


def detect_format(first_lines: Iterable[str]) -> str:
    """Return the most likely format name for a list starting with `first_lines`."""
    votes = dict.fromkeys(FORMATS, 0)
    for raw in first_lines:
        s = raw.strip()
        if not s:
            continue
        fmt = _line_format(s)
        if fmt:
            votes[fmt] += 1
    # Specific syntaxes first: one `||d^` or `local-zone:` line outweighs any number of
    # comment-like lines; bare names only decide between domains and wildcard.
    for fmt in ("rpz", "unbound", "dnsmasq", "adblock", "hosts"):
        if votes[fmt]:
            return fmt
    return "wildcard" if votes["wildcard"] > votes["domains"] else "domains"


def _line_format(s: str) -> str:
    first = s[0]
    if first == "!" or s.startswith("[Adblock") or s.startswith("||") or s.startswith("@@"):
        return "adblock"
    if (first == "|" and s.endswith(("^", "|"))) or "^$" in s:
        return "adblock"
    if first == "$" and s[:4].upper() in ("$TTL", "$ORI"):
        return "rpz"
    if first == ";":
        return ""  # zone-file comment: weak evidence, a record line will decide
    if first == "#":
        return ""
    if s == "server:" or s.startswith(("local-zone:", "local-data:")):
        return "unbound"
    if _DNSMASQ(s):
        return "dnsmasq"
    if _RPZ_RECORD(s) and not _HOSTS(s):
        return "rpz"
    if _HOSTS(s):
        return "hosts"
    if s.startswith("*."):
        return "wildcard"
    return "domains"
