"""Structured one-line logs on stdout (journald keeps them; `key=value` greps well)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable


class KeyValueFormatter(logging.Formatter):
    def __init__(self, process: str = "") -> None:
        super().__init__()
        self.process = f" proc={process}" if process else ""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage().replace("\n", " | ")
        line = (
            f"ts={stamp}Z level={record.levelname.lower()}{self.process} logger={record.name} "
            f'msg="{message}"'
        )
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info).replace("\n", " | "))
        return line


def setup(level: str, process: str = "") -> None:
    """Log at `level` to stdout; `process` names a worker process in every line."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(KeyValueFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel("WARNING")


class Throttled:
    """A warning that may repeat without bound (every bad packet from a misconfigured peer):
    logged at most once per `interval` seconds, each line saying how many were left out since.
    The clock is injectable for tests."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> bool:
        """Log now, or count it for the next line; True when it was logged."""
        now, last = self._clock(), self._last
        if last is not None and now - last < self.interval:
            self._suppressed += 1
            return False
        if self._suppressed:
            msg += f" ({self._suppressed} more in the last {now - (last or now):.0f} s)"
        self.logger.warning(msg, *args)
        self._last, self._suppressed = now, 0
        return True
