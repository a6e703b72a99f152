"""A resolver process under test: start pinned to a CPU, wait until it answers, RSS, stop.

"Answers" can mean "answers a blocked name with NXDOMAIN": some servers open their sockets
before their block list is loaded, and their start-up time must include the list.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVER_CPU = "0"
LOAD_CPU = "1"
PROBE = "probe.bench.test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NXDOMAIN = 3


@dataclass
class Server:
    """A server process under test (or the authority)."""

    name: str
    argv: list[str]
    port: int
    cpu: str = SERVER_CPU
    ready_name: str = PROBE  # asked until answered (with `ready_rcode` when set)
    ready_rcode: int | None = None
    start_timeout: float = 30.0
    reload: Callable[[Server], None] | None = None  # triggers a reload of config and lists
    reload_how: str = ""  # what `reload` does, or why there is none
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    start_s: float | None = None  # from exec to the first right answer
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)  # added to the environment

    def start(self, workdir: Path) -> Server:
        self.log = workdir / f"{self.name}.log"
        started = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.cpu, *self.argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env={**os.environ, **self.env},
            )
        if not wait_answering(
            self.port, self.proc, self.start_timeout, self.ready_name, self.ready_rcode
        ):
            self.stop()
            raise RuntimeError(f"did not start: {self.last_log_line()}")
        self.start_s = time.monotonic() - started
        return self

    def last_log_line(self) -> str:
        if self.log is None or not self.log.exists():
            return "no output"
        text = self.log.read_text(errors="replace")
        lines = "".join(c for c in text if c.isprintable() or c == "\n").strip().splitlines()
        return (lines or ["no output"])[-1]  # printable only: it lands in Markdown tables

    def rss_kib(self) -> int | None:
        if self.proc is None:
            return None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) if match else None

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server and every process below it (ours: the supervisor
        and its workers), from /proc; children that exited already are not in it."""
        if self.proc is None:
            return None
        total, todo = 0.0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue  # exited meanwhile
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        return total

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port: int = udp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", port))
        return port


def query(name: str, qid: int = 0x5EED) -> bytes:
    """One A query for `name` with RD set, as wire bytes."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def ask(port: int, name: str, timeout: float = 0.5) -> int | None:
    """The rcode of one answer from 127.0.0.1:port, or None when nothing came back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query(name), ("127.0.0.1", port))
        try:
            reply = sock.recv(4096)
        except OSError:
            return None
    return reply[3] & 0x0F if reply[:2] == b"\x5e\xed" and len(reply) >= 12 else None


def wait_answering(
    port: int,
    proc: subprocess.Popen[bytes],
    timeout: float = 30.0,
    name: str = PROBE,
    rcode: int | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        got = ask(port, name, 0.2)
        if got is not None and (rcode is None or got == rcode):
            return True
        time.sleep(0.05)  # not listening yet, or answering before its list is loaded
    return False
