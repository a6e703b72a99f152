"""The real resolver as a subprocess for end-to-end tests: config, start, readiness, stop."""

from __future__ import annotations

import itertools
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # generous: a loaded machine starts slowly, it is not broken
STOP_TIMEOUT = 5.0

# Short timeouts keep the failure cases (dead upstreams, spoofs) fast.
BASE_CONFIG: dict[str, Any] = {
    "listen": [],
    "upstreams": [],
    "upstream": {"timeout_ms": 400, "attempts": 2},
    "cache": {
        "size": 10000,
        "min_ttl": 0,
        "max_ttl": 86400,
        "negative_max_ttl": 3600,
        "servfail_ttl": 5,
        "serve_stale": False,
    },
    "access": {"allow": ["127.0.0.0/8", "::1/128"]},
    "tcp": {"idle_timeout": 10, "max_connections": 1000, "max_queued_bytes": 65536},
    "policy": None,
    "admin": {"listen": []},  # the admin API's default 127.0.0.1:8053 would clash between tests
    "log_level": "warning",
}

_names = itertools.count()


def unique_name(tag: str = "q", zone: str = "w.example.org") -> str:
    """A name nobody asked before, so the resolver cache cannot already hold it."""
    return f"{tag}-{next(_names)}-{secrets.token_hex(3)}.{zone}"


_PORTS_FROM, _PORTS_PER_PROCESS = 10_000, 4_000  # below the kernel's ephemeral ports
_next_port: list[int] = []


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, released before use. Each test process
    (pytest-xdist worker) takes ports from a range of its own below the ephemeral range, in
    turn, so two processes never hand out the same port and no client socket of the kernel's
    choosing lands on it meanwhile."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    low = _PORTS_FROM + worker * _PORTS_PER_PROCESS
    if not _next_port:
        _next_port.append(low + random.randrange(_PORTS_PER_PROCESS))
    for _ in range(_PORTS_PER_PROCESS):
        port = low + (_next_port[0] - low) % _PORTS_PER_PROCESS
        _next_port[0] = port + 1
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        ):
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free UDP+TCP port")


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: sections given in `over` are updated key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class ResolverProc:
    """A running `safe-resolver serve` and the ways tests talk to it."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]
    config: Path
    log: Path
    stopped: bool = field(default=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def query(
        self,
        name: str,
        rdtype: str = "A",
        *,
        tcp: bool = False,
        timeout: float = 3.0,
        **make_query: Any,
    ) -> dns.message.Message:
        """Ask with dnspython; a truncated (TC=1) UDP reply is returned as it came."""
        q = dns.message.make_query(name, rdtype, **make_query)
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, timeout=timeout)
        return dns.query.udp(q, self.host, port=self.port, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait: the exit code (None -> killed after `timeout`, reported as -9)."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


def serve_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "resolver", "serve", "--config", str(config), *extra]


def wait_until_answering(rp: ResolverProc, timeout: float = START_TIMEOUT) -> None:
    """Poll with real queries until any DNS reply comes back (REFUSED counts: it is alive)."""
    deadline = time.monotonic() + timeout
    probe = dns.message.make_query("example.org", "A")
    while time.monotonic() < deadline:
        if rp.proc.poll() is not None:
            pytest.fail(f"resolver exited with {rp.proc.returncode} on start:\n{rp.output()}")
        try:
            dns.query.udp(probe, rp.host, port=rp.port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
    rp.terminate()
    pytest.fail(f"resolver did not answer within {timeout} s:\n{rp.output()}")


def datapath_env(datapath: str) -> dict[str, str]:
    """Environment for a resolver serving UDP with `datapath`: "compiled" (the C fast path
    where it is built and SAFE_RESOLVER_PURE is not set), "pure" (the pure-Python twin), or
    "default" (whatever this environment gives)."""
    return {"SAFE_RESOLVER_PURE": "1"} if datapath == "pure" else {}


def datapath_params() -> list[Any]:
    """Both UDP paths, for suites that must pass on each (the compiled one skips where it is
    not built, or where SAFE_RESOLVER_PURE=1 makes every run pure anyway)."""
    from resolver.dns.fastpath import use_compiled

    skip = pytest.mark.skipif(not use_compiled(), reason="compiled fast path not in use here")
    return [pytest.param("compiled", marks=skip), "pure"]


@pytest.fixture(scope="module", params=datapath_params(), name="datapath")
def both_datapaths(request: pytest.FixtureRequest) -> str:
    """`datapath` for a suite that must pass on both UDP paths: imported into its conftest or
    test module, it overrides the session default of tests/conftest.py."""
    return str(request.param)


class ResolverFactory:
    """Starts resolvers with a config built from BASE_CONFIG plus overrides; stops them all.
    `env` adds to the environment the resolvers start in."""

    def __init__(self, directory: Path, env: dict[str, str] | None = None):
        self.directory = directory
        self.env = env or {}
        self.running: list[ResolverProc] = []

    def __call__(
        self,
        upstreams: list[str],
        *extra_args: str,
        wait: bool = True,
        port: int | None = None,
        **overrides: Any,
    ) -> ResolverProc:
        port = port or free_port()
        n = len(self.running)
        config = merge(BASE_CONFIG, {"listen": [f"127.0.0.1:{port}"], "upstreams": upstreams})
        config = merge(config, overrides)
        path = self.directory / f"resolver-{n}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        log = self.directory / f"resolver-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                serve_command(path, *extra_args),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        rp = ResolverProc("127.0.0.1", port, proc, path, log)
        self.running.append(rp)
        if wait:
            wait_until_answering(rp)
        return rp

    def stop_all(self) -> list[str]:
        """Stop every resolver; the problems found (graceful shutdown is a requirement)."""
        problems = []
        for rp in self.running:
            if rp.stopped:
                continue
            alive = rp.proc.poll() is None
            code = rp.terminate()
            if not alive:
                problems.append(f"resolver died early with {code}:\n{rp.output()}")
            elif code != 0:
                problems.append(f"SIGTERM gave exit code {code} (want 0):\n{rp.output()}")
        return problems


def dig(rp: ResolverProc, *args: str, timeout: int = 3) -> str:
    """Run the real `dig` against `rp` (skips the test when dig is not installed)."""
    exe = shutil.which("dig")
    if exe is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    cmd = [exe, f"@{rp.host}", "-p", str(rp.port), "+tries=1", f"+time={timeout}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 4).stdout


def metric(admin_port: int, name: str, **labels: str) -> float:
    """Sum of the samples of `name` on the admin listener's /metrics matching `labels`."""
    url = f"http://127.0.0.1:{admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return float(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
    )
