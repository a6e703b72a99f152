"""Structured one-line logs on stdout (journald keeps them; `key=value` greps well)."""

from __future__ import annotations

import logging
import sys
import time


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage().replace("\n", " | ")
        line = f'ts={stamp}Z level={record.levelname.lower()} logger={record.name} msg="{message}"'
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info).replace("\n", " | "))
        return line


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel("WARNING")
