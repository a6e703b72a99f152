"""The systemd notification protocol (`sd_notify(3)`), for `Type=notify` units: no dependency.

Why here and not libsystemd: the protocol is one datagram of `KEY=VALUE` lines to the socket
named in $NOTIFY_SOCKET, and a binding would be a compiled dependency for that. Every call is a
no-op when the variable is unset (a terminal, the tests, another service manager).

Watchdog: systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID) when the unit has `WatchdogSec=`, and
restarts the service when no WATCHDOG=1 arrives within it. The pings come from a task on the
server's own event loop, at half the interval, so a loop stuck in a callback stops them and gets
the service restarted, while slow work off the loop (a reload's compile) does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("resolver.sdnotify")


class SystemdNotifier:
    """Sends state changes to the service manager; every method is a no-op without a socket."""

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self.address = _socket_address(address) if address else None
        self.watchdog_seconds = watchdog_seconds
        self._socket: socket.socket | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        """The notifier systemd asked for: $NOTIFY_SOCKET, and $WATCHDOG_USEC when
        $WATCHDOG_PID is unset or names this process (a child inheriting it must not ping)."""
        watchdog = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1e6
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        """Start-up (or a reload) finished: systemd considers the unit started (or reloaded)."""
        self.send("READY=1", _status(status))

    def status(self, status: str) -> None:
        """A one-line state shown by `systemctl status`."""
        self.send(_status(status))

    def reloading(self) -> None:
        """A reload began; `ready()` ends it (the unit shows "reloading" in between)."""
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={now}")

    def stopping(self) -> None:
        """Shutdown began (SIGTERM): the unit shows "deactivating" while queries drain."""
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def start_watchdog(self) -> asyncio.Task[None] | None:
        """Ping from the running loop at half the watchdog interval; None when there is no
        watchdog. Call from the event loop the server answers on."""
        if not self.enabled or self.watchdog_seconds is None or self._watchdog is not None:
            return None
        self._watchdog = asyncio.get_running_loop().create_task(
            self._ping_forever(self.watchdog_seconds / 2), name="systemd-watchdog"
        )
        return self._watchdog

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _ping_forever(self, period: float) -> None:
        while True:
            self.watchdog()
            await asyncio.sleep(period)

    def send(self, *fields: str) -> bool:
        """One datagram of newline-separated fields; False when not sent. Never raises: the
        service manager being slow or gone must not take the resolver down."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failing:  # once, not at every watchdog ping
                log.warning("systemd notification %s not sent: %s", fields[0], exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self) -> None:
        self.stop_watchdog()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None


def _socket_address(value: str) -> str | None:
    """A path, or `@name` for the abstract namespace (a leading NUL byte for the kernel).
    Other forms (systemd 254's `vsock:`) are not supported: warn and stay silent."""
    if value.startswith("/"):
        return value
    if value.startswith("@"):
        return "\0" + value[1:]
    log.warning("NOTIFY_SOCKET=%r is not a path or @abstract name: not notifying systemd", value)
    return None


def _status(text: str) -> str:
    """STATUS= is one line: a newline would start a field of its own."""
    return "STATUS=" + " ".join(text.split())
