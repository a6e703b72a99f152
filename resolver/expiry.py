"""The clock overlay entries expire by, and the timer that reloads when the next one ends.

An approval "for 1 hour" or a teacher's 45-minute pause is an overlay entry with an `until`
(resolver/store/overlay.py). The build leaves out entries that have ended, so what is left is a
reload at the right moment: each build says when its next entry ends, and `ExpiryTimer` calls
back then. It wakes at least every `RECHECK` seconds to look at the wall clock again, so a
clock that jumps (NTP after a power cut, a suspended virtual machine) delays an expiry by at
most that much, never for the length of the jump.

Tests move the clock: `SAFE_RESOLVER_CLOCK_OFFSET_FILE` names a file holding seconds to add to
the wall clock (read on each call; a missing or unreadable file adds nothing). It moves only
this clock: schedules, the query log and sessions keep the real time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

log = logging.getLogger(__name__)
CLOCK_OFFSET_ENV = "SAFE_RESOLVER_CLOCK_OFFSET_FILE"
RECHECK = 300.0  # seconds: the longest the timer sleeps without looking at the clock again

Clock = Callable[[], float]


def wall_clock() -> Clock:
    """`time.time`, or with $SAFE_RESOLVER_CLOCK_OFFSET_FILE set, the time it says (tests)."""
    name = os.environ.get(CLOCK_OFFSET_ENV)
    if not name:
        return time.time
    log.warning("overlay expiry runs on a moved clock (%s=%s): for tests only", CLOCK_OFFSET_ENV,
                name)  # fmt: skip
    path = Path(name)

    def moved() -> float:
        try:
            return time.time() + float(path.read_text().strip() or 0)
        except (OSError, ValueError):
            return time.time()

    return moved


class ExpiryTimer:
    """Calls `due()` once the clock reaches the time it was armed for (re-armed after each
    build with that build's next expiry; `None` disarms)."""

    def __init__(self, clock: Clock, due: Callable[[], Coroutine[object, object, object]]) -> None:
        self.clock = clock
        self._due = due
        self.at: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None

    def arm(self, at: float | None) -> None:
        self.at = at
        self._wake()

    def cancel(self) -> None:
        self.at = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _wake(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.at is None:
            return
        left = self.at - self.clock()
        loop = asyncio.get_running_loop()
        if left > 0:
            self._handle = loop.call_later(min(left, RECHECK), self._wake)
        elif self._task is None or self._task.done():
            self.at = None  # the reload that `due` starts arms the next one
            self._task = loop.create_task(self._due())
