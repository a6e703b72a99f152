"""The compiled domain index: every list's rules folded into one immutable lookup structure.

`CategoryIndex` is the query side: `lookup` (the hot path), keywords, the special (RPZ) actions,
and `explain`. It is built by `resolver.match.builder.IndexBuilder`; its records
(`resolver.match.records`) fold every ancestor's rules into each name, so the most specific key
on a name's path answers. The name table is `packed.PackedNames` (the names packed into one byte
region) or, for small indexes, `tables.DictNames`. Keyword (substring) rules run on an
Aho-Corasick automaton (pyahocorasick). Figures: bench/README.md.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import ahocorasick

from resolver.lists.model import RuleAction, Scope
from resolver.match.key import name_key
from resolver.match.packed import PackedNames
from resolver.match.records import (
    BELOW,
    DOMAIN_ACTIONS,
    EXACT,
    NXDOMAIN_CODE,
    SCOPES,
    Record,
    decode,
)
from resolver.match.tables import DictNames


class Hit(NamedTuple):
    """One rule that covers a name (for "explain"). `scope` is None for a keyword rule."""

    rule: str
    scope: Scope | None
    action: RuleAction
    bit: int
    source: str
    target: str | None


class Special(NamedTuple):
    """A rule that answers with something other than the profile's block mode."""

    action: RuleAction
    target: str | None
    bit: int
    rule: str
    source: str


Names = PackedNames | DictNames


