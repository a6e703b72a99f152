"""Prefix arithmetic for client networks: parse, sweep for nesting, look up the longest match.

An ISP maps a million subscriber prefixes to packages; they must check and load in seconds and
cost a few bytes each. Each prefix is packed into one int, `(address << 8 | length) << 32 | entry`,
so sorting the ints sorts the prefixes by (address, length) and carries the entry number along
(its owner and where it was written are looked up by that number, never stored per prefix). One
sweep over the sorted ints with a stack of enclosing prefixes finds duplicates and nesting in
O(n log n), and flattens the nested prefixes into disjoint address intervals: the longest match for
an address is then one binary search over compact arrays (about 12 bytes per IPv4 network and 36
per IPv6 network, nothing for the cycle collector, freed in one call).

Long single C calls hold the GIL, and the server compiles a reload in a thread beside its event
loop: sorting, copying and freeing go in slices of `CHUNK` items, so no step here holds the GIL
for more than a few milliseconds, even at a million prefixes.
"""

from __future__ import annotations

import heapq
import ipaddress
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ENTRY_BITS = 32  # entry numbers below 2**32
CHUNK = 16384  # items handled per C call where a million would hold the GIL too long
_ENTRY_MASK = (1 << ENTRY_BITS) - 1
_LOW64 = (1 << 64) - 1
WIDTH = {4: 32, 6: 128}


def parse_network(text: object) -> Network | str:
    """A network written `10.1.0.0/16` or `2001:db8::/32`, or why it is not one."""
    try:
        return ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(str(text).strip(), strict=False)
        except ValueError:
            return f"bad network {text!r}: {exc}"
        return f"bad network {text!r}: host bits set (did you mean {loose}?)"


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/([0-9]{{1,2}})")
_V6 = re.compile(r"([0-9A-Fa-f:]{2,39})/([0-9]{1,3})")


def parse_prefix(text: str) -> tuple[int, int, int] | str:
    """`10.1.0.0/16` -> (4, address as an int, 16), or why it is not a network.

    The plain `address/length` spellings are read by a regular expression (2x faster than an
    address object, a million times per load); anything else (netmasks, embedded IPv4, errors)
    goes through `parse_network`, so both accept and refuse the same texts (a test compares them).
    """
    parsed = _fast_v4(text) if "." in text else _fast_v6(text)
    if parsed is not None:
        version, value, length = parsed
        if not value & ((1 << (WIDTH[version] - length)) - 1):
            return parsed
    net = parse_network(text)
    if isinstance(net, str):
        return net
    return net.version, int(net.network_address), net.prefixlen


def _fast_v4(text: str) -> tuple[int, int, int] | None:
    match = _V4.fullmatch(text)
    if match is None:
        return None
    a, b, c, d, length = map(int, match.groups())
    return (4, a << 24 | b << 16 | c << 8 | d, length) if length <= 32 else None


def _fast_v6(text: str) -> tuple[int, int, int] | None:
    match = _V6.fullmatch(text)
    if match is None:
        return None
    address, length = match.groups()
    head, gap, tail = address.partition("::")
    groups = head.split(":") if head else []
    right = tail.split(":") if tail else []
    if gap:
        if len(groups) + len(right) > 7 or "::" in tail:
            return None
        groups += ["0"] * (8 - len(groups) - len(right)) + right
    elif len(groups) != 8:
        return None
    value = 0
    for group in groups:
        if not 0 < len(group) <= 4:
            return None
        value = value << 16 | int(group, 16)
    return (6, value, int(length)) if int(length) <= 128 else None


def pack(value: int, length: int, entry: int) -> int:
    """The sort key of a prefix written as entry number `entry`."""
    return (value << 8 | length) << ENTRY_BITS | entry


def unpack(key: int) -> tuple[int, int, int]:
    """`pack` reversed: (address, length, entry)."""
    return key >> (ENTRY_BITS + 8), key >> ENTRY_BITS & 0xFF, key & _ENTRY_MASK


def text_of(version: int, value: int, length: int) -> str:
    """`10.1.0.0/16` for (4, 0x0A010000, 16)."""
    address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    return f"{address}/{length}"


def sorted_keys(keys: list[int]) -> Iterator[int]:
    """`keys` in order, without one long C call: sorted in place in slices, then merged lazily.

    `list.sort` of a million ints holds the GIL for ~0.5 s (a stall of the event loop when the
    server compiles a reload); a slice of `CHUNK` takes a few ms, and the merge is a generator
    the sweep consumes item by item. (Buckets of small lists sorted one by one were as fast, but
    their 65k long-lived lists set off full cycle collections of 100 ms.)
    """
    for i in range(0, len(keys), CHUNK):
        keys[i : i + CHUNK] = sorted(keys[i : i + CHUNK])
    if len(keys) <= CHUNK:
        return iter(keys)
    return heapq.merge(*(iter(keys[i : i + CHUNK]) for i in range(0, len(keys), CHUNK)))


def release(values: list[Any]) -> None:
    """Empty `values` from the end in slices: dropping a million ints at once is one C call
    freeing them all (~10-30 ms holding the GIL); slices take well under a millisecond each."""
    while values:
        del values[-CHUNK:]


@dataclass(slots=True)
class Examples:
    """How many of one kind of finding there were, and the first few (pairs of packed keys)."""

    limit: int
    count: int = 0
    first: list[tuple[int, int]] = field(default_factory=list)

    def add(self, key: int, other: int) -> None:
        self.count += 1
        if len(self.first) < self.limit:
            self.first.append((key, other))


