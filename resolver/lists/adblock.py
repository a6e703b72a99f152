"""AdBlock / AdGuard DNS-filter syntax: the subset that means something for DNS.

Kept: `||d^` (d and subdomains), `|d^` / `|d|` (d exactly), `@@` exceptions (ALLOW),
`$important` / `$all` (harmless for DNS), and AdGuard `$dnsrewrite` (NOERROR;CNAME|A|AAAA;x,
the short `$dnsrewrite=x` form, and NXDOMAIN). Everything else is counted and skipped, never
half-read: a rule with `$third-party` means something narrower than "block this domain", so
blocking the whole domain would be wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from resolver.lists.common import Collector, run_parser
from resolver.lists.model import Entry, ParseResult, RuleAction, Scope
from resolver.lists.normalize import is_clean, is_ip_literal, name_or_reason

_HARMLESS = frozenset({"important", "all"})
_COSMETIC = re.compile(r"#[@?$%]?#|#@?\$\??#|\$@?\$").search
_SUBTREE, _BLOCK = Scope.SUBTREE, RuleAction.BLOCK


def parse_adblock(lines: Iterable[str]) -> ParseResult:
    """Parse an AdBlock-syntax list (`!` comments, `[Adblock Plus]` header)."""
    return run_parser("adblock", lines, _adblock_body)


def _adblock_body(lines: Iterable[str], out: Collector) -> int:
    entries = out.result.entries
    seen: set[str] = set()
    n = 0
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s[0] in "![":
            continue
        if s[:2] == "||" and s[-1] == "^":  # fast path: `||name^`
            name = s[2:-1].lower()
            if is_clean(name):
                if name in seen:
                    out.reject(n, "duplicate", raw)
                else:
                    seen.add(name)
                    entries.append(Entry(name, _SUBTREE, _BLOCK, None, n))
                continue
        _adblock_slow(n, raw, s, out)
    return n


def _adblock_slow(n: int, raw: str, s: str, out: Collector) -> None:
    if out.bad_line(n, raw):
        return
    if _COSMETIC(s):
        out.reject(n, "cosmetic-rule", raw)
        return
    if s[0] == "#":
        return  # `# comment` (some lists use it)
    action = RuleAction.BLOCK
    if s.startswith("@@"):
        action, s = RuleAction.ALLOW, s[2:]
    pattern, _, options = s.partition("$")
    target: str | None = None
    if options:
        parsed = _options(options)
        if parsed is None:
            out.reject(n, "unsupported-modifier", raw)
            return
        if parsed != (None, None):
            if action is RuleAction.ALLOW:
                out.reject(n, "unsupported-modifier", raw)
                return
            action, target = parsed  # type: ignore[assignment]
    if len(pattern) > 1 and pattern[0] == "/" and pattern[-1] == "/":
        out.reject(n, "regex-rule", raw)
        return
    if pattern.startswith("||"):
        scope, host = Scope.SUBTREE, pattern[2:]
    elif pattern.startswith("|"):
        scope, host = Scope.EXACT, pattern[1:]
        if host.endswith("|"):
            host = host[:-1] + "^"
    else:
        out.reject(n, "not-a-rule", raw)  # bare `example.com` means a URL substring
        return
    if host.endswith("^|"):
        host = host[:-1]
    if host.endswith("^"):
        host = host[:-1]
    elif scope is Scope.EXACT:
        out.reject(n, "path-rule", raw)  # `|http://...` URL-start rules
        return
    if any(c in host for c in "/^|:?=&"):
        out.reject(n, "path-rule", raw)
        return
    if "*" in host:
        out.reject(n, "wildcard-rule", raw)  # `||log-*.zadn.vn^`: no exact DNS meaning
        return
    name, reason = name_or_reason(host)
    if reason:
        out.reject(n, reason, raw)
        return
    out.add(name, scope, action, target, n, raw)


def _options(options: str) -> tuple[RuleAction | None, str | None] | None:
    """`(action, target)` from a rule's `$options`; `(None, None)` for harmless ones only;
    None when any option is unsupported."""
    result: tuple[RuleAction | None, str | None] = (None, None)
    for option in options.split(","):
        key, _, value = option.strip().partition("=")
        key = key.lower()
        if key in _HARMLESS and not value:
            continue
        if key != "dnsrewrite" or result != (None, None):
            return None
        rewrite = _dnsrewrite(value)
        if rewrite is None:
            return None
        result = rewrite
    return result


def _dnsrewrite(value: str) -> tuple[RuleAction, str | None] | None:
    parts = value.split(";")
    if len(parts) == 1:  # short form: `$dnsrewrite=1.2.3.4` or `$dnsrewrite=host.example`
        parts = ["NOERROR", "A" if is_ip_literal(value) else "CNAME", value]
    if len(parts) != 3:
        return None
    rcode, rrtype, target = parts[0].upper(), parts[1].upper(), parts[2].strip()
    if rcode == "NXDOMAIN" and not rrtype and not target:
        return RuleAction.NXDOMAIN, None
    if rcode != "NOERROR":
        return None
    if rrtype in ("A", "AAAA") and is_ip_literal(target):
        return RuleAction.REWRITE, target
    if rrtype == "CNAME":
        name, reason = name_or_reason(target)
        if not reason:
            return RuleAction.REWRITE, name
    return None
