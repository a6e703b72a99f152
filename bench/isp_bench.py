"""ISP tier benchmark: two safe-resolver instances behind dnsdist against one instance alone.

Three set-ups answer the same cache-hit traffic (1,000 names replayed after warm-up passes,
forwarded once to the fast local authority) from one subscriber address:

  alone         dnsperf -> one instance (one worker)
  dnsdist+1     dnsperf -> dnsdist (deploy/isp/dnsdist.conf, PROXY v2) -> one instance
  dnsdist+2     dnsperf -> dnsdist -> two instances (one worker each)

Reported per set-up: queries per second, and CPU per query: the user+system time (from
/proc/PID/stat) of every server process involved (each instance's supervisor and workers, and
dnsdist) over the measured run, divided by the queries answered in it, with dnsdist's share
apart. So the load balancer's cost is visible per query, and whether a second instance pays
for itself on this machine. Servers run on CPU 0, dnsperf and the authority on CPU 1: on a
two-core machine, dnsdist and both instances share one core, so q/s shows the balancer's cost
rather than scaling; the ratios, not the absolute rates, carry over to other machines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.dns_bench import (
    RESULTS,
    Run,
    Settings,
    commit,
    dnsperf,
    hit_queries,
    machine,
    parse_stats,
)
from bench.peers.configs import fast_authority
from bench.peers.process import LOAD_CPU, REPO, SERVER_CPU, free_port, query

RECIPE = REPO / "deploy" / "isp" / "dnsdist.conf"
START_TIMEOUT = 60.0
TICK = os.sysconf("SC_CLK_TCK")
# The subscriber's address: dnsperf's, and the probes'. Not the balancer's (dnsdist sends from
# 127.0.0.1, trusted for PROXY headers): a balancer's own queries are never repeated from the
# fast path's table, a subscriber's are.
SUBSCRIBER = "127.0.0.2"


@dataclass
class Result:
    setup: str
    qps: float
    answered: int
    cpu_us_per_query: float  # all server processes
    dnsdist_us_per_query: float
    lost_pct: float
    avg_ms: float
    note: str = ""


class Proc:
    """A process pinned to the servers' CPU, its output in the run folder."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *argv], stdout=out, stderr=subprocess.STDOUT,
                cwd=REPO,
            )  # fmt: skip

    def cpu_seconds(self) -> float:
        """user+system time of the process and every descendant alive now."""
        return sum(_ticks(pid) for pid in _family(self.popen.pid)) / TICK

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _family(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        out += frontier
    return out


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _instance(name: str, upstream: int, workdir: Path, behind: bool) -> tuple[Proc, int]:
    port = free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(
        f'listen: ["127.0.0.1:{port}"]\n'
        f'upstreams: ["127.0.0.1:{upstream}"]\n'
        "cache: {size: 100000}\n"
        "ratelimit: {enabled: false}\n"  # dnsperf is one client
        + ('proxy_protocol_from: ["127.0.0.1/32"]\n' if behind else "")
        + "admin: {listen: []}\nlog_level: warning\n"
    )
    proc = Proc(name, [sys.executable, "-m", "resolver", "serve", "--config", str(config)], workdir)
    _wait(proc, port, SUBSCRIBER)
    return proc, port


def _dnsdist(backends: list[int], workdir: Path) -> tuple[Proc, int]:
    port = free_port()
    config = workdir / "dnsdist.conf"
    config.write_text(
        f'listen = {{"127.0.0.1:{port}"}}\nsubscribers = {{"127.0.0.0/8"}}\n'
        "backends = {" + ", ".join(f'"127.0.0.1:{p}"' for p in backends) + "}\n"
        f'dofile("{RECIPE}")\n'
    )
    exe = shutil.which("dnsdist") or "dnsdist"
    proc = Proc("dnsdist", [exe, "-C", str(config), "--supervised", "--disable-syslog"], workdir)
    _wait(proc, port, "127.0.0.1")
    return proc, port


def _wait(proc: Proc, port: int, source: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-500:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source, 0))
            sock.settimeout(0.3)
            sock.sendto(query("probe.bench.test"), ("127.0.0.1", port))
            try:
                sock.recv(4096)
                return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer within {START_TIMEOUT:g} s")


