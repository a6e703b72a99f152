"""The mandated index with IXFR increments on top answers as the index rebuilt from the new zone.

Checked as a property: random RPZ rules, a random IXFR (rules removed, added, changed action),
then every name nearby asked of both: the overlay and an index compiled from the new rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from resolver.lists.common import merge_apex_and_below
from resolver.lists.model import Entry, RuleAction, Scope
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex
from resolver.transfer.overlay import Increments, MandatedOverlay

SOURCE = "/lists/authority.rpz"
LABELS = ["a", "b", "c"]
NAMES = [f"{x}.test" for x in LABELS] + [f"{y}.{x}.test" for x in LABELS for y in LABELS]
ACTIONS = [RuleAction.NXDOMAIN, RuleAction.NODATA, RuleAction.BLOCK, RuleAction.REWRITE]
TARGET = "walled.example"
Rules = dict[tuple[str, Scope], RuleAction]

rules_strategy = st.dictionaries(
    st.tuples(st.sampled_from(NAMES), st.sampled_from([Scope.EXACT, Scope.BELOW])),
    st.sampled_from(ACTIONS),
    max_size=8,
)


def entries(rules: Rules) -> list[Entry]:
    """What the RPZ parser gives for these owner records (apex and below folded)."""
    return merge_apex_and_below(
        [
            Entry(n, s, a, TARGET if a is RuleAction.REWRITE else None)
            for (n, s), a in sorted(rules.items())
        ]
    )


def index(rules: Rules) -> CategoryIndex:
    """As the compiler builds the mandated index (a rewrite also trips the lookup)."""
    found = entries(rules)
    found += [Entry(e.name, e.scope) for e in found if e.action is RuleAction.REWRITE]
    builder = IndexBuilder()
    builder.add(0, found, SOURCE)
    return builder.build()


def increment(old: Rules, new: Rules) -> dict[str, Any]:
    """What the transfer process reports: the changed triggers, their old and new rules."""
    changed = {n for (n, s) in set(old) ^ set(new)} | {
        n for key in set(old) & set(new) if old[key] != new[key] for n in [key[0]]
    }
    before = [e for e in entries(old) if e.name in changed]
    after = [e for e in entries(new) if e.name in changed]
    return {
        "removed": sorted({e.name for e in (*before, *after)}),
        "added": [[e.name, e.scope.value, e.action.value, e.target] for e in after],
    }


def overlaid(old: Rules, *steps: Rules) -> MandatedOverlay | CategoryIndex:
    snapshot = Snap(index(old))
    increments = Increments()
    previous = old
    for sequence, rules in enumerate(steps, 1):
        increments.add(sequence, SOURCE, increment(previous, rules))
        previous = rules
    increments.compose()
    return apply(increments, snapshot).mandated


@settings(max_examples=300, deadline=None)
@given(rules_strategy, rules_strategy, rules_strategy, st.sets(st.sampled_from(NAMES)))
def test_overlay_answers_as_the_rebuilt_index(
    old: Rules, middle: Rules, new: Rules, passthru: set[str]
) -> None:
    # Exceptions (rpz-passthru) may come and stay; an increment never removes one (the
    # transfer process then leaves it to the full rebuild).
    for rules in (middle, new):
        rules.update({(name, Scope.EXACT): RuleAction.ALLOW for name in passthru})
    assume(not any(a is RuleAction.ALLOW for a in old.values()))
    overlay = overlaid(old, middle, new)
    rebuilt = index(new)
    for name in ["test", *NAMES, *(f"z.{n}" for n in NAMES)]:
        assert bool(overlay.lookup_name(name)) == bool(rebuilt.lookup_name(name)), name
        if rebuilt.lookup_name(name):
            want, got = rebuilt.special(name), overlay.special(name)
            assert (want and (want.action, want.target)) == (got and (got.action, got.target))


def test_fold_drops_the_overlay_and_nothing_pending_means_the_plain_index() -> None:
    base = index({("a.test", Scope.EXACT): RuleAction.NXDOMAIN})
    snapshot = Snap(base)
    increments = Increments()
    increments.add(1, SOURCE, {"removed": ["a.test"], "added": []})
    increments.add(
        2, SOURCE, {"removed": ["b.test"], "added": [["b.test", "exact", "block", None]]}
    )
    increments.compose()
    snapshot = apply(increments, snapshot)
    overlay = snapshot.mandated
    assert isinstance(overlay, MandatedOverlay) and overlay.base is base
    assert not overlay.lookup_name("a.test") and overlay.lookup_name("b.test")
    assert overlay.storage() == base.storage()
    increments.fold(1)  # the rebuild read the copy after the first one only
    increments.compose()
    snapshot = apply(increments, snapshot)
    assert snapshot.mandated.lookup_name("a.test")  # the base again, for the name 1 changed
    assert snapshot.mandated.lookup_name("b.test")
    increments.fold(2)
    increments.compose()
    snapshot = apply(increments, snapshot)
    assert snapshot.mandated is base
    other = Snap(None)
    assert apply(increments, other) is other


@dataclass(frozen=True)
class Snap:
    """The part of a `PolicySnapshot` the overlay reads and replaces."""

    mandated: Any


def apply(increments: Increments, snapshot: Snap) -> Snap:
    return increments.apply(snapshot)  # type: ignore[arg-type,return-value]
