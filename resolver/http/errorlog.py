"""aiohttp's server logger for our listeners: a malformed request is one counted warning line.

aiohttp answers a request its parser rejects (bad request line, header too long, not HTTP at
all) with 400 and logs the parser's exception with a full traceback at error level: anyone who
can reach the block page can fill the journal. `BadRequestLog` is handed to aiohttp's
`RequestHandler` as its `logger`: parser errors are counted per listener
(`Stats.http_bad_requests`) and logged as one line without traceback, at most once per
`interval` seconds with the number left out since; anything else (a bug in a handler) is
passed on unchanged, traceback included. No client address is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp.http import HttpProcessingError

from resolver.stats import Stats

LOGGER = logging.getLogger("resolver.http")
INTERVAL = 60.0  # seconds between two bad-request lines
MAX_REASON = 120  # characters of the parser's message kept in the line


class BadRequestLog(logging.LoggerAdapter[logging.Logger]):
    def __init__(
        self,
        listener: str,
        stats: Stats,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = LOGGER,
    ) -> None:
        super().__init__(logger, {})
        self.listener = listener
        self.stats = stats
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            self.bad_request(exc)
        else:
            super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"http {self.listener}: {msg}", kwargs

    def bad_request(self, exc: HttpProcessingError) -> None:
        self.stats.http_bad_requests[self.listener] += 1
        now, last = self._clock(), self._last
        if last is not None and now - last < self.interval:
            self._suppressed += 1
            return
        reason = " ".join(str(exc.message or type(exc).__name__).split())[:MAX_REASON]
        more = ""
        if self._suppressed and last is not None:
            more = f" ({self._suppressed} more in the last {now - last:.0f} s)"
        self.logger.warning(
            "http %s: bad request answered 400: %s%s", self.listener, ascii(reason), more
        )
        self._last, self._suppressed = now, 0
