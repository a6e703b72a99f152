"""The compiled domain index: every list's rules folded into one immutable lookup structure.

Why it looks like this (figures from `bench/match_bench.py`, see bench/README.md):

* Records. Each key name maps to a small *record id* into a table of records, so millions of
  names share a few hundred records. A record holds the rule codes the name carries plus the
  *resolved* answers (category bits with exceptions applied) for "the query is this name" and
  "the query is below this name", with every ancestor rule already folded in at build time.
* Walk down from the base. Because ancestors are folded in, the most specific key on a name's
  path answers the query. Lookups start at the base (last two labels): every suffix between a
  base and a deeper key exists as a key (a "marker" when it has no rules of its own). A key
  has the DEEP flag in its record when some key below it answers differently, and the walk
  stops at the first miss or record without it: a name listed under a parent already blocked
  for the same categories (common across lists) costs no second search. Record ids are dense
  (a flag is a field, not an id bit) and numbered most used first, so that nearly every name
  of a policy with thousands of records takes one digit byte in the packed table.
  Most names in real traffic have no key on their base: one probe answers them.
* Two backends behind one interface: "suffix" (`packed.PackedNames`: the names packed into
  one byte region, the default) and "aho" (one pyahocorasick automaton in STORE_INTS mode,
  queried as an exact-key trie). Keyword (substring) rules always run on an Aho-Corasick
  automaton.
"""

from __future__ import annotations

import mmap
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import ahocorasick

from resolver.lists.model import Entry, Keyword, RuleAction, Scope
from resolver.match.key import name_key
from resolver.match.packed import DEEP, FILL, HOT, HOT_CHILDREN, WINDOW, PackedNames

SMALL = 65_536  # key names up to which the "suffix" backend uses a plain dict

BACKENDS = ("suffix", "aho")

# Rule codes pack (source id, scope, action) into one int so a name with one rule costs one
# shared int while building. Code order is also explain order.
_SCOPES = (Scope.EXACT, Scope.SUBTREE, Scope.BELOW)
_SCOPE_CODE = {scope: n for n, scope in enumerate(_SCOPES)}
_DOMAIN_ACTIONS = (RuleAction.BLOCK, RuleAction.ALLOW, RuleAction.NXDOMAIN, RuleAction.NODATA)
_ACTION_CODE = {action: n for n, action in enumerate(_DOMAIN_ACTIONS)}
_SPECIAL_ACTIONS = frozenset({RuleAction.REWRITE, RuleAction.NXDOMAIN, RuleAction.NODATA})
_EXACT, _SUBTREE, _BELOW = 0, 1, 2
_ALLOW = 1


def _code(src: int, scope: int, action: int) -> int:
    return src << 4 | scope << 2 | action


def _decode(code: int) -> tuple[int, int, int]:
    """(source id, scope code, action code) of a rule code."""
    return code >> 4, code >> 2 & 3, code & 3


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


class Record(NamedTuple):
    """What one key name means: its own rules and the resolved answers below and at it."""

    codes: tuple[int, ...]  # the name's own rule codes, sorted
    at: int  # resolved category bits when the query is this name
    below: int  # resolved category bits when the query is strictly below this name
    flags: int  # DEEP: a key below answers differently; HOT: the packed table's (packed.py)


