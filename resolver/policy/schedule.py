"""Weekly time windows in a school's time zone, with holidays and extra days.

A window is written `[DAYS] HH:MM-HH:MM`: `mon-fri 07:00-11:30`, `sat,sun 08:00-12:00`,
`22:00-06:00` (every day, overnight). An overnight window belongs to the day it starts on: `fri
22:00-06:00` runs from Friday 22:00 to Saturday 06:00. `except` dates switch off the windows that
start on them (holidays); `extra` dates switch on every window's hours on that date whatever its
weekday (a Saturday exam day). State is evaluated at minute resolution, which lets `decide()` cache
it per minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_WEEK = 7 * 1440
_WINDOW = re.compile(
    r"^\s*(?:(?P<days>[a-z, \-]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class Window:
    text: str
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int  # minutes after midnight, 1..1440; end <= start means overnight

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def week_bits(self) -> int:
        """The minutes of a week the window covers (before date exceptions), as a bitset."""
        bits = 0
        length = (self.end - self.start) % 1440 or 1440
        run = (1 << length) - 1
        for day in self.days:
            first = day * 1440 + self.start
            bits |= run << first
        overflow = bits >> MINUTES_PER_WEEK  # Sunday-night windows wrap to Monday morning
        return (bits | overflow) & ((1 << MINUTES_PER_WEEK) - 1)


def _minutes(text: str) -> int | None:
    hours, minutes = (int(x) for x in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _days(text: str | None) -> frozenset[int] | str:
    if not text or text.strip() in ("daily", "every-day", "everyday"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if part in ("weekdays",):
            days.update(range(5))
            continue
        if part in ("weekend", "weekends"):
            days.update((5, 6))
            continue
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            return f"unknown day {part!r} (use mon, tue, wed, thu, fri, sat, sun, ranges mon-fri)"
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def parse_window(text: str) -> Window | str:
    """A `Window`, or an error message an admin can act on."""
    match = _WINDOW.match(text.lower())
    if not match:
        return f"bad time window {text!r}: expected [DAYS] HH:MM-HH:MM, e.g. 'mon-fri 07:00-11:30'"
    days = _days(match["days"])
    if isinstance(days, str):
        return f"bad time window {text!r}: {days}"
    start, end = _minutes(match["start"]), _minutes(match["end"])
    if start is None or end is None or start == 1440:
        return f"bad time window {text!r}: times run from 00:00 to 24:00"
    if start == end:
        return f"bad time window {text!r}: starts and ends at the same time"
    if end == 0:
        end = 1440
    return Window(text, days, start, end)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A named set of windows and what the schedule does while one of them is active."""

    name: str
    tz: ZoneInfo
    windows: tuple[Window, ...]
    except_dates: frozenset[date]
    extra_dates: frozenset[date]
    block: frozenset[str]  # extra categories blocked while active
    safe_search: str | None  # raise safe search to this level while active
    youtube: str | None
    internet_off: bool  # every name not on the profile's allow list is refused
    block_services: frozenset[str] = frozenset()  # services blocked while active

    def _day_on(self, window: Window, day: date) -> bool:
        if day in self.except_dates:
            return False
        return day.weekday() in window.days or day in self.extra_dates

    def _runs(self, local: datetime) -> Iterator[tuple[date, int]]:
        """For each window active at `local` (wall-clock time in this schedule's zone), the day
        and minute its current run ends (minute 1440: the next midnight)."""
        day = local.date()
        minute = local.hour * 60 + local.minute
        for w in self.windows:
            if not w.overnight:
                if w.start <= minute < w.end and self._day_on(w, day):
                    yield day, w.end
            elif minute >= w.start:
                if self._day_on(w, day):
                    yield day + timedelta(days=1), w.end
            elif minute < w.end and self._day_on(w, day - timedelta(days=1)):
                yield day, w.end

    def active_local(self, local: datetime) -> bool:
        """Is a window active at `local` (a wall-clock time in this schedule's zone)?"""
        return next(self._runs(local), None) is not None

    def active(self, unix_time: float) -> bool:
        return self.active_local(datetime.fromtimestamp(unix_time, self.tz))

    def run_ends(self, unix_time: float) -> list[float]:
        """When each window active at `unix_time` stops (Unix times): where to look next for
        the moment a block of this schedule lifts."""
        out = []
        for day, minute in self._runs(datetime.fromtimestamp(unix_time, self.tz)):
            end = day + timedelta(days=minute // 1440)
            at = time(minute % 1440 // 60, minute % 60)
            out.append(datetime.combine(end, at, self.tz).timestamp())
        return out


def overlapping(windows: tuple[Window, ...]) -> list[tuple[Window, Window]]:
    """Pairs of windows that cover a common minute of the week (worth a warning, not an error)."""
    bits = [w.week_bits() for w in windows]
    return [
        (windows[i], windows[j])
        for i in range(len(windows))
        for j in range(i + 1, len(windows))
        if bits[i] & bits[j]
    ]
