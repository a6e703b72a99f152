"""dnsdist (Debian package `dnsdist`) as a subprocess for the tests, running the recipe's own
configuration (deploy/isp/dnsdist.conf) with loopback addresses set in a small wrapper."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from support.resolver_proc import REPO, free_port

RECIPE = REPO / "deploy" / "isp" / "dnsdist.conf"
START_TIMEOUT = 20.0


def lua_list(items: list[str]) -> str:
    return "{" + ", ".join(f'"{item}"' for item in items) + "}"


class DnsDist:
    """`dnsdist -C wrapper --supervised --disable-syslog`, unprivileged, on a free port."""

    def __init__(self, folder: Path, backends: list[str], subscribers: list[str]) -> None:
        exe = shutil.which("dnsdist")
        if exe is None:
            pytest.skip("dnsdist not installed (Debian package dnsdist)")
        self.host, self.port = "127.0.0.1", free_port()
        self.config = folder / "dnsdist.conf"
        self.config.write_text(
            f"listen = {lua_list([f'{self.host}:{self.port}'])}\n"
            f"subscribers = {lua_list(subscribers)}\n"
            f"backends = {lua_list(backends)}\n"
            f'dofile("{RECIPE}")\n'
        )
        self.log = folder / "dnsdist.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [exe, "-C", str(self.config), "--supervised", "--disable-syslog"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def wait_answering(self, source: str) -> None:
        """Until a query from `source` gets any reply through dnsdist."""
        deadline = time.monotonic() + START_TIMEOUT
        probe = dns.message.make_query("example.org", "A")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dnsdist exited with {self.proc.returncode}:\n{self.output()}")
            try:
                dns.query.udp(probe, self.host, port=self.port, timeout=0.5, source=source)
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.1)
        pytest.fail(f"dnsdist did not answer within {START_TIMEOUT} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
