"""A real NOTIFY_SOCKET for tests: a bound AF_UNIX datagram socket, as systemd's own is."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

Message = dict[str, str]


class NotifyListener:
    """Receives sd_notify datagrams at a path or an abstract (`@name`) address."""

    def __init__(self, address: Path | str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if isinstance(address, Path):
            self.sock.bind(str(address))
            self.env_value = str(address)
        else:  # abstract namespace: "@name" in the environment, a leading NUL for the kernel
            self.sock.bind("\0" + address)
            self.env_value = "@" + address
        self.received: list[Message] = []

    def receive(self, timeout: float) -> Message | None:
        """The next datagram as {key: value}, or None after `timeout` seconds without one."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.received.append(message)
        return message

    def drain(self) -> list[Message]:
        """Every datagram already queued, without waiting."""
        drained = []
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(4096)
                drained.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        except BlockingIOError:
            pass
        self.received.extend(drained)
        return drained

    def wait_for(
        self, check: Callable[[Message], bool], what: str, timeout: float = 15.0
    ) -> Message:
        """The first datagram that passes `check` (others are kept in `received`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and check(message):
                return message
        raise AssertionError(f"no {what} within {timeout} s; received: {self.received}")

    def close(self) -> None:
        self.sock.close()
