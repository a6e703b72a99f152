"""The small name table and the walk every name table shares.

`DictNames` is the "suffix" layout for small indexes (a policy's own allow and deny rules, a
short mandated list): one dict keyed like the packed table ("name\\n" bytes). `walk` builds the
lookup over any exact-key getter: down from the base, key by key, while the record says a key
below answers differently (DEEP). `resolver.match.packed.PackedNames` is the big layout, with its
own inlined walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from resolver.match.key import name_key
from resolver.match.packed import DEEP


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
        return walk(self.keyed.get, at, below, flags, has_tld_rules)


def walk(
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
