"""Parsers for the line-per-rule formats: plain domains, hosts, wildcard, dnsmasq, Unbound,
keywords. (AdBlock and RPZ have their own modules: they carry more syntax.)

Each `parse_<fmt>(lines)` is pure: lines in, a `ParseResult` out, never an exception for
bad input. The common case of each format has a fast path of a few string operations and
one regex; anything unusual drops to a slow path that explains the reject.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from resolver.lists.common import Collector, merge_apex_and_below, run_parser
from resolver.lists.model import Entry, Keyword, ParseResult, RuleAction, Scope
from resolver.lists.normalize import (
    CLEAN_MATCH,
    MAX_NAME,
    is_clean,
    is_ip_literal,
    name_or_reason,
)

_SUBTREE, _EXACT, _BELOW = Scope.SUBTREE, Scope.EXACT, Scope.BELOW
_BLOCK, _REWRITE = RuleAction.BLOCK, RuleAction.REWRITE

# ---------------------------------------------------------------- plain domains


def parse_domains(lines: Iterable[str]) -> ParseResult:
    """One domain per line, `#` comments; a domain means itself AND its subdomains (UT1).

    `*.d` lines mean only the names below d (BELOW).
    """
    return run_parser("domains", lines, _domains_body)


def _domains_body(lines: Iterable[str], out: Collector) -> int:
    entries = out.result.entries
    append = entries.append
    seen: set[str] = set()
    add_seen = seen.add
    clean = CLEAN_MATCH
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip().lower()
        if not s or s[0] == "#":
            continue
        if len(s) > MAX_NAME or clean(s) is None:
            s = _domains_slow(n, raw, s, out)
            if not s:
                continue
        size = len(seen)
        add_seen(s)
        if len(seen) == size:
            out.reject(n, "duplicate", raw)
            continue
        append(Entry(s, _SUBTREE, _BLOCK, None, n))
    return n


def _domains_slow(n: int, raw: str, s: str, out: Collector) -> str:
    """Explain or rescue an unusual line; returns the SUBTREE name to add, or ""."""
    if out.bad_line(n, raw):
        return ""
    tokens = s.split("#", 1)[0].split()
    if not tokens:
        return ""
    if len(tokens) > 1:
        out.reject(n, "not-a-rule", raw)
        return ""
    text = tokens[0]
    below = text.startswith("*.")  # mixed lists write `*.d` for "below d" (mullvad social)
    name, reason = name_or_reason(text[2:] if below else text)
    if reason:
        out.reject(n, reason, raw)
    elif below:
        out.add(name, _BELOW, _BLOCK, None, n, raw)
        return ""
    return name


# ---------------------------------------------------------------- hosts

SINKHOLES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "0:0:0:0:0:0:0:0", "::0"})
# Names in a hosts file's standard header: the machine's own names, never rules.
HOSTS_HEADER_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0", "localdomain"}
)


def parse_hosts(lines: Iterable[str]) -> ParseResult:
    """`ADDRESS name [name ...]` per line; every name is one EXACT host.

    A sinkhole address (0.0.0.0, 127.0.0.1, ::, ::1) means block; any other address means
    "answer with this address" (safe-search hosts files), i.e. a REWRITE to that IP. The
    usual header lines (localhost, broadcasthost, ip6-*, fe80::1%lo0) are skipped, not rules.
    """
    return run_parser("hosts", lines, _hosts_body)


def _hosts_body(lines: Iterable[str], out: Collector) -> int:
    entries = out.result.entries
    seen: set[str] = set()
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s[0] == "#":
            continue
        if s.startswith("0.0.0.0 ") or s.startswith("127.0.0.1 "):
            name = s[s.index(" ") + 1 :].lower()
            if is_clean(name) and name not in HOSTS_HEADER_NAMES and name[:4] != "ip6-":
                if name in seen:
                    out.reject(n, "duplicate", raw)
                else:
                    seen.add(name)
                    entries.append(Entry(name, _EXACT, _BLOCK, None, n))
                continue
        _hosts_slow(n, raw, s, out)
    return n


def _hosts_slow(n: int, raw: str, s: str, out: Collector) -> None:
    if out.bad_line(n, raw):
        return
    tokens = s.split("#", 1)[0].split()
    if not tokens:
        return
    address = tokens[0]
    if len(tokens) < 2 or not is_ip_literal(address):
        out.reject(n, "not-a-rule", raw)
        return
    blocked = address in SINKHOLES
    for token in tokens[1:]:
        lowered = token.lower()
        if lowered in HOSTS_HEADER_NAMES or lowered.startswith("ip6-"):
            continue
        name, reason = name_or_reason(lowered)
        if reason:
            out.reject(n, reason, raw)
        elif blocked:
            out.add(name, _EXACT, _BLOCK, None, n, raw)
        else:
            out.add(name, _EXACT, _REWRITE, address.split("%", 1)[0], n, raw)


# ---------------------------------------------------------------- wildcard


def parse_wildcard(lines: Iterable[str]) -> ParseResult:
    """`*.d` = only names strictly below d (BELOW); a bare `d` = d itself (EXACT).

    hagezi's wildcard lists write `*.d` only and also list the apex `d` when they mean it;
    when both appear they are folded into one SUBTREE rule.
    """
    result = run_parser("wildcard", lines, _wildcard_body)
    result.entries = merge_apex_and_below(result.entries)
    return result


def _wildcard_body(lines: Iterable[str], out: Collector) -> int:
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip().lower()
        if not s or s[0] == "#":
            continue
        if s.startswith("*."):
            scope, s = _BELOW, s[2:]
        else:
            scope = _EXACT
        if not is_clean(s):
            if out.bad_line(n, raw):
                continue
            s, reason = name_or_reason(s.split("#", 1)[0])
            if reason:
                out.reject(n, reason, raw)
                continue
        out.add(s, scope, _BLOCK, None, n, raw)
    return n


# ---------------------------------------------------------------- dnsmasq

_DNSMASQ_BLOCK_VALUES = frozenset({"", "#", "0.0.0.0", "::", "127.0.0.1", "::1"})


def parse_dnsmasq(lines: Iterable[str]) -> ParseResult:
    """`server=/d/`, `local=/d/`, `address=/d/[#|0.0.0.0|::]` (several `/a/b/` allowed): block
    d and its subdomains. `address=/d/1.2.3.4` rewrites to that address; `server=/d/1.2.3.4`
    (forward elsewhere) is not a block and is counted as "not-a-rule".
    """
    return run_parser("dnsmasq", lines, _dnsmasq_body)


def _dnsmasq_body(lines: Iterable[str], out: Collector) -> int:
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s[0] == "#":
            continue
        if out.bad_line(n, raw):
            continue
        key, _, rest = s.partition("=")
        parts = rest.split("/")
        if key not in ("server", "local", "address") or len(parts) < 3 or parts[0]:
            out.reject(n, "not-a-rule", raw)
            continue
        value = parts[-1].strip()
        if value not in _DNSMASQ_BLOCK_VALUES and (key != "address" or not is_ip_literal(value)):
            out.reject(n, "not-a-rule", raw)
            continue
        action, target = (_BLOCK, None) if value in _DNSMASQ_BLOCK_VALUES else (_REWRITE, value)
        for domain in parts[1:-1]:
            lowered = domain.lower()
            name, reason = (lowered, "") if is_clean(lowered) else name_or_reason(lowered)
            if reason:
                out.reject(n, reason, raw)
            else:
                out.add(name, _SUBTREE, action, target, n, raw)
    return n


# ---------------------------------------------------------------- Unbound

_UNBOUND_BLOCK_TYPES = frozenset(
    {
        "always_nxdomain",
        "static",
        "refuse",
        "always_refuse",
        "redirect",
        "inform_deny",
        "always_null",
        "deny",
        "always_deny",
    }
)


def parse_unbound(lines: Iterable[str]) -> ParseResult:
    """`local-zone: "d." TYPE` with a blocking TYPE: block d and its subdomains.

    `local-data:` lines (the answers of a redirect zone) are counted as "local-data" and not
    used; transparent zone types are counted as "unsupported-zone-type".
    """
    return run_parser("unbound", lines, _unbound_body)


def _unbound_body(lines: Iterable[str], out: Collector) -> int:
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s[0] == "#" or s == "server:":
            continue
        if out.bad_line(n, raw):
            continue
        key, _, rest = s.partition(":")
        key = key.strip()
        if key in ("local-data", "local-data-ptr"):
            out.reject(n, "local-data", raw)
            continue
        tokens = rest.split("#", 1)[0].split()
        if key != "local-zone" or len(tokens) != 2:
            out.reject(n, "not-a-rule", raw)
            continue
        if tokens[1].lower() not in _UNBOUND_BLOCK_TYPES:
            out.reject(n, "unsupported-zone-type", raw)
            continue
        name, reason = name_or_reason(tokens[0].strip("\"'"))
        if reason:
            out.reject(n, reason, raw)
        else:
            out.add(name, _SUBTREE, _BLOCK, None, n, raw)
    return n


# ---------------------------------------------------------------- keywords

MIN_KEYWORD = 3  # shorter substrings would match a large share of all names


def keyword_ascii(text: str) -> str:
    """The form of a keyword that can occur inside a DNS name.

    Keywords match substrings of the ASCII query name, so a Vietnamese keyword is only
    meaningful in its diacritic-free form: `cá độ` -> `cado`, `đánh bạc` -> `danhbac`.
    Diacritics are dropped, `đ` becomes `d`, and anything a host name cannot contain
    (spaces, punctuation) is removed; letters, digits, `-`, `_` and `.` are kept.
    """
    folded = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c in "-_."))


def parse_keywords(lines: Iterable[str]) -> ParseResult:
    """One substring rule per line (`#` comments), stored in its ASCII match form."""
    return run_parser("keywords", lines, _keywords_body)


def _keywords_body(lines: Iterable[str], out: Collector) -> int:
    keywords = out.result.keywords
    seen: set[str] = set()
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s[0] == "#" or out.bad_line(n, raw):
            continue
        text = keyword_ascii(s)
        if len(text) < MIN_KEYWORD:
            out.reject(n, "keyword-too-short", raw)
        elif text in seen:
            out.reject(n, "duplicate", raw)
        else:
            seen.add(text)
            keywords.append(Keyword(text, n))
    return n
