"""A week of synthetic DNS answers in Asia/Ho_Chi_Minh, written through the real roll-up path.

Two workers' `Rollup`s count the answers (each answer goes to one worker), push their deltas
to the supervisor's `RollupFold` as the stats push does, and the writer's batches go to a
store with `write_rollups`, heartbeats included, at the answers' own times (so the days are
the synthetic ones, not today). Answers of profiles that log also go into the raw query log.
One day of the week is a gap: the server was down, nothing was counted or marked. Between
answers less than an hour apart the writer beats every BEAT seconds, as a running server does,
so the days around the gap are up 24 hours and the gap is not.

`expected_*` restate what a report must show, straight from the answers.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from resolver.rollup import Rollup, RollupFold
from resolver.store.base import QueryStore
from resolver.store.events import QueryEvent

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
FIRST_DAY = "2025-03-03"  # a Monday
DAYS = 7
GAP_DAY = "2025-03-06"  # the server was down all day
LOGGING = {"students": True, "teachers": True, "standard": False}  # standard: `log: false`
BEAT = 30.0  # seconds between the writer's heartbeats

# (tier, action, category, name) and how often, per answer
KINDS: list[tuple[tuple[str, str, str, str], int]] = [
    (("default", "allowed", "", "ok.example"), 30),
    (("default", "cached", "", "cdn.ok.example"), 20),
    (("category", "blocked", "adult", "www.xvideos.com"), 8),
    (("category", "blocked", "adult", "cdn.xvideos.com"), 3),
    (("category", "blocked", "gambling", "m.casino.example.vn"), 4),
    (("mandated", "blocked", "mandated", "banned.example.net"), 5),
    (("mandated", "rewritten", "mandated", "rpz-rewrite.example.net"), 3),  # RPZ rewrite
    (("safesearch", "rewritten", "", "www.google.com"), 6),
    (("safesearch", "blocked", "", "www.google.com"), 1),  # NODATA for other types: no block
    (("schedule", "refused", "", "game.example"), 2),
]


@dataclass(frozen=True, slots=True)
class Answer:
    ts: float
    profile: str
    tier: str
    action: str
    category: str
    qname: str

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.ts, HCM).date().isoformat()

    def event(self) -> QueryEvent:
        logged = {"cached": "allowed"}.get(self.action, self.action)
        return QueryEvent(
            self.ts, "10.1.2.3", self.profile, self.qname, "A", logged, self.tier,
            self.category or None, 0, 1.0, "udp", self.action == "cached",
        )  # fmt: skip


def week(seed: int = 468) -> list[Answer]:
    """Answers every few minutes around the clock, dense around each local midnight."""
    rng = random.Random(seed)
    kinds = [kind for kind, weight in KINDS for _ in range(weight)]
    start = datetime.fromisoformat(FIRST_DAY).replace(tzinfo=HCM)
    out = []
    for d in range(DAYS):
        midnight = start + timedelta(days=d)
        times = [midnight + timedelta(minutes=7 * i + rng.random()) for i in range(206)]
        times += [midnight + timedelta(days=1, seconds=-300 + 2 * i) for i in range(300)]
        for when in times:
            if when.date().isoformat() == GAP_DAY:
                continue
            tier, action, category, name = rng.choice(kinds)
            out.append(Answer(when.timestamp(), rng.choice(list(LOGGING)), tier, action,
                              category, name))  # fmt: skip
    out.sort(key=lambda a: a.ts)
    return [a for a in out if a.day >= FIRST_DAY and a.day < _after()]


def _after() -> str:
    return (datetime.fromisoformat(FIRST_DAY) + timedelta(days=DAYS)).date().isoformat()


def write_week(store: QueryStore, answers: list[Answer], server: str = "gw-1") -> None:
    """Count through two workers and the fold, write batches as the writer does, and write
    the raw rows of profiles that log."""
    workers = [Rollup(), Rollup()]
    fold = RollupFold(HCM)
    beat = answers[0].ts
    for i, a in enumerate(answers):
        if a.ts - beat > 3600:  # the server was down in between
            beat = a.ts
        while beat + BEAT < a.ts:
            beat += BEAT
            fold.beat(beat)
        worker = workers[i % 2]
        worker.clock(a.ts, HCM)
        worker.count(a.profile, a.category, a.tier, a.action, a.qname)
        if i % 25 == 24:  # a stats push of each worker, then a writer round
            for w in workers:
                w.clock(a.ts, HCM)
                fold.fold(w.take(), a.ts)
            fold.beat(a.ts)
            store.write_rollups(fold.take(), server)
    last = answers[-1].ts
    for w in workers:
        fold.fold(w.take(), last)
    fold.beat(last)
    store.write_rollups(fold.take(), server)
    raw = [a.event() for a in answers if LOGGING[a.profile]]
    for i in range(0, len(raw), 500):
        store.write(raw[i : i + 500])


def expected_totals(answers: list[Answer]) -> dict[str, int]:
    """The five figures, from the definitions in the README."""
    out = Counter[str]()
    for a in answers:
        mandated = a.tier == "mandated"
        out["queries"] += 1
        out["blocked"] += mandated or (a.action == "blocked" and a.tier != "safesearch")
        out["rewritten"] += a.action == "rewritten"
        out["mandated"] += mandated
        out["safesearch"] += a.action == "rewritten" and a.tier == "safesearch"
    return {k: out[k] for k in ("queries", "blocked", "rewritten", "mandated", "safesearch")}


def expected_days(answers: list[Answer]) -> dict[str, int]:
    return dict(Counter(a.day for a in answers))
