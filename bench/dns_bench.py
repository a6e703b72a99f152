"""DNS load benchmark: our resolver against peer resolvers under dnsperf, same box, same run.

Every server under test forwards to the same local fast authority (bench/fast_authority.py).
The server is pinned to CPU 0; dnsperf and the authority share CPU 1. Each scenario is a query
file plus how to configure each server, so adding one (e.g. a blocked-names policy) is a few
lines: see SCENARIOS.

Throughput and average latency come from a plain dnsperf run at full speed. p99 comes from a
second, shorter run with per-query output (`dnsperf -v`; dnsperf 2.10 has no latency
histogram) limited to half the measured throughput (`-Q`), because printing every query slows
dnsperf itself: it is "p99 at 50 % load", comparable between servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SERVER_CPU = "0"
LOAD_CPU = "1"


@dataclass
class Settings:
    duration: float = 10.0
    clients: int = 8
    outstanding: int = 200
    warmup: float = 2.0
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> Settings:
        return cls(duration=3.0, warmup=1.0, quick=True)


@dataclass
class Result:
    scenario: str
    server: str
    qps: float
    avg_ms: float
    p99_ms: float | None
    lost_pct: float
    rss_kib: int | None
    note: str = ""


@dataclass
class Server:
    """A server process under test (or the authority)."""

    name: str
    argv: list[str]
    port: int
    cpu: str = SERVER_CPU
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def start(self, workdir: Path) -> Server:
        self.log = workdir / f"{self.name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.cpu, *self.argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        if not wait_answering(self.port, self.proc):
            self.stop()
            lines = self.log.read_text(errors="replace").strip().splitlines() or ["no output"]
            raise RuntimeError(f"did not start: {lines[-1]}")
        return self

    def rss_kib(self) -> int | None:
        if self.proc is None:
            return None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) if match else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# A server factory: (upstream port, listen port, workdir) -> Server
ServerFactory = Callable[[int, int, Path], Server]


@dataclass
class Scenario:
    """Queries to replay and how each server is set up for them."""

    name: str
    describe: str
    make_queries: Callable[[Path, Settings], Path]  # workdir -> dnsperf query file
    warm: bool  # replay the file once before measuring (cache-hit runs)
    servers: dict[str, ServerFactory] = field(default_factory=dict)
    loop_file: bool = True  # False: every query must be new (cache-miss runs)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", port))
        return port


def probe_query(name: bytes = b"\x05probe\x05bench\x04test\x00") -> bytes:
    return struct.pack("!HHHHHH", 0x5EED, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


def wait_answering(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            sock.sendto(probe_query(), ("127.0.0.1", port))
            try:
                if sock.recv(4096)[:2] == b"\x5e\xed":
                    return True
            except OSError:
                time.sleep(0.1)
    return False


# ---- servers ---------------------------------------------------------------------------------
def ours(upstream: int, port: int, workdir: Path, policy: Path | None = None) -> Server:
    config = workdir / "safe-resolver.yaml"
    config.write_text(
        f'listen: ["127.0.0.1:{port}"]\n'
        f'upstreams: ["127.0.0.1:{upstream}"]\n'
        "upstream: {timeout_ms: 2000, attempts: 2}\n"
        "cache: {size: 1000000}\n"
        f"policy: {json.dumps(str(policy)) if policy else 'null'}\n"
        "log_level: warning\n"
    )
    argv = [sys.executable, "-m", "resolver", "serve", "--config", str(config)]
    return Server("safe-resolver", argv, port)


def dnsmasq(upstream: int, port: int, workdir: Path, extra: list[str] | None = None) -> Server:
    argv = [
        shutil.which("dnsmasq") or "/usr/sbin/dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        f"--server=127.0.0.1#{upstream}",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--cache-size=100000",  # dnsmasq's own upper limit is about this order
        "--dns-forward-max=5000",
        f"--pid-file={workdir / 'dnsmasq.pid'}",
        "--log-facility=-",
        *(extra or []),
    ]
    return Server("dnsmasq", argv, port)


def fast_authority(port: int) -> Server:
    argv = [sys.executable, "-m", "bench.fast_authority", "--port", str(port)]
    return Server("fast-authority", argv, port, cpu=LOAD_CPU)


# ---- query files -----------------------------------------------------------------------------
def hit_queries(workdir: Path, settings: Settings) -> Path:
    """1,000 names, replayed over and over: after the warm-up every query is a cache hit."""
    path = workdir / "hits.txt"
    path.write_text("".join(f"h{i}.bench.test A\n" for i in range(1000)))
    return path


def miss_queries(workdir: Path, settings: Settings) -> Path:
    """Unique names, each asked once: every query is forwarded upstream."""
    path = workdir / "misses.txt"
    count = int(settings.duration * 150_000) + 100_000  # more than any server answers in time
    tag = os.getpid()
    with path.open("w") as out:
        for start in range(0, count, 100_000):
            out.write("".join(f"m{i}.r{tag}.bench.test A\n" for i in range(start, start + 100_000)))
    return path


SCENARIOS: list[Scenario] = [
    Scenario(
        "cache-hit",
        "1,000 names replayed after a warm-up pass",
        hit_queries,
        warm=True,
        servers={"safe-resolver": ours, "dnsmasq": dnsmasq},
    ),
    Scenario(
        "cache-miss",
        "unique names (each asked once), forwarded to the local authority",
        miss_queries,
        warm=False,
        loop_file=False,
        servers={"safe-resolver": ours, "dnsmasq": dnsmasq},
    ),
]


# ---- dnsperf ---------------------------------------------------------------------------------
def dnsperf(
    port: int,
    queries: Path,
    seconds: float,
    settings: Settings,
    *,
    once: bool = False,
    verbose: bool = False,
    max_qps: int | None = None,
) -> str:
    argv = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port)]
    argv += ["-d", str(queries), "-l", str(seconds), "-c", str(settings.clients)]
    argv += ["-q", str(settings.outstanding), "-t", "2"]
    if once:
        argv += ["-n", "1"]
    if verbose:
        argv += ["-v"]
    if max_qps:
        argv += ["-Q", str(max_qps)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"dnsperf failed: {done.stderr[-2000:]}")
    return done.stdout


def parse_stats(out: str) -> tuple[float, float, float]:
    """(queries per second, average latency ms, lost %) from dnsperf's summary."""
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000
    lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out)
    return qps, avg, float(lost.group(1)) if lost else 0.0