class IndexBuilder:
    """Collects rules from many lists, then compiles them into a `CategoryIndex`."""

    def __init__(
        self,
        backend: str = "suffix",
        *,
        small: int = SMALL,
        window: int = WINDOW,
        hot_children: int = HOT_CHILDREN,
        fill: float = FILL,
    ) -> None:
        """The "suffix" backend keeps up to `small` key names in a plain dict and packs more
        (`window`, `hot_children` and `fill` tune the packing, see packed.py)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown match backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        self._small = small
        self._packing = {"size": window, "hot_children": hot_children, "fill": fill}
        self._sources: list[tuple[int, str]] = []
        self._source_ids: dict[tuple[int, str], int] = {}
        self._rules: dict[str, int | set[int]] = {}
        # name -> [(scope code, action, target, source id)], in the order added
        self._special: dict[str, list[tuple[int, RuleAction, str | None, int]]] = {}
        self._keywords: dict[str, set[int]] = {}

    def _source(self, bit: int, source: str) -> int:
        if bit < 0:
            raise ValueError(f"category bit must be >= 0, got {bit}")
        key = (bit, source)
        src = self._source_ids.get(key)
        if src is None:
            src = self._source_ids[key] = len(self._sources)
            self._sources.append(key)
        return src

    def add(self, bit: int, entries: Iterable[Entry], source: str) -> None:
        """Add one list's domain rules under category `bit`; `source` names the list."""
        src = self._source(bit, source)
        rules = self._rules
        special = self._special
        codes = {
            (scope, action): _code(src, _SCOPE_CODE[scope], _ACTION_CODE[action])
            for scope in _SCOPES
            for action in _DOMAIN_ACTIONS
        }
        for entry in entries:
            action = entry.action
            if action in _SPECIAL_ACTIONS:
                item = (_SCOPE_CODE[entry.scope], action, entry.target, src)
                bucket = special.setdefault(entry.name, [])
                if item not in bucket:
                    bucket.append(item)
                if action is RuleAction.REWRITE:
                    continue
            code = codes[entry.scope, action]
            name = entry.name
            prev = rules.get(name)
            if prev is None:
                rules[name] = code
            elif type(prev) is int:
                if prev != code:
                    rules[name] = {prev, code}
            else:
                prev.add(code)

    def add_keywords(self, bit: int, keywords: Iterable[Keyword], source: str) -> None:
        """Add one list's substring rules under category `bit`."""
        src = self._source(bit, source)
        for keyword in keywords:
            if keyword.text:
                self._keywords.setdefault(keyword.text, set()).add(src)

    def build(self) -> CategoryIndex:
        """Compile everything added so far; the builder can be dropped afterwards."""
        bits = [bit for bit, _ in self._sources]
        table = _RecordTable(bits)
        ids = table.most_used_first(_assign_records(self._rules, table))
        names: Names
        if self.backend == "aho":
            names = AhoNames.build(ids)
        elif len(ids) <= self._small:
            names = DictNames(ids)
        else:
            names = PackedNames.build(ids, table.hot, **self._packing)
        keywords = [(text, tuple(sorted(srcs))) for text, srcs in sorted(self._keywords.items())]
        special = {
            name: tuple(sorted(items, key=lambda item: item[0]))  # EXACT before SUBTREE/BELOW
            for name, items in self._special.items()
        }
        total, per_bit = _count_rules(self._rules, special, keywords, bits)
        return CategoryIndex(
            backend=self.backend,
            sources=tuple(self._sources),
            records=tuple(table.records),
            names=names,
            special=special,
            keywords=keywords,
            counts=(total, per_bit),
            has_tld_rules=any("." not in name for name in ids),
        )


def _count_rules(
    rules: dict[str, int | set[int]],
    special: dict[str, tuple[tuple[int, RuleAction, str | None, int], ...]],
    keywords: list[tuple[str, tuple[int, ...]]],
    bits: list[int],
) -> tuple[int, dict[int, int]]:
    per_src = [0] * len(bits)
    for value in rules.values():
        for code in (value,) if type(value) is int else value:
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


class _RecordTable:
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
            src, scope, action = _decode(code)
            flag = 1 << bits[src]
            if scope != _BELOW:
                if action == _ALLOW:
                    a_at |= flag
                else:
                    b_at |= flag
            if scope != _EXACT:
                if action == _ALLOW:
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


def _assign_records(rules: dict[str, int | set[int]], table: _RecordTable) -> dict[str, int]:
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
    for names in (rules, (name for name in has_child if name not in rules)):
        for name in names:
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
    for names in by_depth:
        for name in names:
            inherited = none
            i = name.find(".")
            while i >= 0:
                parent = ids.get(name[i + 1 :])
                if parent is not None:
                    inherited = totals[parent]
                    break
                i = name.find(".", i + 1)
            value = rules.get(name)
            if type(value) is set:
                ids[name] = intern(tuple(sorted(value)), inherited)
                continue
            key = (value, inherited)
            rid = seen.get(key)
            if rid is None:
                rid = seen[key] = intern(() if value is None else (value,), inherited)
            ids[name] = rid
    records = table.records
    deep: set[str] = set()
    for names in reversed(by_depth[2:]):  # three labels or more: the parent is a key
        for name in names:
            parent = name[name.find(".") + 1 :]
            if parent in deep:
                continue
            record, below = records[ids[name]], records[ids[parent]].below
            if name in deep or record.at != below or record.below != below:
                deep.add(parent)
    for name in deep:
        ids[name] = table.flagged(ids[name], DEEP)
    return ids