class CategoryIndex:
    """Immutable compiled index; safe to share between threads once built.

    `lookup(key, dots) -> int` is the hot path: the OR of the category bits of every BLOCK-ish
    rule covering the name (its `key.name_key` pair, which the DNS packet reader builds as it
    reads the question) minus the bits an ALLOW rule covering it excepts; 0 when nothing
    matches. It is a closure bound per instance (cell variables are faster than attribute
    loads on `self`). `lookup_name(name)` is the same for a str name.
    """

    lookup: Callable[[bytes, list[int]], int]

    def __init__(
        self,
        *,
        sources: tuple[tuple[int, str], ...],
        records: tuple[Record, ...],
        names: Names,
        special: dict[str, tuple[tuple[int, RuleAction, str | None, int], ...]],
        keywords: list[tuple[str, tuple[int, ...]]],
        counts: tuple[int, dict[int, int]],
        has_tld_rules: bool,
    ) -> None:
        self._sources = sources
        self._records = records
        self._special = special
        # Some record carries an NXDOMAIN or NODATA rule (RPZ): `special` must look at codes.
        self._answers = any(
            decode(rule)[2] >= NXDOMAIN_CODE for record in records for rule in record.codes
        )
        self._keyword_rules = keywords
        self._total, self._per_bit = counts
        self.names = names
        self.has_tld_rules = has_tld_rules
        at = [record.at for record in records]
        below = [record.below for record in records]
        flags = [record.flags for record in records]
        self.lookup = names.make_lookup(at, below, flags, has_tld_rules)
        self._keyword_masks, self._automaton = _keyword_automaton(keywords, sources)

    @property
    def has_keywords(self) -> bool:
        return self._automaton is not None

    def lookup_name(self, name: str) -> int:
        """`lookup` for `name` (lower-case, no trailing dot): slow paths and tests."""
        return self.lookup(*name_key(name))

    def _get(self, name: str) -> int | None:
        return self.names.get(name)

    def keywords(self, name: str) -> int:
        """OR of the bits whose keyword occurs in `name`."""
        automaton = self._automaton
        if automaton is None:
            return 0
        masks = self._keyword_masks
        found = 0
        for _, kid in automaton.iter(name):
            found |= masks[kid]
        return found

    def special(self, name: str) -> Special | None:
        """The most specific REWRITE/NXDOMAIN/NODATA rule covering `name` whose bit is not
        excepted for it, or None. On one name EXACT wins over SUBTREE, then list order.

        NXDOMAIN and NODATA are rule codes of the name's record (an RPZ list of a million
        `CNAME .` rules costs no table of its own); only rewrites, which carry a target, sit in
        the special table."""
        if not self._special and not self._answers:
            return None
        allowed = -1
        for suffix, is_self in _suffixes(name):
            items = self._special_items(suffix)
            for scope, action, target, src in items:
                if (scope == BELOW) if is_self else (scope == EXACT):
                    continue
                bit = self._sources[src][0]
                if allowed < 0:
                    allowed = self._allowed_bits(name)
                if not allowed >> bit & 1:
                    return Special(action, target, bit, suffix, self._sources[src][1])
        return None

    def _special_items(self, suffix: str) -> list[tuple[int, RuleAction, str | None, int]]:
        """The NXDOMAIN, NODATA and rewrite rules on `suffix` itself, EXACT first."""
        items = list(self._special.get(suffix, ()))
        if self._answers:
            rid = self._get(suffix)
            if rid is not None:
                for rule in self._records[rid].codes:
                    src, scope, action = decode(rule)
                    if action >= NXDOMAIN_CODE:
                        items.append((scope, DOMAIN_ACTIONS[action], None, src))
        if len(items) > 1:
            items.sort(key=lambda item: (item[0], item[3]))
        return items

    def _allowed_bits(self, name: str) -> int:
        allowed = 0
        for hit in self._domain_hits(name):
            if hit.action is RuleAction.ALLOW:
                allowed |= 1 << hit.bit
        return allowed

    def _domain_hits(self, name: str) -> Iterator[Hit]:
        for suffix, is_self in _suffixes(name):
            rid = self._get(suffix)
            if rid is None:
                continue
            for code in self._records[rid].codes:
                src, scope, action = decode(code)
                if (scope == BELOW) if is_self else (scope == EXACT):
                    continue
                bit, source = self._sources[src]
                yield Hit(suffix, SCOPES[scope], DOMAIN_ACTIONS[action], bit, source, None)

    def explain(self, name: str) -> list[Hit]:
        """Every rule covering `name`, most specific first: domain rules (exceptions
        included), rewrites, then keywords. Slow path, for admins."""
        hits = list(self._domain_hits(name))
        for suffix, is_self in _suffixes(name):
            for scope, action, target, src in self._special.get(suffix, ()):
                if (scope == BELOW) if is_self else (scope == EXACT):
                    continue
                bit, source = self._sources[src]
                hits.append(Hit(suffix, SCOPES[scope], action, bit, source, target))
        if self._automaton is not None:
            seen: set[int] = set()
            for _, kid in self._automaton.iter(name):
                if kid in seen:
                    continue
                seen.add(kid)
                text, srcs = self._keyword_rules[kid]
                for src in srcs:
                    bit, source = self._sources[src]
                    hits.append(Hit(text, None, RuleAction.BLOCK, bit, source, None))
        return hits

    def plain(self) -> dict[str, Any]:
        """Everything but the name table, as marshal-able data (the index file's metadata)."""
        special = {
            name: tuple((scope, action.value, target, src) for scope, action, target, src in items)
            for name, items in self._special.items()
        }
        return {
            "sources": self._sources,
            "records": tuple(tuple(record) for record in self._records),
            "special": special,
            "keywords": self._keyword_rules,
            "total": self._total,
            "per_bit": self._per_bit,
            "has_tld_rules": self.has_tld_rules,
            "keys": self.name_count(),
        }

    @classmethod
    def from_plain(cls, plain: dict[str, Any], names: Names) -> CategoryIndex:
        """The index `plain()` described, over its name table; KeyError/TypeError/ValueError
        on malformed data."""
        return cls(
            sources=tuple((int(bit), str(src)) for bit, src in plain["sources"]),
            records=tuple(Record(*record) for record in plain["records"]),
            names=names,
            special={
                name: tuple(
                    (scope, RuleAction(action), target, src) for scope, action, target, src in items
                )
                for name, items in plain["special"].items()
            },
            keywords=[(text, tuple(srcs)) for text, srcs in plain["keywords"]],
            counts=(plain["total"], dict(plain["per_bit"])),
            has_tld_rules=plain["has_tld_rules"],
        )

    def rule_counts(self) -> dict[int, int]:
        """Rules per category bit (after de-duplication)."""
        return dict(self._per_bit)

    def __len__(self) -> int:
        return self._total

    def storage(self) -> list[object]:
        """The big containers, for `free_in_pieces` in a worker thread."""
        names = self.names
        return [names.region, *names.spill] if isinstance(names, PackedNames) else []

    def name_count(self) -> int:
        """Key names held, markers included."""
        return len(self.names)


def free_in_pieces(pieces: Sequence[object]) -> None:
    """Release `pieces` (from `index.storage()`) in a worker thread, off the event loop:
    unmapping a region of hundreds of megabytes is one system call, and emptying the spill
    dicts one by one frees their names in steps of ~15k (dropped with the index on the loop,
    the 246k names at 5M rules paused it several ms in one call)."""
    for piece in pieces:
        if isinstance(piece, mmap.mmap):
            piece.close()
        elif isinstance(piece, dict):
            piece.clear()


def _suffixes(name: str) -> Iterator[tuple[str, bool]]:
    """`name` then each parent suffix; True for the name itself."""
    yield name, True
    i = name.find(".")
    while i >= 0:
        yield name[i + 1 :], False
        i = name.find(".", i + 1)


def _keyword_automaton(
    keywords: list[tuple[str, tuple[int, ...]]], sources: tuple[tuple[int, str], ...]
) -> tuple[list[int], ahocorasick.Automaton | None]:
    if not keywords:
        return [], None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    masks = []
    for kid, (text, srcs) in enumerate(keywords):
        automaton.add_word(text, kid)
        mask = 0
        for src in srcs:
            mask |= 1 << sources[src][0]
        masks.append(mask)
    automaton.make_automaton()
    return masks, automaton
