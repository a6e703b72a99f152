"""Records: what a key name means, interned, and how names get them (build time only).

Each key name maps to a small *record id* into a table of records, so millions of names share a
few hundred records. A record holds the rule codes the name carries plus the *resolved* answers
(category bits with exceptions applied) for "the query is this name" and "the query is below
this name", with every ancestor rule already folded in at build time. Every suffix between a
base (last two labels) and a deeper key becomes a key too (a "marker" when it has no rules of
its own). A key has the DEEP flag when some key below it answers differently, so the walk
(`resolver.match.tables.walk`) stops at the first miss or record without it. Record ids are
dense (a flag is a field, not an id bit) and numbered most used first, so nearly every name of a
policy with thousands of records takes one digit byte in the packed table.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from resolver.lists.model import RuleAction, Scope
from resolver.match.packed import DEEP, HOT

# Rule codes pack (source id, scope, action) into one int so a name with one rule costs one
# shared int while building. Code order is also explain order.
SCOPES = (Scope.EXACT, Scope.SUBTREE, Scope.BELOW)
SCOPE_CODE = {scope: n for n, scope in enumerate(SCOPES)}
DOMAIN_ACTIONS = (RuleAction.BLOCK, RuleAction.ALLOW, RuleAction.NXDOMAIN, RuleAction.NODATA)
ACTION_CODE = {action: n for n, action in enumerate(DOMAIN_ACTIONS)}
EXACT, SUBTREE, BELOW = 0, 1, 2
NXDOMAIN_CODE = ACTION_CODE[RuleAction.NXDOMAIN]  # this and above: answer codes (NODATA too)
ALLOW = 1


def code(src: int, scope: int, action: int) -> int:
    return src << 4 | scope << 2 | action


def decode(code: int) -> tuple[int, int, int]:
    """(source id, scope code, action code) of a rule code."""
    return code >> 4, code >> 2 & 3, code & 3


class Record(NamedTuple):
    """What one key name means: its own rules and the resolved answers below and at it."""

    codes: tuple[int, ...]  # the name's own rule codes, sorted
    at: int  # resolved category bits when the query is this name
    below: int  # resolved category bits when the query is strictly below this name
    flags: int  # DEEP: a key below answers differently; HOT: the packed table's (packed.py)


def count_rules(
    rules: dict[str, int | set[int]],
    special: dict[str, tuple[tuple[int, RuleAction, str | None, int], ...]],
    keywords: list[tuple[str, tuple[int, ...]]],
    bits: list[int],
) -> tuple[int, dict[int, int]]:
    per_src = [0] * len(bits)
    for value in rules.values():
        for code in (value,) if isinstance(value, int) else value:
            per_src[code >> 4] += 1
    for items in special.values():
        for _, action, _, src in items:
            if action is RuleAction.REWRITE:  # NXDOMAIN/NODATA were counted as domain rules
                per_src[src] += 1
    for _, srcs in keywords:
        for src in srcs:
            per_src[src] += 1
    per_bit: dict[int, int] = {}
    for src, count in enumerate(per_src):
        per_bit[bits[src]] = per_bit.get(bits[src], 0) + count
    return sum(per_src), per_bit


class RecordTable:
    """De-duplicates records; ids are their positions."""

    def __init__(self, bits: list[int]) -> None:
        self.bits = bits
        self.records: list[Record] = []
        self._ids: dict[tuple[tuple[int, ...], int, int, int, int], int] = {}
        self._flagged: dict[tuple[int, int], int] = {}
        self.totals: list[tuple[int, int]] = []  # per record id: (block, allow) below the name

    def intern(self, codes: tuple[int, ...], inherited: tuple[int, int]) -> int:
        b_at, a_at = b_below, a_below = inherited
        bits = self.bits
        for code in codes:
            src, scope, action = decode(code)
            flag = 1 << bits[src]
            if scope != BELOW:
                if action == ALLOW:
                    a_at |= flag
                else:
                    b_at |= flag
            if scope != EXACT:
                if action == ALLOW:
                    a_below |= flag
                else:
                    b_below |= flag
        key = (codes, b_at, a_at, b_below, a_below)
        rid = self._ids.get(key)
        if rid is None:
            rid = self._ids[key] = len(self.records)
            self.records.append(Record(codes, b_at & ~a_at, b_below & ~a_below, 0))
            self.totals.append((b_below, a_below))
        return rid

    def flagged(self, rid: int, flag: int) -> int:
        """The id of record `rid` with `flag` added (a record of its own, made once)."""
        key = (rid, flag)
        out = self._flagged.get(key)
        if out is None:
            record = self.records[rid]
            if record.flags & flag:
                return rid
            out = self._flagged[key] = len(self.records)
            self.records.append(record._replace(flags=record.flags | flag))
            self.totals.append(self.totals[rid])
        return out

    def most_used_first(self, ids: dict[str, int]) -> dict[str, int]:
        """Renumber the records by how many names use them, most first, drop the ones no name
        uses, and return `ids` renumbered: the packed table writes ids below 64 in one digit
        byte, so a policy of many lists, with thousands of records, still reads one byte per
        name it finds."""
        uses = Counter(ids.values())
        order = sorted(uses, key=lambda rid: (-uses[rid], rid))
        new = {rid: n for n, rid in enumerate(order)}
        self.records = [self.records[rid] for rid in order]
        self.totals = [self.totals[rid] for rid in order]
        self._ids = {key: new[rid] for key, rid in self._ids.items() if rid in new}
        self._flagged = {}
        return dict(zip(ids, map(new.__getitem__, ids.values()), strict=True))

    def hot(self, rid: int) -> int:
        """The id the packed table gives a hot name of record `rid`: with the HOT flag when the
        walk goes below it (DEEP), else `rid` itself (the walk stops there anyway)."""
        return self.flagged(rid, HOT) if self.records[rid].flags & DEEP else rid


def assign_records(rules: dict[str, int | set[int]], table: RecordTable) -> dict[str, int]:
    """Give every key name its record id, ancestors first so their rules can be inherited.
    Every suffix between a base and a deeper key becomes a key too (a marker). Then, deepest
    first, a name whose answers differ from its parent's answer below it (or that is DEEP
    itself) makes its parent DEEP."""
    has_child: set[str] = set()
    for name in rules:
        i = name.find(".")
        while name.find(".", i + 1) >= 0:  # the parent has two labels or more
            name = name[i + 1 :]
            if name in has_child:
                break  # its ancestors were walked already
            has_child.add(name)
            i = name.find(".")
    by_depth: list[list[str]] = []
    for group in (rules, (name for name in has_child if name not in rules)):
        for name in group:
            dots = name.count(".")
            while len(by_depth) <= dots:
                by_depth.append([])
            by_depth[dots].append(name)
    ids: dict[str, int] = {}
    none = (0, 0)
    totals = table.totals
    intern = table.intern
    # Nearly every name has one rule (or none: a marker) under an ancestor met before: one
    # dict probe on (rule, inherited) answers those without interning again.
    seen: dict[tuple[int | None, tuple[int, int]], int] = {}
    for layer in by_depth:
        for name in layer:
            inherited = none
            i = name.find(".")
            while i >= 0:
                parent = ids.get(name[i + 1 :])
                if parent is not None:
                    inherited = totals[parent]
                    break
                i = name.find(".", i + 1)
            value = rules.get(name)
            if isinstance(value, set):
                ids[name] = intern(tuple(sorted(value)), inherited)
                continue
            key = (value, inherited)
            rid = seen.get(key)
            if rid is None:
                rid = seen[key] = intern(() if value is None else (value,), inherited)
            ids[name] = rid
    records = table.records
    deep: set[str] = set()
    for layer in reversed(by_depth[2:]):  # three labels or more: the parent is a key
        for name in layer:
            above = name[name.find(".") + 1 :]
            if above in deep:
                continue
            record, below = records[ids[name]], records[ids[above]].below
            if name in deep or record.at != below or record.below != below:
                deep.add(above)
    for name in deep:
        ids[name] = table.flagged(ids[name], DEEP)
    return ids
