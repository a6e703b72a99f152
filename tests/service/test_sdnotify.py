"""resolver.sdnotify against a real datagram socket: path and abstract addresses, the fields,
the environment systemd sets, and a watchdog that goes quiet when its event loop is stuck."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop
from notify_listener import NotifyListener

from resolver.sdnotify import SystemdNotifier


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyListener]:
    if request.param == "path":
        sock = NotifyListener(tmp_path / "notify")
    else:
        sock = NotifyListener(f"safe-resolver-test/{secrets.token_hex(8)}")
    yield sock
    sock.close()


def test_ready_status_reloading_stopping_arrive_as_datagrams(listener: NotifyListener) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": listener.env_value})
    assert notifier.enabled
    notifier.status("loading the policy")
    notifier.ready("serving policy\ngeneration 1")
    notifier.reloading()
    notifier.stopping()
    assert listener.receive(5) == {"STATUS": "loading the policy"}
    # STATUS is one line: a newline inside would start a bogus field of its own.
    assert listener.receive(5) == {"READY": "1", "STATUS": "serving policy generation 1"}
    reloading = listener.receive(5)
    assert reloading is not None and reloading["RELOADING"] == "1"
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 < now - int(reloading["MONOTONIC_USEC"]) < 60_000_000
    assert listener.receive(5) == {"STOPPING": "1"}
    notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
    notifier.ready("x")
    notifier.stopping()
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_comes_from_the_environment(
    environ: dict[str, str], seconds: float | None
) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "/run/x", **environ})
    assert notifier.watchdog_seconds == seconds


def test_an_unsupported_address_disables_notification(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "not notifying systemd" in caplog.text


def test_a_missing_socket_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING, "resolver.sdnotify"):
        assert notifier.send("WATCHDOG=1") is False
        assert notifier.send("WATCHDOG=1") is False
    assert len(caplog.records) == 1 and "not sent" in caplog.text
    notifier.close()


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


@pytest.mark.parametrize("make_loop", LOOPS.values(), ids=LOOPS.keys())
def test_a_stuck_event_loop_stops_the_watchdog_pings(
    tmp_path: Path, make_loop: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """The pings come from the loop itself: blocked in a callback, it sends none, so systemd's
    WatchdogSec= restarts it; unblocked, the pings resume."""
    listener = NotifyListener(tmp_path / "notify")
    period = 0.05  # WatchdogSec=100ms: a ping every 50 ms
    notifier = SystemdNotifier(listener.env_value, watchdog_seconds=2 * period)
    loop = make_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    blocked, release = threading.Event(), threading.Event()

    def stuck() -> None:  # what a bug looks like from systemd's side: the loop never returns
        blocked.set()
        release.wait(30)

    try:
        asyncio.run_coroutine_threadsafe(_start(notifier), loop).result(5)
        for _ in range(3):
            listener.wait_for(lambda m: m == {"WATCHDOG": "1"}, "a watchdog ping", timeout=5)
        loop.call_soon_threadsafe(stuck)
        assert blocked.wait(5)
        listener.drain()  # pings sent before the loop got stuck (delivery is synchronous)
        assert listener.receive(timeout=20 * period) is None, "a stuck loop still pinged"
        release.set()
        listener.wait_for(lambda m: m == {"WATCHDOG": "1"}, "pings after the loop resumed")
    finally:
        release.set()
        loop.call_soon_threadsafe(notifier.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        listener.close()


async def _start(notifier: SystemdNotifier) -> None:
    assert notifier.start_watchdog() is not None
    assert notifier.start_watchdog() is None  # one pinger per notifier
