"""The mandated index plus the IXFR increments not compiled into it yet.

A full rebuild of a million-rule mandated index takes tens of seconds at idle priority; an IXFR of
a thousand changes should be live in seconds. So the transfer process reports which trigger names
an IXFR changed and their rules now (`pull._increment`); each serving process (the supervisor and
every worker) builds a small index of those rules and wraps its snapshot's mandated index in a
`MandatedOverlay` that answers as the rebuilt index will; then the ordinary reload compiles the
new copy, after which the increment is dropped (`Increments.fold`). Every snapshot a reload
installs in the meantime gets the pending increments too (`SnapshotHolder.transform`), so a
reload that read the copy before the change cannot undo it; applying an increment to an index
that already holds it changes nothing.

Answers: a name is blocked when a rule covers it, from the base index at a name the increments did
not change or from the increments, and no exception (`rpz-passthru`) does; its RPZ action is the
most specific one left: what the index compiled from the new copy says (checked as a property in
tests/xfr/test_xfr_overlay.py).

Cost while an overlay is live (until its reload finishes): the per-query mandated lookup is two
suffix walks (the base index's and the small one's) and a function call; a name either hits is
settled by `explain` on both (the slow path, taken for blocked names only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from resolver.lists.model import Entry, RuleAction, Scope
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex, Hit, Special
from resolver.match.key import name_key

if TYPE_CHECKING:
    from resolver.policy.snapshot import PolicySnapshot

MANDATED_BIT = 0  # the mandated index has one category
_SPECIAL = frozenset({RuleAction.NXDOMAIN, RuleAction.NODATA, RuleAction.REWRITE})


class MandatedOverlay:
    """Looks like the `CategoryIndex` the rebuilt copy will give (the parts the server uses)."""

    lookup: Callable[[bytes, list[int]], int]

    def __init__(
        self, base: CategoryIndex, added: CategoryIndex | None, removed: frozenset[tuple[str, str]]
    ) -> None:
        self.base = base
        self.added = added
        self.removed = removed  # (list file, name): the base's rules there no longer hold
        base_lookup = base.lookup
        added_lookup = added.lookup if added is not None else _nothing
        exact = self._exact

        def lookup(key: bytes, dots: list[int]) -> int:
            if base_lookup(key, dots) or added_lookup(key, dots):
                return exact(key[:-1].decode("latin-1"))
            return 0

        self.lookup = lookup

    def _exact(self, name: str) -> int:
        blocked = allowed = False
        for hit in self.explain(name):
            if hit.action is RuleAction.ALLOW:
                allowed = True
            else:
                blocked = True
        return 1 << MANDATED_BIT if blocked and not allowed else 0

    def lookup_name(self, name: str) -> int:
        return self.lookup(*name_key(name))

    def explain(self, name: str) -> list[Hit]:
        removed = self.removed
        hits = [h for h in self.base.explain(name) if (h.source, h.rule) not in removed]
        return hits + (self.added.explain(name) if self.added is not None else [])

    def special(self, name: str) -> Special | None:
        """The most specific RPZ action (NXDOMAIN, NODATA, rewrite) still covering `name`."""
        best: Hit | None = None
        for hit in self.explain(name):
            if hit.action in _SPECIAL and (best is None or len(hit.rule) > len(best.rule)):
                best = hit
        if best is None:
            return None
        return Special(best.action, best.target, best.bit, best.rule, best.source)

    def storage(self) -> list[object]:
        return self.base.storage() + (self.added.storage() if self.added is not None else [])

    def __len__(self) -> int:
        return len(self.base)


class Increments:
    """The IXFR increments not folded into a compiled index yet, in arrival order."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, str, dict[str, Any]]] = []  # (sequence, list file, increment)
        self.added: CategoryIndex | None = None
        self.removed: frozenset[tuple[str, str]] = frozenset()

    def add(self, sequence: int, source: str, increment: dict[str, Any]) -> None:
        self.pending.append((sequence, source, increment))

    def fold(self, sequence: int) -> None:
        """Increments up to `sequence` are in the compiled index now."""
        self.pending = [p for p in self.pending if p[0] > sequence]

    def forget(self, source: str) -> None:
        """A list file that is no longer a transfer source: its increments go."""
        self.pending = [p for p in self.pending if p[1] != source]

    def compose(self) -> None:
        """Build the small index of every pending change (the latest rules per name win).
        CPU work proportional to the changes: run it off the event loop."""
        rules: dict[tuple[str, str], list[Entry]] = {}
        for _, source, increment in self.pending:
            for name in increment["removed"]:
                rules[(source, name)] = []
            for name, scope, action, target in increment["added"]:
                entry = Entry(name, Scope(scope), RuleAction(action), target)
                rules.setdefault((source, name), []).append(entry)
        builder = IndexBuilder()
        for source in {source for source, _ in rules}:
            entries = [e for (s, _), found in rules.items() if s == source for e in found]
            # As the compiler does for the mandated list: a rewrite must still trip the lookup.
            entries += [Entry(e.name, e.scope) for e in entries if e.action is RuleAction.REWRITE]
            builder.add(MANDATED_BIT, entries, source)
        self.added = builder.build() if any(rules.values()) else None
        self.removed = frozenset(rules)

    def apply(self, snapshot: PolicySnapshot) -> PolicySnapshot:
        """`snapshot` with the pending increments (or none) beside its mandated index: a
        process's `SnapshotHolder.transform`."""
        current: Any = snapshot.mandated
        if current is None:
            return snapshot  # no compiled copy to change: the reload brings the list
        base = current.base if isinstance(current, MandatedOverlay) else current
        if not self.removed:
            return snapshot if base is current else replace(snapshot, mandated=base)
        # Duck-typed: the overlay answers everything the server asks a mandated index.
        overlay = cast(CategoryIndex, MandatedOverlay(base, self.added, self.removed))
        return replace(snapshot, mandated=overlay)


def _nothing(key: bytes, dots: list[int]) -> int:
    return 0
