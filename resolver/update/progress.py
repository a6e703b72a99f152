"""How `lists update` reports: a live line per source on a terminal, plain lines otherwise.

On a TTY (and without --quiet) the current source's line is redrawn as bytes arrive; the
final state of every source is always printed as one line, which is what a systemd journal
or a cron mail should show.
"""

from __future__ import annotations

import time
from typing import TextIO

from resolver.lists.catalogue import Source
from resolver.update.runner import Outcome

REDRAW_INTERVAL = 0.1  # seconds between redraws of the live line


class LineProgress:
    """One summary line per source; with `live`, a redrawn progress line while fetching."""

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self.stream = stream
        self.live = live
        self._label = ""
        self._last_draw = 0.0

    def start(self, source: Source, index: int, total: int) -> None:
        self._label = f"[{index}/{total}] {source.category}/{source.id}"
        if self.live:
            self._draw(f"{self._label}: {'reading' if source.url is None else 'fetching'} ...")

    def advance(self, size: int) -> None:
        now = time.monotonic()
        if self.live and now - self._last_draw >= REDRAW_INTERVAL:
            self._last_draw = now
            self._draw(f"{self._label}: {_size(size)}")

    def done(self, outcome: Outcome) -> None:
        mark = "ok  " if outcome.ok else "FAIL"
        parts = [f"{mark} {self._label}: {outcome.status}", f"{outcome.entries} rules"]
        if outcome.size:
            parts.append(_size(outcome.size))
        if outcome.message:
            parts.append(outcome.message)
        line = ", ".join(parts)
        if self.live:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()


def _size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1000:
        return f"{size / 1000:.1f} kB"
    return f"{size} B"
