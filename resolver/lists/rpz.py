"""Response Policy Zone files (BIND/Unbound/Knot style) read as lists of QNAME triggers.

Trigger, scope and action are kept apart as RPZ intends: the owner name is the trigger
(`d` = exactly d, `*.d` = below d; both together fold into one SUBTREE rule), the record is
the action: `CNAME .` NXDOMAIN, `CNAME *.` NODATA, `CNAME rpz-passthru.` ALLOW,
`CNAME target.` REWRITE to target, `A`/`AAAA` REWRITE to the address. IP, NSDNAME, NSIP and
client-IP triggers are counted as "unsupported-trigger".

Names: the zone apex is the SOA owner (or the first `$ORIGIN`); owners are resolved against
the current `$ORIGIN` and the apex is stripped, so `bad.com CNAME .` in zone `rpz.local.`
and `bad.com.rpz.local. CNAME .` are the same trigger, `bad.com`.
"""

from __future__ import annotations

from collections.abc import Iterable

from resolver.lists.common import Collector, merge_apex_and_below, run_parser
from resolver.lists.model import ParseResult, RuleAction, Scope
from resolver.lists.normalize import is_clean, is_ip_literal, name_or_reason

_CLASSES = frozenset({"in", "ch", "hs", "cs"})
_SKIPPED_TYPES = frozenset({"soa", "ns", "dnskey", "rrsig", "nsec", "nsec3", "nsec3param"})
# Labels that make an owner a non-QNAME trigger (`32.1.0.0.127.rpz-ip`); a label that merely
# starts with "rpz-" (`rpz-public-resolver1.rrdns.pch.net`) is an ordinary name.
_TRIGGER_LABELS = frozenset({"rpz-ip", "rpz-nsdname", "rpz-nsip", "rpz-client-ip"})
_SPECIAL_TARGETS = {
    "": RuleAction.NXDOMAIN,  # `CNAME .`
    "*": RuleAction.NODATA,  # `CNAME *.`
    "rpz-passthru": RuleAction.ALLOW,
}


def parse_rpz(lines: Iterable[str]) -> ParseResult:
    """Parse an RPZ zone file into QNAME-trigger entries."""
    result = run_parser("rpz", lines, _RpzReader().body)
    result.entries = merge_apex_and_below(result.entries)
    return result


class _RpzReader:
    """Zone-file state: current origin, the apex, the previous owner, an open parenthesis."""

    def __init__(self) -> None:
        self.origin = ""  # current $ORIGIN, lower case, without the trailing dot
        self.apex: str | None = None
        self.owner = ""
        self.pending: list[str] = []  # tokens of a record whose "(" is still open
        self.pending_line = 0

    def body(self, lines: Iterable[str], out: Collector) -> int:
        n = 0
        for n, raw in enumerate(lines, 1):
            if out.bad_line(n, raw):
                continue
            if not self.apex and raw[-9:] == " CNAME .\n" and raw[0] not in " \t$;":
                name = raw[:-9].lower()  # fast path: hagezi/mullvad `name CNAME .`
                scope = Scope.EXACT
                if name[:2] == "*.":
                    scope, name = Scope.BELOW, name[2:]
                if is_clean(name):
                    out.add(name, scope, RuleAction.NXDOMAIN, None, n, raw)
                    continue
            text = raw.split(";", 1)[0].rstrip()
            if self.pending:
                self.pending.extend(text.split())
                if ")" in text:
                    self._record(self.pending_line, raw, self.pending, out)
                    self.pending = []
                continue
            if not text.strip():
                continue
            if text[0] == "$":
                self._directive(n, raw, text.split(), out)
                continue
            tokens = text.split()
            if text[0] in " \t":
                tokens.insert(0, "")  # blank owner: the previous record's owner
            if "(" in text and ")" not in text:
                self.pending, self.pending_line = tokens, n
                continue
            self._record(n, raw, tokens, out)
        return n

    def _directive(self, n: int, raw: str, tokens: list[str], out: Collector) -> None:
        word = tokens[0].upper()
        if word == "$TTL":
            return
        if word == "$ORIGIN" and len(tokens) >= 2:
            self.origin = self._absolute(tokens[1])
            if self.apex is None:
                self.apex = self.origin
            return
        out.reject(n, "not-a-rule", raw)  # $INCLUDE and unknown directives

    def _absolute(self, name: str) -> str:
        name = name.lower()
        if name == "@":
            return self.origin
        if name.endswith("."):
            return name[:-1]
        return f"{name}.{self.origin}" if self.origin else name

    def _record(self, n: int, raw: str, tokens: list[str], out: Collector) -> None:
        owner = tokens[0] if tokens[0] else self.owner
        self.owner = owner
        rest = [t for t in tokens[1:] if t not in ("(", ")")]
        while rest and (rest[0].isdigit() or rest[0].lower() in _CLASSES):
            rest.pop(0)  # optional TTL and class, in either order
        if not rest:
            out.reject(n, "not-a-rule", raw)
            return
        rrtype, rdata = rest[0].lower(), rest[1:]
        if rrtype == "soa":
            if self.apex is None or not self.origin:
                self.apex = self._absolute(owner)
            return
        if rrtype in _SKIPPED_TYPES:
            return
        trigger = self._trigger(owner)
        if trigger is None:
            out.reject(n, "out-of-zone", raw)
            return
        if "rpz-" in trigger and not _TRIGGER_LABELS.isdisjoint(trigger.split(".")):
            out.reject(n, "unsupported-trigger", raw)
            return
        scope = Scope.EXACT
        if trigger.startswith("*."):
            scope, trigger = Scope.BELOW, trigger[2:]
        name, reason = (trigger, "") if is_clean(trigger) else name_or_reason(trigger)
        if reason:
            out.reject(n, reason, raw)
            return
        action = self._action(rrtype, rdata)
        if isinstance(action, str):
            out.reject(n, action, raw)
            return
        out.add(name, scope, action[0], action[1], n, raw)

    def _trigger(self, owner: str) -> str | None:
        """The owner relative to the zone apex, or None for a name outside the zone."""
        name = self._absolute(owner)
        apex = self.apex
        if not apex:
            return name
        if name.endswith("." + apex):
            return name[: -len(apex) - 1]
        return None if owner.endswith(".") or owner == "@" else name

    def _action(self, rrtype: str, rdata: list[str]) -> tuple[RuleAction, str | None] | str:
        """(action, target) for a record, or a reject reason."""
        if len(rdata) != 1:
            return "not-a-rule"
        value = rdata[0]
        if rrtype in ("a", "aaaa"):
            return (RuleAction.REWRITE, value) if is_ip_literal(value) else "not-a-rule"
        if rrtype != "cname":
            return "unsupported-record-type"
        lowered = value.lower()
        bare = lowered[:-1] if lowered.endswith(".") else lowered
        if bare in _SPECIAL_TARGETS:
            return _SPECIAL_TARGETS[bare], None
        if bare.startswith("rpz-"):
            return "unsupported-rpz-action"  # rpz-drop., rpz-tcp-only.
        target = lowered[:-1] if lowered.endswith(".") else self._absolute(lowered)
        name, reason = name_or_reason(target)
        return reason if reason else (RuleAction.REWRITE, name)