@dataclass(slots=True)
class Findings:
    """What the sweep found, in address order: a prefix and the earlier or enclosing one."""

    conflicts: Examples  # the same prefix again with another owner
    repeats: Examples  # the same prefix again with the same owner
    nested: Examples  # inside a shorter prefix (the innermost one that encloses it)


def sweep(
    keys: Iterable[int], width: int, owners: Sequence[int], limit: int
) -> tuple[tuple[list[int], list[int]], Findings]:
    """Walk `keys` (packed, in order) once: the flattened intervals and what overlaps.

    `owners[entry]` is an entry's owner number (1 and up). The intervals are two lists, each
    interval's start and owner (0: no network), the first starting at 0; neighbours with the
    same owner are merged. Of several entries for one prefix the first written is kept.
    """
    found = Findings(Examples(limit), Examples(limit), Examples(limit))
    starts, owns = [0], [0]

    def emit(start: int, owner: int) -> None:
        """From `start` on, addresses belong to `owner` (until the next start)."""
        if start == starts[-1]:  # the previous interval turned out empty
            starts.pop()
            owns.pop()
            if not owns:
                starts.append(start)
                owns.append(owner)
                return
        if owns[-1] != owner:
            starts.append(start)
            owns.append(owner)

    space = 1 << width
    stack: list[tuple[int, int, int]] = []  # enclosing prefixes: (end, owner, key)
    previous, kept, kept_owner = -1, 0, 0
    for key in keys:
        prefix = key >> ENTRY_BITS
        owner = owners[key & _ENTRY_MASK]
        if prefix == previous:
            kind = found.repeats if owner == kept_owner else found.conflicts
            kind.add(key, kept)
            continue
        previous, kept, kept_owner = prefix, key, owner
        start = prefix >> 8
        while stack and stack[-1][0] <= start:
            end = stack.pop()[0]
            emit(end, stack[-1][1] if stack else 0)
        if stack:
            found.nested.add(key, stack[-1][2])
        emit(start, owner)
        stack.append((start + (1 << (width - (prefix & 0xFF))), owner, key))
    while stack:
        end = stack.pop()[0]
        if end < space:
            emit(end, stack[-1][1] if stack else 0)
    return (starts, owns), found


Intervals = tuple[list[int], list[int]]  # (starts, owners), as `sweep` returns them


class PrefixTable:
    """Longest-prefix match as disjoint intervals: for each family, sorted interval starts and
    the owner number of each interval (0: no network covers it). An IPv6 start is kept as two
    64-bit halves (arrays hold at most 64 bits), searched high half first."""

    __slots__ = ("v4_owners", "v4_starts", "v6_high", "v6_low", "v6_owners")

    def __init__(
        self, v4: Intervals = ([0], [0]), v6: Intervals = ([0], [0]), owners: int = 1
    ) -> None:
        """`owners`: how many owner numbers there are (two bytes each up to 65,536)."""
        kind = "H" if owners <= 0x10000 else "I"
        self.v4_starts, self.v4_owners = _filled("I", v4[0]), _filled(kind, v4[1])
        self.v6_high, self.v6_low = array("Q"), array("Q")
        for start in v6[0]:
            self.v6_high.append(start >> 64)
            self.v6_low.append(start & _LOW64)
        self.v6_owners = _filled(kind, v6[1])
        for values in (*v4, *v6):
            release(values)

    def owner(self, version: int, value: int) -> int:
        """The owner of the longest prefix holding the address `value` (an int), or 0."""
        if version == 4:
            return self.v4_owners[bisect_right(self.v4_starts, value) - 1]
        high, low = value >> 64, value & _LOW64
        first, past = bisect_left(self.v6_high, high), bisect_right(self.v6_high, high)
        return self.v6_owners[bisect_right(self.v6_low, low, first, past) - 1]

    _ARRAYS = ("v4_starts", "v4_owners", "v6_high", "v6_low", "v6_owners")

    def plain(self) -> dict[str, tuple[str, bytes]]:
        """The arrays as (typecode, bytes): how a built table crosses to the serving processes."""
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        return {name: (a.typecode, a.tobytes()) for name, a in arrays.items()}

    @classmethod
    def from_plain(cls, plain: dict[str, tuple[str, bytes]]) -> PrefixTable:
        """The table `plain()` described; ValueError/KeyError on malformed data."""
        table = cls.__new__(cls)
        for name in cls._ARRAYS:
            typecode, raw = plain[name]
            values = array(typecode)
            values.frombytes(raw)
            setattr(table, name, values)
        if len(table.v4_starts) != len(table.v4_owners) or not (
            len(table.v6_high) == len(table.v6_low) == len(table.v6_owners)
        ):
            raise ValueError("prefix table arrays differ in length")
        return table

    @property
    def intervals(self) -> int:
        return len(self.v4_owners) + len(self.v6_owners)

    @property
    def nbytes(self) -> int:
        arrays = (self.v4_starts, self.v4_owners, self.v6_high, self.v6_low, self.v6_owners)
        return sum(a.itemsize * len(a) for a in arrays)


def _filled(typecode: str, values: list[int]) -> array[int]:
    """An array of `values`, copied in slices (one call over a million would hold the GIL)."""
    out = array(typecode)
    for i in range(0, len(values), CHUNK):
        out.extend(values[i : i + CHUNK])
    return out