def measure(
    setup: str, instances: int, upstream: int, workdir: Path, run_dir: Path, settings: Settings
) -> Result:
    workdir.mkdir()
    queries = run_dir / "hits.txt"
    procs: list[Proc] = []
    dnsdist_proc: Proc | None = None
    try:
        ports = []
        for i in range(max(instances, 1)):
            proc, port = _instance(f"instance-{i + 1}", upstream, workdir, behind=instances > 0)
            procs.append(proc)
            ports.append(port)
        target = ports[0]
        if instances:
            dnsdist_proc, target = _dnsdist(ports, workdir)
            procs.append(dnsdist_proc)
        for _ in range(2):  # every instance's cache warm, whichever dnsdist picks
            dnsperf(
                target, queries, max(settings.warmup, 5), settings, once=True, source=SUBSCRIBER
            )
        before = [p.cpu_seconds() for p in procs]
        out = dnsperf(target, queries, settings.duration, settings, source=SUBSCRIBER)
        spent = [p.cpu_seconds() - b for p, b in zip(procs, before, strict=True)]
        stats = parse_stats(out)
        answered = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        lb = spent[-1] if dnsdist_proc is not None else 0.0
        return Result(
            setup, stats.qps, answered, sum(spent) / answered * 1e6, lb / answered * 1e6,
            stats.lost_pct, stats.avg_ms,
        )  # fmt: skip
    finally:
        for proc in procs:
            proc.stop()


SETUPS = (("alone", 0), ("dnsdist+1", 1), ("dnsdist+2", 2))


def table(results: list[Result]) -> str:
    base = results[0]
    lines = [
        "| set-up | q/s | q/s vs alone | CPU µs/query (all) | of which dnsdist | CPU vs alone "
        "| lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.setup} | {r.qps:,.0f} | {r.qps / base.qps:.2f} | {r.cpu_us_per_query:.1f} | "
            f"{r.dnsdist_us_per_query:.1f} | {r.cpu_us_per_query / base.cpu_us_per_query:.2f} | "
            f"{r.lost_pct:.2f} % |"
        )
    return "\n".join(lines)


def combine(runs: list[Result]) -> Result:
    """One row from several rounds of a set-up: the best q/s (the round least disturbed by the
    machine's other tenants) and the median CPU per query."""
    best = max(runs, key=lambda r: r.qps)
    middle = sorted(runs, key=lambda r: r.cpu_us_per_query)[len(runs) // 2]
    return Result(
        best.setup, best.qps, sum(r.answered for r in runs), middle.cpu_us_per_query,
        middle.dnsdist_us_per_query, max(r.lost_pct for r in runs), best.avg_ms,
        note=f"{len(runs)} rounds",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench isp", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--rounds", type=int, help="runs of each set-up, interleaved (default 3)")
    parser.add_argument("--quick", action="store_true", help="short runs (3 s), one round")
    args = parser.parse_args(argv)
    for tool in ("dnsperf", "taskset", "dnsdist"):
        if shutil.which(tool) is None:
            print(f"isp benchmark not run: {tool} is missing (sh bench/install-peers.sh)")
            return 0
    settings = Settings.quick_settings() if args.quick else Settings()
    if args.duration:
        settings.duration = args.duration
    rounds = args.rounds or (1 if args.quick else 3)
    runs: dict[str, list[Result]] = {setup: [] for setup, _ in SETUPS}
    with tempfile.TemporaryDirectory(prefix="isp-bench-") as tmp:
        run_dir = Path(tmp)
        hit_queries(Run(run_dir, settings))
        auth = fast_authority(free_port()).start(run_dir)
        try:
            for round_ in range(rounds):
                order = SETUPS[round_ % len(SETUPS) :] + SETUPS[: round_ % len(SETUPS)]
                for setup, instances in order:
                    print(f"round {round_ + 1}: {setup} ...", flush=True)
                    folder = run_dir / f"{setup}-{round_}"
                    result = measure(setup, instances, auth.port, folder, run_dir, settings)
                    print(f"  {result.qps:,.0f} q/s, {result.cpu_us_per_query:.1f} µs/query")
                    runs[setup].append(result)
        finally:
            auth.stop()
    results = [combine(runs[setup]) for setup, _ in SETUPS]
    print(
        f"\nISP benchmark ({machine()}; commit {commit()}; servers and dnsdist on CPU "
        f"{SERVER_CPU}, dnsperf and authority on CPU {LOAD_CPU}; {settings.duration:g} s runs, "
        f"{rounds} rounds)\n"
    )
    print(table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"isp-{time.strftime('%Y%m%d-%H%M%S')}.json"
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
            "commit": commit(), "rounds": [asdict(r) for rs in runs.values() for r in rs],
            "results": [asdict(r) for r in results]}  # fmt: skip
    path.write_text(json.dumps(meta, indent=2))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
