"""Client networks: `clients.networks` and the networks file, checked together and summarized.

An ISP exports its subscriber prefixes from its database, up to a million lines of
`prefix profile`; a school writes a handful in the policy. Both go into one `ClientNetworks`:
each network written is an entry number with its owner and position in flat arrays (no object per
line), and the prefix sweep (`resolver.policy.prefixes`) checks them all at once. A million bad or
overlapping lines must not print a million messages: each kind of problem is reported for the
first `SHOW` cases with file:line:column, then one line counting the rest.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable

from resolver.policy.prefixes import (
    WIDTH,
    Examples,
    PrefixTable,
    pack,
    parse_prefix,
    release,
    sorted_keys,
    sweep,
    text_of,
    unpack,
)
from resolver.yamlsource import Problem, suggest

SHOW = 10  # problems of one kind shown in full; the rest are counted


class Shown:
    """Problems of one kind: the first `SHOW` kept, the rest counted (a million bad lines cost a
    counter, not a million messages); `problems()` adds the line that counts them."""

    def __init__(self, what: str) -> None:
        self.what = what  # "bad lines", "networks listed twice", ...
        self.count = 0
        self.kept: list[Problem] = []
        self.next: Problem | None = None  # where the first one not shown is

    def add(self, problem: Problem) -> None:
        self.count += 1
        if self.count <= SHOW:
            self.kept.append(problem)
        elif self.next is None:
            self.next = problem

    def problems(self) -> list[Problem]:
        if self.next is None:
            return self.kept
        more = Problem(
            self.next.file,
            self.next.line,
            self.next.column,
            f"{self.count - SHOW} more {self.what} not shown ({self.count} in all)",
            self.next.severity,
        )
        return [*self.kept, more]


class ClientNetworks:
    """Every client network written, in order, then swept into one `PrefixTable`.

    Owner numbers index `owners`: 0 is the default profile (no network), 1.. the profiles.
    Entries are added source by source (`begin` each), the policy's own mapping first.
    """

    def __init__(self, profiles: Iterable[str], default: str) -> None:
        self.owners: tuple[str, ...] = (default, *profiles)
        self._number = {pid: number for number, pid in enumerate(self.owners) if number}
        self._keys: dict[int, list[int]] = {4: [], 6: []}
        self._owner = array("H" if len(self.owners) <= 0x10000 else "I")
        self._line = array("I")
        self._column = array("H")
        self._firsts: list[int] = []  # first entry of each source
        self._files: list[str] = []  # the file of each source
        self.used: set[str] = set()  # profiles some network names

    def begin(self, file: str) -> None:
        """The entries added from now on are written in `file`."""
        self._firsts.append(len(self._owner))
        self._files.append(file)

    def unknown(self, profile: str) -> str | None:
        """Why `profile` cannot own a network, or None."""
        if profile in self._number:
            return None
        return f"unknown profile {profile!r}{suggest(profile, self._number)}"

    def add(self, text: str, profile: str, line: int, column: int) -> str | None:
        """Add network `text` for `profile` (known: see `unknown`); why it is bad, or None."""
        parsed = parse_prefix(text)
        if isinstance(parsed, str):
            return parsed
        version, value, length = parsed
        self._keys[version].append(pack(value, length, len(self._owner)))
        self._owner.append(self._number[profile])
        self._line.append(line)
        self._column.append(column if column < 0xFFFF else 0xFFFF)
        self.used.add(profile)
        return None

    def read_lines(self, lines: Iterable[str], file: str) -> list[Problem]:
        """Add the networks of a networks file (`prefix profile` per line, `#` comments); the
        bad lines, the first `SHOW` in full and the rest counted. `lines` is best the open file
        itself: read line by line, a million lines never sit in memory (or in one long C call
        holding the GIL beside the server's event loop) as one list."""
        self.begin(file)
        bad = Shown("bad lines")
        known = self._number
        for number, line in enumerate(lines, 1):
            hash_at = line.find("#")
            fields = (line if hash_at < 0 else line[:hash_at]).split()
            if len(fields) != 2:
                if fields:
                    message = f"expected `prefix profile`, not {line.strip()!r}"
                    bad.add(Problem(file, number, 1, message))
                continue
            prefix, profile = fields
            column = line.index(prefix) + 1
            if profile not in known:
                error = self.unknown(profile)
                bad.add(Problem(file, number, line.index(profile, column) + 1, str(error)))
                continue
            error = self.add(prefix, profile, number, column)
            if error is not None:
                bad.add(Problem(file, number, column, error))
        return bad.problems()

    def where(self, entry: int) -> tuple[str, int, int]:
        """(file, line, column) where entry number `entry` was written."""
        source = bisect_right(self._firsts, entry) - 1
        return self._files[source], self._line[entry], self._column[entry]

    def table(self) -> tuple[PrefixTable, list[Problem]]:
        """The lookup table and the problems: the same network twice with different profiles
        (an error), twice with the same profile, or inside a shorter one (warnings)."""
        kinds = {
            "conflicts": Shown("networks listed twice with different profiles"),
            "repeats": Shown("networks listed twice"),
            "nested": Shown("networks inside another network"),
        }
        bounds = {}
        for version in (4, 6):
            keys = self._keys[version]
            bounds[version], found = sweep(sorted_keys(keys), WIDTH[version], self._owner, SHOW + 1)
            release(keys)
            for name, shown in kinds.items():
                examples: Examples = getattr(found, name)
                for key, other in examples.first:
                    shown.add(self._problem(name, version, key, other))
                shown.count += examples.count - len(examples.first)
        problems = [p for shown in kinds.values() for p in shown.problems()]
        return PrefixTable(bounds[4], bounds[6], len(self.owners)), problems

    def _problem(self, kind: str, version: int, key: int, other: int) -> Problem:
        """The message for one finding of `kind` (a `Findings` field): `key` against `other`."""
        value, length, entry = unpack(key)
        other_value, other_length, other_entry = unpack(other)
        net, pid = text_of(version, value, length), self.owners[self._owner[entry]]
        outer = text_of(version, other_value, other_length)
        other_pid = self.owners[self._owner[other_entry]]
        at = "{}:{}:{}".format(*self.where(other_entry))
        severity = "warning"
        if kind == "conflicts":
            severity = "error"
            message = (
                f"network {net} ({pid}) is listed twice with different profiles "
                f"(also at {at}, for {other_pid})"
            )
        elif kind == "repeats":
            message = f"network {net} ({pid}) is listed twice (also at {at})"
        elif pid == other_pid:
            message = f"network {net} ({pid}) lies inside {outer} ({at}), with the same profile"
        else:
            message = (
                f"network {net} ({pid}) lies inside {outer} ({other_pid}, {at}); "
                "the longer prefix wins for its addresses"
            )
        return Problem(*self.where(entry), message, severity)