class DictNames:
    """The "suffix" backend's table for small indexes (a policy's own allow and deny rules,
    a short mandated list): one dict keyed like the packed table ("name\\n" bytes), whose
    probe costs less bytecode than the packed region's hash-find, while memory does not matter
    at this size."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.keyed = {f"{name}\n".encode(): rid for name, rid in ids.items()}

    def get(self, name: str) -> int | None:
        return self.keyed.get(name_key(name)[0])

    def items(self) -> Iterator[tuple[str, int]]:
        return ((key[:-1].decode(), rid) for key, rid in self.keyed.items())

    def __len__(self) -> int:
        return len(self.keyed)

    def make_lookup(
        self, at: list[int], below: list[int], flags: list[int], has_tld_rules: bool
    ) -> Callable[[bytes, list[int]], int]:
        return _walk(self.keyed.get, at, below, flags, has_tld_rules)


class AhoNames:
    """The "aho" backend's name table: one pyahocorasick automaton used as an exact-key trie.
    Its keys are str (this pyahocorasick is built for unicode), so each probe decodes."""

    def __init__(self, automaton: ahocorasick.Automaton) -> None:
        self.automaton = automaton

    @classmethod
    def build(cls, ids: dict[str, int]) -> AhoNames:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        deque(map(automaton.add_word, ids.keys(), ids.values()), 0)  # one C-level pass
        return cls(automaton)

    def get(self, name: str) -> int | None:
        return self.automaton.get(name, None)

    def items(self) -> Iterator[tuple[str, int]]:
        return iter(self.automaton.items())

    def __len__(self) -> int:
        return len(self.automaton)

    def make_lookup(
        self, at: list[int], below: list[int], flags: list[int], has_tld_rules: bool
    ) -> Callable[[bytes, list[int]], int]:
        probe = self.automaton.get

        def get(key: bytes, default: None) -> int | None:
            return probe(key[:-1].decode("latin-1"), default)

        return _walk(get, at, below, flags, has_tld_rules)


Names = PackedNames | DictNames | AhoNames


def _walk(
    get: Callable[[bytes, None], int | None],
    at: list[int],
    below: list[int],
    flags: list[int],
    has_tld_rules: bool,
) -> Callable[[bytes, list[int]], int]:
    """The walk down from the base, key by key, over one exact-key getter of "name\\n" keys."""

    def lookup(q: bytes, dots: list[int]) -> int:
        i = len(dots) - 2
        if i < 0:
            v = get(q, None)
            return 0 if v is None else at[v]
        k = dots[i]
        v = get(q[k + 1 :], None)
        if v is None:
            if has_tld_rules:
                v = get(q[dots[-1] + 1 :], None)
                if v is not None:
                    return below[v]
            return 0
        while flags[v] & DEEP and k >= 0:  # a key below answers differently: one label deeper
            i -= 1
            k = dots[i]
            w = get(q[k + 1 :], None)
            if w is None:
                return below[v]
            v = w
        return at[v] if k < 0 else below[v]

    return lookup


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
        backend: str,
        sources: tuple[tuple[int, str], ...],
        records: tuple[Record, ...],
        names: Names,
        special: dict[str, tuple[tuple[int, RuleAction, str | None, int], ...]],
        keywords: list[tuple[str, tuple[int, ...]]],
        counts: tuple[int, dict[int, int]],
        has_tld_rules: bool,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown match backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        self._sources = sources
        self._records = records
        self._special = special
        self._keyword_rules = keywords
        self._total, self._per_bit = counts
        if isinstance(names, AhoNames) != (backend == "aho"):
            raise ValueError(f"{type(names).__name__} is not the {backend} backend's table")
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
        excepted for it, or None. On one name EXACT wins over SUBTREE, then the order added."""
        table = self._special
        if not table:
            return None
        allowed = -1
        for suffix, is_self in _suffixes(name):
            items = table.get(suffix)
            if items is None:
                continue
            for scope, action, target, src in items:
                if (scope == _BELOW) if is_self else (scope == _EXACT):
                    continue
                bit = self._sources[src][0]
                if allowed < 0:
                    allowed = self._allowed_bits(name)
                if not allowed >> bit & 1:
                    return Special(action, target, bit, suffix, self._sources[src][1])
        return None

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
                src, scope, action = _decode(code)
                if (scope == _BELOW) if is_self else (scope == _EXACT):
                    continue
                bit, source = self._sources[src]
                yield Hit(suffix, _SCOPES[scope], _DOMAIN_ACTIONS[action], bit, source, None)

    def explain(self, name: str) -> list[Hit]:
        """Every rule covering `name`, most specific first: domain rules (exceptions
        included), rewrites, then keywords. Slow path, for admins."""
        hits = list(self._domain_hits(name))
        for suffix, is_self in _suffixes(name):
            for scope, action, target, src in self._special.get(suffix, ()):
                if action is not RuleAction.REWRITE:
                    continue  # NXDOMAIN/NODATA already listed as domain rules
                if (scope == _BELOW) if is_self else (scope == _EXACT):
                    continue
                bit, source = self._sources[src]
                hits.append(Hit(suffix, _SCOPES[scope], action, bit, source, target))
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
            "backend": self.backend,
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
            backend=plain["backend"],
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
