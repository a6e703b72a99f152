"""Collecting rules from many lists and compiling them into a `CategoryIndex` (build time)."""

from __future__ import annotations

from collections.abc import Iterable

from resolver.lists.model import Entry, Keyword, RuleAction
from resolver.match.index import CategoryIndex, Names
from resolver.match.packed import FILL, HOT_CHILDREN, WINDOW, PackedNames
from resolver.match.records import (
    ACTION_CODE,
    DOMAIN_ACTIONS,
    SCOPE_CODE,
    SCOPES,
    RecordTable,
    assign_records,
    code,
    count_rules,
)
from resolver.match.tables import DictNames

SMALL = 65_536  # key names up to which a plain dict serves instead of the packed table


class IndexBuilder:
    """Collects rules from many lists, then compiles them into a `CategoryIndex`."""

    def __init__(
        self,
        *,
        small: int = SMALL,
        window: int = WINDOW,
        hot_children: int = HOT_CHILDREN,
        fill: float = FILL,
    ) -> None:
        """Up to `small` key names go into a plain dict, more into the packed table (`window`,
        `hot_children` and `fill` tune the packing, see packed.py)."""
        self._small = small
        self._window, self._hot_children, self._fill = window, hot_children, fill
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
            (scope, action): code(src, SCOPE_CODE[scope], ACTION_CODE[action])
            for scope in SCOPES
            for action in DOMAIN_ACTIONS
        }
        for entry in entries:
            action = entry.action
            if action is RuleAction.REWRITE:  # NXDOMAIN and NODATA are in the rule codes
                item = (SCOPE_CODE[entry.scope], action, entry.target, src)
                bucket = special.setdefault(entry.name, [])
                if item not in bucket:
                    bucket.append(item)
                continue
            rule = codes[entry.scope, action]
            name = entry.name
            prev = rules.get(name)
            if prev is None:
                rules[name] = rule
            elif isinstance(prev, int):
                if prev != rule:
                    rules[name] = {prev, rule}
            else:
                prev.add(rule)

    def add_keywords(self, bit: int, keywords: Iterable[Keyword], source: str) -> None:
        """Add one list's substring rules under category `bit`."""
        src = self._source(bit, source)
        for keyword in keywords:
            if keyword.text:
                self._keywords.setdefault(keyword.text, set()).add(src)

    def build(self) -> CategoryIndex:
        """Compile everything added so far; the builder can be dropped afterwards."""
        bits = [bit for bit, _ in self._sources]
        table = RecordTable(bits)
        ids = table.most_used_first(assign_records(self._rules, table))
        names: Names
        if len(ids) <= self._small:
            names = DictNames(ids)
        else:
            names = PackedNames.build(
                ids, table.hot, size=self._window, hot_children=self._hot_children, fill=self._fill
            )
        keywords = [(text, tuple(sorted(srcs))) for text, srcs in sorted(self._keywords.items())]
        special = {
            name: tuple(sorted(items, key=lambda item: item[0]))  # EXACT before SUBTREE/BELOW
            for name, items in self._special.items()
        }
        total, per_bit = count_rules(self._rules, special, keywords, bits)
        return CategoryIndex(
            sources=tuple(self._sources),
            records=tuple(table.records),
            names=names,
            special=special,
            keywords=keywords,
            counts=(total, per_bit),
            has_tld_rules=any("." not in name for name in ids),
        )
