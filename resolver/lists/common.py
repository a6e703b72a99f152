"""Bookkeeping every parser shares: collecting entries, counting rejects, de-duplicating.

Reject reasons come from one fixed set (`REASONS`) so metrics and reports can group them.
Duplicates inside one list are reported as rejects with reason "duplicate" (the first
occurrence is kept): informational, not an error, but an admin can see a sloppy list.
Conflicting rules inside one list (the same name blocked and allowed) are both kept: the
matching core applies its precedence, the list parser does not guess.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from resolver.lists.model import Entry, ParseResult, Reject, RuleAction, Scope

MAX_LINE = 4096  # characters; the reader cuts longer lines to MAX_LINE + 1 so they are seen here
MAX_REJECT_TEXT = 200
# A file that is mostly unusable lines is the wrong format or garbage: stop after this many
# such rejects when they outnumber entries REJECT_RATIO to one, instead of holding millions of
# Reject objects. IP addresses (UT1 lists carry thousands) and duplicates are legitimate
# content, not garbage, and do not count towards it.
REJECT_FLOOR = 10_000
REJECT_RATIO = 9
_BENIGN = frozenset({"ip-address", "duplicate"})

REASONS = frozenset(
    {
        "invalid-name",
        "label-too-long",
        "name-too-long",
        "ip-address",
        "binary-data",
        "line-too-long",
        "not-a-rule",
        "duplicate",
        "unsupported-modifier",
        "cosmetic-rule",
        "path-rule",
        "regex-rule",
        "wildcard-rule",
        "unsupported-zone-type",
        "local-data",
        "unsupported-trigger",
        "unsupported-record-type",
        "unsupported-rpz-action",
        "out-of-zone",
        "keyword-too-short",
        "truncated-file",
        "corrupt-file",
        "unreadable-file",
        "too-many-rejects",
    }
)


class TooManyRejects(Exception):
    """Raised by `Collector.reject` to stop a parse that is producing only rejects."""


class Collector:
    """One parse in progress: the result plus the de-duplication set."""

    __slots__ = ("_garbage", "_seen", "result")

    def __init__(self, fmt: str) -> None:
        self.result = ParseResult(format=fmt)
        self._seen: set[tuple[str, Scope, RuleAction, str | None]] = set()
        self._garbage = 0

    def reject(self, line: int, reason: str, text: str) -> None:
        self.result.rejects.append(Reject(line, reason, text.rstrip("\r\n")[:MAX_REJECT_TEXT]))
        if reason not in _BENIGN:
            self._garbage += 1
            result = self.result
            if self._garbage >= REJECT_FLOOR and self._garbage > REJECT_RATIO * (
                len(result.entries) + len(result.keywords)
            ):
                raise TooManyRejects

    def bad_line(self, line: int, raw: str) -> bool:
        """Reject over-long and binary lines up front (called on every parser's slow path)."""
        if len(raw) > MAX_LINE:
            self.reject(line, "line-too-long", raw)
            return True
        if "\x00" in raw or "\ufffd" in raw:
            self.reject(line, "binary-data", raw)
            return True
        return False

    def add(
        self,
        name: str,
        scope: Scope,
        action: RuleAction,
        target: str | None,
        line: int,
        raw: str,
    ) -> None:
        """Add a rule unless the same rule was already seen (then count a duplicate)."""
        key = (name, scope, action, target)
        if key in self._seen:
            self.reject(line, "duplicate", raw)
            return
        self._seen.add(key)
        self.result.entries.append(Entry(name, scope, action, target, line))


def run_parser(
    fmt: str, lines: Iterable[str], body: Callable[[Iterable[str], Collector], int]
) -> ParseResult:
    """Run a parser body (which returns the number of lines read), stopping on garbage."""
    out = Collector(fmt)
    try:
        with gc_paused():
            out.result.lines = body(lines, out)
    except TooManyRejects:
        last = out.result.rejects[-1].line
        out.result.lines = last
        out.result.rejects.append(
            Reject(last, "too-many-rejects", f"stopped: wrong format for {fmt!r} or garbage")
        )
    return out.result


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parse allocates millions of objects.

    Entries hold no reference cycles, yet every allocation burst triggers collections that
    walk the ever-growing entry list: pausing it makes a 1M-line parse about 1.6x faster.
    Nested or concurrent parses (worker threads) share one pause; the last one out restores
    the collector if it was enabled before.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def merge_apex_and_below(entries: list[Entry]) -> list[Entry]:
    """Fold `d` (EXACT) + `*.d` (BELOW) with the same action into one SUBTREE entry.

    hagezi and other RPZ/wildcard writers emit both records for every domain; one SUBTREE
    rule says the same thing with half the index. The earlier line number is kept.
    """
    below: dict[tuple[str, RuleAction, str | None], Entry] = {}
    for entry in entries:
        if entry.scope is Scope.BELOW:
            below[(entry.name, entry.action, entry.target)] = entry
    if not below:
        return entries
    merged: list[Entry] = []
    folded: set[tuple[str, RuleAction, str | None]] = set()
    exact_keys = {
        (e.name, e.action, e.target) for e in entries if e.scope is Scope.EXACT
    } & below.keys()
    for entry in entries:
        key = (entry.name, entry.action, entry.target)
        if key not in exact_keys or entry.scope is Scope.SUBTREE:
            merged.append(entry)
        elif key not in folded:
            folded.add(key)
            line = min(entry.line, below[key].line)
            merged.append(Entry(entry.name, Scope.SUBTREE, entry.action, entry.target, line))
    return merged
