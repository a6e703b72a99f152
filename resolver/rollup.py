"""Daily roll-ups for the authorities' reports: counted on the query path, folded, stored for years.

Why not from the raw query log: raw rows are kept `retention_days` (30 by default) and profiles
with `log: false` never write one, so a six-monthly report read from them undercounts, most of
all the mandated blocks. Roll-ups hold no client data, only counts per local day of the policy's
time zone, profile, category, tier and action, plus the most blocked registrable domains per day.

Three stages, each bounded:
  1. `Rollup.count` (each worker, every query): one dict add, nothing else; the day is switched
     by `Rollup.clock`, which the worker calls a few times a second off the query path, so no
     query reads a clock or a time zone for this. A blocked answer's key carries its name; a
     worker keeps at most WORKER_TOP such keys between pushes (when full, the lighter half
     lose their name: totals stay exact, the most-blocked table keeps lower bounds).
  2. `Rollup.take` hands the counts since the last push to the supervisor with the stats push
     (every second) and starts afresh: each delta travels once, so nothing is counted twice.
  3. `RollupFold` (supervisor) adds the deltas of every worker, maps names to registrable
     domains (Public Suffix List, offline, memoized) and keeps them until the single writer
     takes a `Batch` (every few seconds) and adds it to the roll-up tables in one transaction.
     A failed write puts the batch back (`restore`), so a database outage delays counts and
     loses none; a crash loses at most the interval since the last write.

`count` takes plain values (profile, category, tier, action, qname, n) so any answering path
(the Python handler, a compiled fast path reporting counts per answer) feeds the same tables.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from publicsuffixlist import PublicSuffixList

WORKER_TOP = 4096  # blocked names one worker keeps apart between two pushes (a second)
FOLD_TOP = 20_000  # registrable domains per day the supervisor keeps between two writes
TOP_STORED = 1000  # registrable domains kept per day once the day is over
REGISTRABLE_MEMO = 65_536  # names whose registrable domain is remembered
MAX_BEAT_GAP = 60.0  # seconds: a longer silence of the writer is not counted as time up

# Local day "YYYY-MM-DD" -> (profile, category, tier, action[, qname]) -> answers; the name is
# there for the answers the `blocked` figure counts (`figures`). Action is the DNS path's label
# (allowed, cached, blocked, refused, rewritten, servfail, notimp, formerr), tier a Tier value.
Delta = dict[str, defaultdict[tuple[str, ...], int]]

# The figures reports show, from (tier, action): one definition for every report.
FIGURES = ("queries", "blocked", "rewritten", "mandated", "safesearch")


def figures(tier: str, action: str) -> tuple[int, int, int, int, int]:
    """What one query with this tier and action adds to each of FIGURES (0 or 1).

    Every answer that came from the mandated list is mandated and blocked, whatever its RPZ
    action (block, NXDOMAIN, NODATA, rewrite to a warning page) and whether the rewrite's
    upstream answered. Safe-search NODATA (a search host's other record types) is no block.
    """
    mandated = tier == "mandated"
    blocked = mandated or (action == "blocked" and tier != "safesearch")
    rewritten = action == "rewritten"
    safesearch = rewritten and tier == "safesearch"
    return 1, int(blocked), int(rewritten), int(mandated), int(safesearch)


def named(tier: str, action: str) -> bool:
    """Whether an answer's roll-up key carries its name: those the `blocked` figure counts."""
    return (action == "blocked" and tier != "safesearch") or tier == "mandated"


def local_day(wall: float, zone: tzinfo) -> tuple[str, float]:
    """The local calendar day of Unix time `wall` in `zone`, and the Unix time it ends."""
    today = datetime.fromtimestamp(wall, zone).date()
    return today.isoformat(), day_start(today + timedelta(days=1), zone)


def day_start(day: date, zone: tzinfo) -> float:
    """Unix time of local midnight starting `day` in `zone`."""
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def prune_top(table: dict[str, int], keep: int) -> None:
    """Keep the `keep` heaviest entries (ties: the smaller name), in place."""
    heaviest = sorted(table.items(), key=lambda item: (-item[1], item[0]))[:keep]
    table.clear()
    table.update(heaviest)


class Rollup:
    """One worker's roll-up counts since its last push (see the module docstring)."""

    __slots__ = ("_days", "_until", "_zone", "counts", "day", "limit")

    def __init__(self, limit: int = WORKER_TOP) -> None:
        self.limit = limit  # keys with a name (blocked answers) one worker keeps per push
        self.day = ""  # until the first `clock`: the fold files it under its own today
        self.counts: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self._days: Delta = {self.day: self.counts}
        self._until = float("-inf")  # when the current day ends (Unix time)
        self._zone: tzinfo | None = None

    def clock(self, wall: float, zone: tzinfo) -> None:
        """Move to the local day of `wall` in `zone` (the policy's) when it has changed.

        Called by the worker's push loop (every LOG_EVERY seconds) and before each push, never
        per query: a query answered in the first fraction of a second of a new day may count
        on the day before, which no report can tell apart.
        """
        if wall < self._until and zone is self._zone:
            return
        day, self._until = local_day(wall, zone)
        self._zone = zone
        if day != self.day:
            self.day = day
            self.counts = self._days.setdefault(day, defaultdict(int))

    def count(
        self, profile: str, category: str, tier: str, action: str, qname: str | None, n: int = 1
    ) -> None:
        """Add `n` answers. The hot path's whole cost: a call, a tuple and one dict add; a
        blocked answer's key carries its name (if given), which the fold turns into the
        domain table."""
        if qname is not None and named(tier, action):
            counts = self.counts
            if len(counts) >= self.limit:
                _shrink(counts, self.limit // 2)
            counts[(profile, category, tier, action, qname)] += n
        else:
            self.counts[(profile, category, tier, action)] += n

    def take(self) -> Delta:
        """The counts since the last take (days with any), and start afresh."""
        out = {day: counts for day, counts in self._days.items() if counts}
        self.counts = defaultdict(int)
        self._days = {self.day: self.counts}
        return out


def _shrink(counts: defaultdict[tuple[str, ...], int], keep: int) -> None:
    """Keep the `keep` heaviest named keys; the others' counts go to their unnamed key, so
    every total stays exact and only the most-blocked table loses the lightest names."""
    named = sorted((key for key in counts if len(key) == 5), key=lambda k: (-counts[k], k))
    for key in named[keep:]:
        counts[key[:4]] += counts.pop(key)


@dataclass(slots=True)
class DayMark:
    """The writer's heartbeat for one local day: the server was up, and for how long."""

    first_seen: float
    last_seen: float
    up_seconds: float
    tz: str


@dataclass(slots=True)
class Batch:
    """What one write adds to the roll-up tables."""

    counts: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)
    top: dict[tuple[str, str], int] = field(default_factory=dict)  # (day, domain) -> blocked
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (day, kind) -> count
    days: dict[str, DayMark] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts or self.top or self.requests or self.days)


