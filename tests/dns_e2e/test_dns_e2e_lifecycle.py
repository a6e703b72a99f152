"""Process life: start-up log, config errors, CLI overrides, access control, graceful SIGTERM."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import dns.rcode
from support.authority import Authority, Fault
from support.resolver_proc import (
    REPO,
    ResolverFactory,
    free_port,
    serve_command,
    unique_name,
    wait_until_answering,
)


def test_startup_log_names_listener(resolver_proc: ResolverFactory, authority: Authority) -> None:
    rp = resolver_proc([authority.address])
    lines = [line for line in rp.output().splitlines() if "listening" in line]
    assert lines and any(str(rp.port) in line for line in lines)


def test_acl_refuses_clients_outside_allow(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], access={"allow": ["10.0.0.0/8"]})
    name = unique_name("acl")
    assert rp.query(name, "A").rcode() == dns.rcode.REFUSED
    assert rp.query(name, "A", tcp=True).rcode() == dns.rcode.REFUSED
    assert authority.count(name) == 0


def test_cli_flags_override_config(resolver_proc: ResolverFactory, authority: Authority) -> None:
    port = free_port()
    rp = resolver_proc(
        ["127.0.0.1:9"],
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        authority.address,
        wait=False,
    )
    rp.port = port
    wait_until_answering(rp)
    resp = rp.query(unique_name("cli"), "A")
    assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.200"]


def test_bad_config_refused_with_location(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "bad.yaml"
    config.write_text(
        f'listen: ["127.0.0.1:{port}"]\nupstreams: ["127.0.0.1:53"]\ncache:\n  sise: 10\n'
    )
    proc = _run(config)
    assert proc.returncode != 0
    assert re.search(rf"{re.escape(str(config))}:4:\d+: .*sise", proc.stderr), proc.stderr


def test_bad_value_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text('listen: ["127.0.0.1:99999"]\n')
    proc = _run(config)
    assert proc.returncode != 0
    assert re.search(rf"{re.escape(str(config))}:1:\d+: ", proc.stderr), proc.stderr


def _run(config: Path) -> subprocess.CompletedProcess:
    cmd = serve_command(config)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=15)


def test_sigterm_finishes_in_flight_query(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], upstream={"timeout_ms": 3000, "attempts": 1})
    name = unique_name("inflight")
    authority.set_fault(Fault(delay_ms=1000), name)
    result: dict[str, object] = {}

    def ask() -> None:
        try:
            result["resp"] = rp.query(name, "A", timeout=5)
        except Exception as exc:
            result["error"] = exc

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 3
    while authority.count(name) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert authority.count(name) == 1
    assert rp.terminate() == 0, rp.output()
    asker.join(6)
    assert "error" not in result, result
    assert [rd.to_text() for rd in result["resp"].answer[0]] == ["192.0.2.200"]
