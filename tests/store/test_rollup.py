"""The roll-up counters: a worker's counts, cut at local midnight, taken once each; the
supervisor's fold across workers, registrable domains, a bounded top, a failed write put back."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from resolver.policy.decision import Tier
from resolver.rollup import (
    Batch,
    Registrable,
    Rollup,
    RollupFold,
    figures,
    local_day,
    prune_top,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def at(text: str, zone: ZoneInfo = HCM) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_local_day_is_the_policy_zones_calendar_day() -> None:
    # 23:30 UTC on 1 March is 06:30 on 2 March in Ho Chi Minh City (UTC+7)
    ts = datetime.fromisoformat("2026-03-01T23:30:00+00:00").timestamp()
    day, ends = local_day(ts, HCM)
    assert day == "2026-03-02" and ends == at("2026-03-03T00:00")
    assert local_day(ts, ZoneInfo("UTC"))[0] == "2026-03-01"


def test_counts_are_cut_at_local_midnight_and_taken_once() -> None:
    r = Rollup()
    r.clock(at("2026-03-01T23:59:59"), HCM)
    r.count("students", "adult", Tier.CATEGORY, "blocked", "www.xvideos.com")
    r.count("students", "", Tier.DEFAULT, "allowed", "ok.example", 5)
    r.clock(at("2026-03-01T23:59:59.5"), HCM)  # same day: nothing moves
    r.clock(at("2026-03-02T00:00:00.2"), HCM)
    r.count("students", "adult", Tier.CATEGORY, "blocked", "www.xvideos.com")
    first = r.take()
    assert set(first) == {"2026-03-01", "2026-03-02"}
    assert first["2026-03-01"] == {
        ("students", "adult", "category", "blocked", "www.xvideos.com"): 1,  # a block: named
        ("students", "", "default", "allowed"): 5,
    }
    assert r.take() == {}  # each count travels once
    r.count("staff", "", "default", "cached", "ok.example")
    assert r.take() == {"2026-03-02": {("staff", "", "default", "cached"): 1}}


def test_a_new_time_zone_moves_the_day_at_once() -> None:
    r = Rollup()
    ts = at("2026-03-01T20:00", ZoneInfo("UTC"))  # 03:00 on 2 March in Ho Chi Minh City
    r.clock(ts, ZoneInfo("UTC"))
    assert r.day == "2026-03-01"
    r.clock(ts, HCM)
    assert r.day == "2026-03-02"


def test_only_blocks_and_mandated_answers_carry_their_name() -> None:
    r = Rollup()
    r.clock(at("2026-03-01T10:00"), HCM)
    r.count("p", "", "safesearch", "blocked", "www.google.com")  # NODATA for an MX: no block
    r.count("p", "", "default", "allowed", "ok.example")
    r.count("p", "mandated", "mandated", "rewritten", "banned.example")  # RPZ rewrite
    r.count("p", "mandated", "mandated", "servfail", "banned.example")  # rewrite target failed
    r.count("p", "adult", "category", "blocked", "adult.example", 3)
    named = Counter[str]()
    for key, n in r.take()["2026-03-01"].items():
        if len(key) == 5:
            named[key[4]] += n
    assert named == {"banned.example": 2, "adult.example": 3}


def test_figures_count_every_mandated_answer_as_mandated_and_blocked() -> None:
    assert figures("mandated", "blocked") == (1, 1, 0, 1, 0)
    assert figures("mandated", "rewritten") == (1, 1, 1, 1, 0)
    assert figures("mandated", "servfail") == (1, 1, 0, 1, 0)
    assert figures("safesearch", "rewritten") == (1, 0, 1, 0, 1)
    assert figures("safesearch", "blocked") == (1, 0, 0, 0, 0)
    assert figures("category", "blocked") == (1, 1, 0, 0, 0)
    assert figures("", "refused") == (1, 0, 0, 0, 0)


def test_a_worker_keeps_few_names_and_every_total_exact() -> None:
    r = Rollup(limit=8)
    r.clock(at("2026-03-01T10:00"), HCM)
    r.count("p", "adult", "category", "blocked", "heavy.example", 100)
    for i in range(50):
        r.count("p", "adult", "category", "blocked", f"n{i}.example")
    counts = r.take()["2026-03-01"]
    assert (
        len(counts) <= 8 and counts[("p", "adult", "category", "blocked", "heavy.example")] == 100
    )
    assert sum(counts.values()) == 150  # the names dropped still count
    fold = RollupFold(HCM)
    fold.fold({"2026-03-01": counts}, at("2026-03-01T10:00"))
    assert fold.take().counts == {("2026-03-01", "p", "adult", "category", "blocked"): 150}


def test_prune_top_breaks_ties_by_name() -> None:
    table = {"b": 2, "a": 2, "c": 5, "d": 1}
    prune_top(table, 2)
    assert table == {"c": 5, "a": 2}


def test_registrable_domains_come_from_the_public_suffix_list() -> None:
    reg = Registrable()
    assert reg("www.xvideos.com") == "xvideos.com"
    assert reg("a.b.edu.vn") == "b.edu.vn"
    assert reg("deep.sub.example.co.uk") == "example.co.uk"
    assert reg("com") == "com"  # a suffix itself stands for itself
    assert reg("=1+2.example") == "=1+2.example"


def test_the_fold_adds_workers_maps_domains_and_takes_everything_once() -> None:
    fold = RollupFold(HCM)
    now = at("2026-03-01T10:00")
    workers = [Rollup(), Rollup()]
    for r in workers:
        r.clock(now, HCM)
        r.count("p", "adult", Tier.CATEGORY, "blocked", "www.xvideos.com")
        r.count("p", "adult", Tier.CATEGORY, "blocked", "cdn.xvideos.com")
        r.count("p", "", Tier.DEFAULT, "allowed", "ok.example", 2)
        fold.fold(r.take(), now)
    fold.note_request("content_report", now)
    fold.beat(now)
    fold.beat(now + 5)
    batch = fold.take()
    assert batch.counts == {
        ("2026-03-01", "p", "adult", "category", "blocked"): 4,
        ("2026-03-01", "p", "", "default", "allowed"): 4,
    }
    assert all(type(part) is str for key in batch.counts for part in key)  # no enum leaks
    assert batch.top == {("2026-03-01", "xvideos.com"): 4}
    assert batch.requests == {("2026-03-01", "content_report"): 1}
    mark = batch.days["2026-03-01"]
    assert (mark.first_seen, mark.last_seen, mark.up_seconds, mark.tz) == (
        now, now + 5, 5.0, "Asia/Ho_Chi_Minh",
    )  # fmt: skip
    assert not fold.take()


def test_counts_from_before_the_first_clock_go_to_the_folds_today() -> None:
    r = Rollup()
    r.count("p", "", "default", "allowed", "ok.example")
    fold = RollupFold(HCM)
    fold.fold(r.take(), at("2026-03-01T10:00"))
    assert fold.take().counts == {("2026-03-01", "p", "", "default", "allowed"): 1}


def test_a_batch_that_could_not_be_written_is_put_back_whole() -> None:
    fold = RollupFold(HCM)
    now = at("2026-03-01T10:00")
    r = Rollup()
    r.clock(now, HCM)
    r.count("p", "adult", "category", "blocked", "a.example", 2)
    fold.fold(r.take(), now)
    fold.beat(now)
    failed = fold.take()
    r.count("p", "adult", "category", "blocked", "a.example", 3)
    fold.fold(r.take(), now + 5)
    fold.beat(now + 5)
    fold.restore(failed)
    batch = fold.take()
    assert batch.counts == {("2026-03-01", "p", "adult", "category", "blocked"): 5}
    assert batch.top == {("2026-03-01", "a.example"): 5}
    assert batch.days["2026-03-01"].first_seen == now
    assert batch.days["2026-03-01"].last_seen == now + 5


def test_a_long_silence_of_the_writer_is_not_time_up() -> None:
    fold = RollupFold(HCM)
    now = at("2026-03-01T10:00")
    fold.beat(now)
    fold.beat(now + 3600)  # suspended, or the machine was off
    fold.beat(now + 3605)
    assert fold.take().days["2026-03-01"].up_seconds == 5.0
    assert not Batch()