class Registrable:
    """Name -> registrable domain (eTLD+1) by the Public Suffix List the package ships.

    A name that is itself a public suffix, or has no known suffix, stands for itself. Memoized:
    blocked names repeat, and a lookup costs a few microseconds.
    """

    def __init__(self) -> None:
        self._psl = PublicSuffixList()
        self._memo: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        found = self._memo.get(name)
        if found is None:
            found = self._psl.privatesuffix(name) or name
            if len(self._memo) >= REGISTRABLE_MEMO:
                self._memo.clear()
            self._memo[name] = found
        return found


class RollupFold:
    """The supervisor's sum of every worker's deltas until the writer takes them.

    `fold` and `note_request` run on the event loop (and request-store threads), `beat`,
    `take` and `restore` in the writer thread: one lock guards the tables.
    """

    def __init__(self, zone: tzinfo, top_limit: int = FOLD_TOP) -> None:
        self.zone = zone  # the policy's time zone, set again at every reload
        self.top_limit = top_limit
        self._lock = threading.Lock()
        self._registrable = Registrable()
        self._batch = Batch()
        self._top: dict[str, dict[str, int]] = {}  # day -> domain -> blocked
        self._last_beat: float | None = None

    def today(self, wall: float) -> str:
        return local_day(wall, self.zone)[0]

    def fold(self, delta: Delta, wall: float) -> None:
        """Add one worker's delta (days as the worker cut them)."""
        mapped: list[tuple[str, dict[tuple[str, str, str, str, str], int], dict[str, int]]] = []
        for day, counts in delta.items():
            when = day or self.today(wall)
            plain: dict[tuple[str, str, str, str, str], int] = {}
            domains: dict[str, int] = {}
            for key, n in counts.items():
                # str(): a Tier is a StrEnum; stored and compared as its plain value
                flat = (when, str(key[0]), str(key[1]), str(key[2]), str(key[3]))
                plain[flat] = plain.get(flat, 0) + n
                if len(key) == 5:
                    domain = self._registrable(key[4])
                    domains[domain] = domains.get(domain, 0) + n
            mapped.append((when, plain, domains))
        with self._lock:
            table = self._batch.counts
            for day, plain, domains in mapped:
                for key, n in plain.items():
                    table[key] = table.get(key, 0) + n
                if domains:
                    self._add_top(day, domains)

    def _add_top(self, day: str, domains: dict[str, int]) -> None:
        top = self._top.setdefault(day, {})
        for domain, n in domains.items():
            seen = top.get(domain)
            if seen is None and len(top) >= self.top_limit:
                prune_top(top, self.top_limit // 2)
            top[domain] = (seen or 0) + n

    def note_request(self, kind: str, wall: float) -> None:
        """One unblock request decided or content report received (counts only)."""
        key = (self.today(wall), kind)
        with self._lock:
            self._batch.requests[key] = self._batch.requests.get(key, 0) + 1

    def beat(self, wall: float) -> None:
        """The writer is alive at `wall`: the day is covered, and up for the time since the
        last beat (a gap over MAX_BEAT_GAP counts as down)."""
        gap = 0.0 if self._last_beat is None else wall - self._last_beat
        self._last_beat = wall
        up = gap if 0 < gap <= MAX_BEAT_GAP else 0.0
        day = self.today(wall)
        with self._lock:
            mark = self._batch.days.get(day)
            if mark is None:
                self._batch.days[day] = DayMark(wall, wall, up, str(self.zone))
            else:
                mark.last_seen = max(mark.last_seen, wall)
                mark.up_seconds += up

    def take(self) -> Batch:
        """Everything folded since the last take."""
        with self._lock:
            batch, self._batch = self._batch, Batch()
            for day, top in self._top.items():
                for domain, n in top.items():
                    batch.top[(day, domain)] = n
            self._top = {}
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back a batch that could not be written (it goes with the next one)."""
        with self._lock:
            mine = self._batch
            for key, n in batch.counts.items():
                mine.counts[key] = mine.counts.get(key, 0) + n
            for kind, n in batch.requests.items():
                mine.requests[kind] = mine.requests.get(kind, 0) + n
            for (day, domain), n in batch.top.items():
                self._add_top(day, {domain: n})
            for day, old in batch.days.items():
                mark = mine.days.get(day)
                if mark is None:
                    mine.days[day] = old
                else:
                    mark.first_seen = min(mark.first_seen, old.first_seen)
                    mark.last_seen = max(mark.last_seen, old.last_seen)
                    mark.up_seconds += old.up_seconds
