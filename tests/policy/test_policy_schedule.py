"""Schedule edge cases: midnight, overnight, time zones (with and without DST), date exceptions."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from resolver.policy.schedule import Schedule, overlapping, parse_window

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
PARIS = ZoneInfo("Europe/Paris")


def make(windows, tz=HCM, except_=(), extra=()) -> Schedule:
    parsed = tuple(parse_window(w) for w in windows)
    assert all(not isinstance(w, str) for w in parsed)
    return Schedule("s", tz, parsed, frozenset(except_), frozenset(extra), frozenset(), None, None,
                    False)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("07:00-07:00", "same time"),
        ("mon-fri 07:00-25:00", "00:00 to 24:00"),
        ("funday 07:00-08:00", "unknown day"),
        ("7am-8am", "expected [DAYS] HH:MM-HH:MM"),
        ("24:00-01:00", "00:00 to 24:00"),
    ],
)
def test_bad_windows(text: str, message: str) -> None:
    result = parse_window(text)
    assert isinstance(result, str) and message in result


def local(text: str, tz=HCM) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def test_midnight_boundaries() -> None:
    s = make(["00:00-24:00"])
    assert s.active_local(local("2026-03-02T00:00")) and s.active_local(local("2026-03-02T23:59"))
    late = make(["mon 20:00-24:00"])
    assert late.active_local(local("2026-03-02T23:59"))  # Monday
    assert not late.active_local(local("2026-03-03T00:00"))


def test_overnight_belongs_to_start_day() -> None:
    s = make(["fri 22:00-06:00"])
    assert s.active_local(local("2026-03-06T22:00"))  # Friday night
    assert s.active_local(local("2026-03-07T05:59"))  # Saturday morning
    assert not s.active_local(local("2026-03-07T06:00"))
    assert not s.active_local(local("2026-03-06T05:00"))  # Friday morning: Thursday had none
    sunday = make(["sun 23:00-01:00"])
    assert sunday.active_local(local("2026-03-09T00:30"))  # wraps into Monday


def test_holidays_and_extra_days() -> None:
    s = make(["mon-fri 07:00-11:30", "22:00-06:00"], except_=[date(2026, 9, 2)],
             extra=[date(2026, 6, 13)])  # fmt: skip
    assert not s.active_local(local("2026-09-02T08:00"))  # National Day
    assert s.active_local(local("2026-09-02T05:00"))  # tail of the night that began Sept 1
    assert not s.active_local(local("2026-09-03T05:00"))  # that night began on the holiday
    assert not s.active_local(local("2026-09-02T23:00"))
    assert s.active_local(local("2026-06-13T08:00"))  # Saturday exam day
    assert not s.active_local(local("2026-06-20T08:00"))


def test_utc_now_is_converted_to_the_school_zone() -> None:
    s = make(["mon-fri 07:00-11:30"])
    utc_0030 = datetime.fromisoformat("2026-03-02T00:30:00+00:00")  # 07:30 in Ho Chi Minh City
    assert s.active(utc_0030.timestamp())
    assert not s.active(datetime.fromisoformat("2026-03-01T23:59:00+00:00").timestamp())


def test_dst_zone() -> None:
    s = make(["sun 02:00-04:00"], tz=PARIS)
    # 2026-03-29: clocks jump from 02:00 to 03:00 in Paris. 01:30 UTC = 03:30 CEST: active.
    assert s.active(datetime.fromisoformat("2026-03-29T01:30:00+00:00").timestamp())
    # In winter the same UTC instant is 02:30 CET on another Sunday: active; 03:30 UTC is not.
    assert s.active(datetime.fromisoformat("2026-03-22T01:30:00+00:00").timestamp())
    assert not s.active(datetime.fromisoformat("2026-03-22T03:30:00+00:00").timestamp())
    # 2026-10-25: 02:00-03:00 happens twice; both are inside the window.
    assert s.active(datetime.fromisoformat("2026-10-25T00:30:00+00:00").timestamp())
    assert s.active(datetime.fromisoformat("2026-10-25T01:30:00+00:00").timestamp())


def test_overlap_detection() -> None:
    windows = tuple(parse_window(w) for w in ("mon-fri 07:00-11:30", "wed 11:00-12:00",
                                              "sat 08:00-09:00", "sun 23:00-01:00",
                                              "mon 00:30-02:00"))  # fmt: skip
    pairs = {(a.text, b.text) for a, b in overlapping(windows)}
    assert pairs == {("mon-fri 07:00-11:30", "wed 11:00-12:00"),
                     ("sun 23:00-01:00", "mon 00:30-02:00")}  # fmt: skip
