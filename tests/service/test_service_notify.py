"""`safe-resolver serve` under a stand-in for systemd: the real resolver subprocess with
NOTIFY_SOCKET and WATCHDOG_USEC set, as a `Type=notify` unit with `WatchdogSec=` starts it."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.rcode
import pytest
import yaml
from notify_listener import Message, NotifyListener
from support.authority import Authority
from support.resolver_proc import ResolverFactory

BLOCKED, LATER = "blocked.w.example.org", "later.w.example.org"
WATCHDOG_USEC = 200_000  # a ping every 0.1 s


def policy(*deny: str) -> dict[str, Any]:
    return {
        "version": 1,
        "clients": {"default": "kids"},
        "profiles": {"kids": {"age": "unrestricted", "deny": list(deny), "block_mode": "nxdomain"}},
        "lists": {"dir": "lists", "catalogue_sources": False},
    }


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    sock = NotifyListener(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", sock.env_value)  # the subprocess inherits os.environ
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def has(key: str, value: str | None = None) -> Callable[[Message], bool]:
    return lambda m: key in m and (value is None or m[key] == value)


def test_ready_watchdog_reload_status_and_stopping(
    resolver_proc: ResolverFactory, authority: Authority, listener: NotifyListener, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy(BLOCKED)))
    rp = resolver_proc([authority.address], wait=False, policy=str(path), admin={"listen": []})

    ready = listener.wait_for(has("READY", "1"), "READY=1")
    # READY means ready: the policy is loaded and the listener bound, with no polling first.
    assert rp.query(BLOCKED, timeout=5).rcode() == dns.rcode.NXDOMAIN
    assert ready["STATUS"] == "serving policy generation 1"
    before = listener.received[: listener.received.index(ready)]
    assert {"STATUS": "loading the policy"} in before
    assert not any("WATCHDOG" in m for m in before), "pinged before READY"

    for _ in range(3):  # pings flow from the event loop at half WATCHDOG_USEC
        listener.wait_for(has("WATCHDOG", "1"), "WATCHDOG=1")

    # SIGHUP: RELOADING=1 (with the monotonic time systemd 253+ wants), then READY=1 with the
    # new generation, while the pings go on.
    path.write_text(yaml.safe_dump(policy(BLOCKED, LATER)))
    rp.proc.send_signal(signal.SIGHUP)
    reloading = listener.wait_for(has("RELOADING", "1"), "RELOADING=1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    reloaded = listener.wait_for(has("READY", "1"), "READY=1 after the reload", timeout=30)
    assert reloaded["STATUS"] == "serving policy generation 2"
    assert rp.query(LATER).rcode() == dns.rcode.NXDOMAIN

    # A broken policy keeps generation 2 serving, and `systemctl status` says why.
    path.write_text("version: 1\nprofiles: [not, a, mapping]\n")
    rp.proc.send_signal(signal.SIGHUP)
    failed = _after_reload(listener)
    assert failed["STATUS"].startswith("serving policy generation 2; last reload failed: ")
    listener.wait_for(has("WATCHDOG", "1"), "WATCHDOG=1 after the reloads")

    assert rp.terminate() == 0
    listener.drain()
    assert {"STOPPING": "1"} in listener.received


def _after_reload(listener: NotifyListener) -> Message:
    listener.wait_for(has("RELOADING", "1"), "RELOADING=1")
    return listener.wait_for(has("READY", "1"), "READY=1 after the reload", timeout=30)


def test_no_notify_socket_no_notification(
    resolver_proc: ResolverFactory, authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside systemd (NOTIFY_SOCKET unset) the server starts, serves and stops as ever."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    rp = resolver_proc([authority.address], admin={"listen": []})
    assert rp.query("www.example.org").rcode() == dns.rcode.NOERROR
    assert "systemd" not in rp.output()