def p99_ms(verbose_out: str) -> float | None:
    latencies = sorted(float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", verbose_out, re.M))
    if not latencies:
        return None
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000


def measure(scenario: Scenario, server: Server, queries: Path, settings: Settings) -> Result:
    if scenario.warm:
        dnsperf(server.port, queries, max(settings.warmup, 5), settings, once=True)
    once = not scenario.loop_file
    out = dnsperf(server.port, queries, settings.duration, settings, once=once)
    qps, avg, lost = parse_stats(out)
    lat_queries = queries
    if once:  # the p99 run needs names nobody asked yet: take them from the end of the file
        lat_queries = queries.with_suffix(".tail.txt")
        lines = queries.read_text().splitlines(keepends=True)
        lat_queries.write_text("".join(lines[-int(min(len(lines) // 2, 100_000)) :]))
    # p99 at half the measured throughput: per-query output would distort a full-speed run
    seconds = max(1.0, settings.duration / 3)
    verbose = dnsperf(
        server.port, lat_queries, seconds, settings, once=once, verbose=True, max_qps=int(qps / 2)
    )
    return Result(scenario.name, server.name, qps, avg, p99_ms(verbose), lost, server.rss_kib())


def run(settings: Settings, only: list[str] | None = None) -> list[Result]:
    for tool in ("dnsperf", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `sh bench/install-peers.sh`")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dns-bench-") as tmp:
        workdir = Path(tmp)
        auth = fast_authority(free_port()).start(workdir)
        try:
            queries = miss_queries(workdir, settings)
            out = dnsperf(auth.port, queries, settings.duration, settings, once=True)
            qps, avg, lost = parse_stats(out)
            results.append(Result("authority-alone", auth.name, qps, avg, None, lost, None))
            for scenario in SCENARIOS:
                if only and scenario.name not in only:
                    continue
                queries = scenario.make_queries(workdir, settings)
                for name, factory in scenario.servers.items():
                    server = factory(auth.port, free_port(), workdir)
                    try:
                        server.start(workdir)
                    except (RuntimeError, OSError) as exc:
                        results.append(Result(scenario.name, name, 0, 0, None, 100, None, str(exc)))
                        continue
                    try:
                        results.append(measure(scenario, server, queries, settings))
                    finally:
                        server.stop()
        finally:
            auth.stop()
    return results


def table(results: list[Result]) -> str:
    rows = [
        "| scenario | server | q/s | avg ms | p99 ms | lost % | RSS MiB | ours/dnsmasq |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r.scenario, r.server): r for r in results}
    for r in results:
        base = by.get((r.scenario, "dnsmasq"))
        ratio = ""
        if r.server == "safe-resolver" and base and base.qps:
            ratio = f"{r.qps / base.qps:.2f}x"
        p99 = f"{r.p99_ms:.3f}" if r.p99_ms is not None else "-"
        rss = f"{r.rss_kib / 1024:.1f}" if r.rss_kib else "-"
        note = f" ({r.note.splitlines()[0][:60]})" if r.note else ""
        rows.append(
            f"| {r.scenario} | {r.server}{note} | {r.qps:,.0f} | {r.avg_ms:.3f} | {p99} "
            f"| {r.lost_pct:.2f} | {rss} | {ratio} |"
        )
    return "\n".join(rows)


def save(results: list[Result], settings: Settings) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"dns-{stamp}.json"
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": asdict(settings),
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(meta, indent=2))
    return path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dns", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--clients", type=int, help="dnsperf client sockets (default 8)")
    parser.add_argument("--quick", action="store_true", help="short runs (3 s)")
    parser.add_argument("--scenario", action="append", help="only these scenarios (repeatable)")
    args = parser.parse_args(argv)
    settings = Settings.quick_settings() if args.quick else Settings()
    if args.duration:
        settings.duration = args.duration
    if args.clients:
        settings.clients = args.clients
    results = run(settings, args.scenario)
    print(
        f"\nDNS benchmark ({machine()}; server on CPU {SERVER_CPU}, dnsperf and authority on "
        f"CPU {LOAD_CPU}; {settings.duration:g} s runs)\n"
    )
    print(table(results))
    print(f"\nresults: {save(results, settings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
