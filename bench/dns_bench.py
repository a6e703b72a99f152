"""DNS load benchmark: our resolver against peer resolvers under dnsperf, same box, same run.

Every server under test forwards to the same local fast authority (bench/fast_authority.py).
The server is pinned to CPU 0; dnsperf and the authority share CPU 1. Each scenario is a query
file plus the servers to compare (bench/peers/configs.py says how each one is configured).

Throughput and average latency come from a plain dnsperf run at full speed. p99 comes from a
second, shorter run with per-query output (`dnsperf -v`; dnsperf 2.10 has no latency
histogram) limited to half the measured throughput (`-Q`), because printing every query slows
dnsperf itself: it is "p99 at 50 % load", comparable between servers. `--p99-rate QPS` runs it
at one rate for every server instead: a faster server's half load is a higher rate, which
loads the authority and dnsperf on CPU 1 more.

The `blocked`, `mixed` and `reload` scenarios load the same 1M-domain blocklist into every
server (bench/blocklist_data.py). `reload` replays mixed traffic at half the server's measured
capacity, adds one rule to the list, triggers the server's own reload and reports lost
queries, the worst latency and when the new rule answered NXDOMAIN.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.blocklist_data import DATA, SEED, Blocklist, write_blocklist
from bench.peers.configs import PEERS, fast_authority, ours
from bench.peers.process import LOAD_CPU, NXDOMAIN, REPO, SERVER_CPU, Server, ask, free_port

RESULTS = REPO / "bench" / "results"
TRANCO = DATA / "popularity" / "tranco-top1m-4N6VX.dnsperf.txt.xz"
BLOCKED_QUERIES = 100_000  # distinct blocked names replayed (half apex, half www.)
MIXED_QUERIES = 20_000  # distinct names in the mixed file, one in ten blocked


@dataclass
class Settings:
    duration: float = 10.0
    clients: int = 8
    outstanding: int = 200
    warmup: float = 2.0
    # A warm-up pass asks every name of the file once, however long that takes on a busy
    # machine (at most this): a measured run must not include names asked for the first time.
    warm_pass_limit: float = 300.0
    quick: bool = False
    list_size: int = 1_000_000
    # Seconds of fixed-rate traffic around one reload. Ours compiles on spare CPU only, which
    # here is what dnsperf leaves of CPU 1: a recompile of the 1M list takes ~35 s under this
    # load (6 s idle), and a shorter window would report "not live" instead of the time.
    reload_run: float = 60.0
    # The p99 run's fixed rate for every server; None: half of each one's measured throughput
    p99_rate: int | None = None

    @classmethod
    def quick_settings(cls) -> Settings:
        return cls(duration=3.0, warmup=1.0, quick=True, reload_run=20.0)


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
    start_s: float | None = None  # exec to first right answer (list loaded)
    nxdomain_pct: float | None = None  # share of answers that were NXDOMAIN
    max_ms: float | None = None
    lost: int | None = None  # reload runs: queries that timed out
    reload_s: float | None = None  # reload runs: trigger to the new rule answering NXDOMAIN
    cpu_us: float | None = None  # server CPU (user + system, all its processes) per answer
    rate: int | None = None  # reload runs: the fixed rate (dnsperf -Q)


class Run:
    """What every scenario of one run shares: temp dir, settings, the blocklist (built once)."""

    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir = workdir
        self.settings = settings
        self._lists: Blocklist | None = None
        self.reloads = 0

    @property
    def lists(self) -> Blocklist:
        if self._lists is None:
            started = time.monotonic()
            self._lists = write_blocklist(self.workdir / "data", self.settings.list_size)
            print(f"blocklist: {self._lists.origin} ({time.monotonic() - started:.1f} s)")
        return self._lists


Factory = Callable[[int, int, Path, Blocklist | None], Server]


@dataclass
class Scenario:
    """Queries to replay and which servers are compared on them."""

    name: str
    describe: str
    make_queries: Callable[[Run], Path]
    warm: bool  # replay the file once before measuring (cache-hit runs)
    servers: dict[str, Factory] = field(default_factory=dict)
    loop_file: bool = True  # False: every query must be new (cache-miss runs)
    blocklist: bool = False  # servers load the 1M-domain list
    reload: bool = False  # measure a reload under load instead of full speed
    baseline: str = "dnsmasq"  # ratio column: ours / this peer


# ---- query files -----------------------------------------------------------------------------
def hit_queries(run: Run) -> Path:
    """1,000 names, replayed over and over: after the warm-up every query is a cache hit."""
    path = run.workdir / "hits.txt"
    path.write_text("".join(f"h{i}.bench.test A\n" for i in range(1000)))
    return path


def miss_queries(run: Run) -> Path:
    """Unique names, each asked once: every query is forwarded upstream."""
    path = run.workdir / "misses.txt"
    count = int(run.settings.duration * 150_000) + 100_000  # more than any server answers in time
    tag = os.getpid()
    with path.open("w") as out:
        for start in range(0, count, 100_000):
            out.write("".join(f"m{i}.r{tag}.bench.test A\n" for i in range(start, start + 100_000)))
    return path


def blocked_names(run: Run, count: int) -> list[str]:
    """`count` seeded listed names, every other one asked as `www.` below the listed name."""
    listed = run.lists.names[: run.settings.list_size]  # not the names reload runs appended
    names = random.Random(SEED + 1).sample(listed, min(count, len(listed)))
    return [f"www.{n}" if i % 2 else n for i, n in enumerate(names)]


def blocked_queries(run: Run) -> Path:
    """100,000 listed names (half apex, half `www.` below), replayed: every answer NXDOMAIN."""
    path = run.workdir / "blocked.txt"
    path.write_text("".join(f"{n} A\n" for n in blocked_names(run, BLOCKED_QUERIES)))
    return path


def blocked_once_queries(run: Run) -> Path:
    """Every listed name once (half apex, half `www.` below): each answer is decided afresh."""
    path = run.workdir / "blocked-once.txt"
    path.write_text("".join(f"{n} A\n" for n in blocked_names(run, run.settings.list_size)))
    return path


def allowed_names(run: Run, count: int) -> list[str]:
    """The top Tranco names that no rule of the list covers (generated names without data)."""
    listed = set(run.lists.names)
    out: list[str] = []
    if TRANCO.exists():
        with lzma.open(TRANCO, "rt") as lines:
            for line in lines:
                name = line.split()[0].lower().rstrip(".")
                labels = name.split(".")
                if not any(".".join(labels[i:]) in listed for i in range(len(labels))):
                    out.append(name)
                    if len(out) == count:
                        return out
    return out + [f"a{i}.allowed.bench.test" for i in range(count - len(out))]


def mixed_queries(run: Run) -> Path:
    """90 % allowed Tranco names (cache hits after the warm-up) and every tenth line blocked."""
    path = run.workdir / "mixed.txt"
    blocked = iter(blocked_names(run, MIXED_QUERIES // 10))
    allowed = iter(allowed_names(run, MIXED_QUERIES - MIXED_QUERIES // 10))
    lines = [next(blocked) if i % 10 == 9 else next(allowed) for i in range(MIXED_QUERIES)]
    path.write_text("".join(f"{n} A\n" for n in lines))
    return path


BLOCK_PEERS = ["safe-resolver", "unbound", "pdns-recursor", "dnsmasq", "knot-resolver", "bind9"]
FORWARD_PEERS = ["safe-resolver", "unbound", "pdns-recursor", "dnsmasq"]  # cache hits, misses
SCENARIOS: list[Scenario] = [
    Scenario(
        "cache-hit",
        "1,000 names replayed after a warm-up pass",
        hit_queries,
        warm=True,
        servers={name: PEERS[name] for name in FORWARD_PEERS},
        baseline="unbound",
    ),
    Scenario(
        "cache-miss",
        "unique names (each asked once), forwarded to the local authority",
        miss_queries,
        warm=False,
        loop_file=False,
        servers={name: PEERS[name] for name in FORWARD_PEERS},
        baseline="unbound",
    ),
    Scenario(
        "blocked",
        "100k names of the 1M-domain list (half as www. below them) replayed: all NXDOMAIN",
        blocked_queries,
        warm=True,
        servers={name: PEERS[name] for name in BLOCK_PEERS},
        blocklist=True,
        baseline="unbound",
    ),
    Scenario(
        "blocked-once",
        "each name of the 1M-domain list asked once (half as www.): first-seen NXDOMAIN answers",
        blocked_once_queries,
        warm=False,
        loop_file=False,
        servers={name: PEERS[name] for name in ("safe-resolver", "unbound", "pdns-recursor")},
        blocklist=True,
        baseline="unbound",
    ),
    Scenario(
        "mixed",
        "18k allowed Tranco names served from cache + 2k blocked names (1 in 10), 1M list",
        mixed_queries,
        warm=True,
        servers={name: PEERS[name] for name in ("safe-resolver", "unbound", "pdns-recursor")},
        blocklist=True,
        baseline="unbound",
    ),
    Scenario(
        "reload",
        "mixed traffic at 50 % of capacity; one rule added to the list, then a reload",
        mixed_queries,
        warm=True,
        servers={name: PEERS[name] for name in BLOCK_PEERS},
        blocklist=True,
        reload=True,
        baseline="",
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
    source: str | None = None,
) -> str:
    argv = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port)]
    if source:
        argv += ["-a", source]  # the clients' address (default: the kernel's choice, 127.0.0.1)
    argv += ["-d", str(queries), "-l", str(seconds), "-c", str(settings.clients)]
    argv += ["-q", str(settings.outstanding), "-t", "2"]
    if once:
        argv += ["-n", "1"]
    if verbose:
        argv += ["-v"]
    if max_qps:
        argv += ["-Q", str(max_qps)]
    # Its output goes to a file, read once it is done: a pipe read meanwhile would wake this
    # process (unpinned) for every few lines of `-v`, on any core, the server's included.
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.PIPE, text=True, timeout=seconds + 60
        )
        if done.returncode != 0:
            raise RuntimeError(f"dnsperf failed: {done.stderr[-2000:]}")
        out.seek(0)
        return out.read()


@dataclass
class Stats:
    completed: int
    qps: float
    avg_ms: float
    max_ms: float
    lost: int
    lost_pct: float
    nxdomain_pct: float


def parse_stats(out: str) -> Stats:
    """The numbers of dnsperf's summary."""
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    latency = re.search(r"Average Latency \(s\):\s+([\d.]+) \(min [\d.]+, max ([\d.]+)\)", out)
    if qps is None or latency is None:
        raise RuntimeError(f"no dnsperf summary in: {out[-500:]}")
    lost = re.search(r"Queries lost:\s+(\d+) \(([\d.]+)%\)", out)
    codes = re.search(r"Response codes:\s+(.*)", out)
    nx = re.search(r"NXDOMAIN \d+ \(([\d.]+)%\)", codes.group(1)) if codes else None
    completed = re.search(r"Queries completed:\s+(\d+)", out)
    return Stats(
        int(completed.group(1)) if completed else 0,
        float(qps.group(1)),
        float(latency.group(1)) * 1000,
        float(latency.group(2)) * 1000,
        int(lost.group(1)) if lost else 0,
        float(lost.group(2)) if lost else 0.0,
        float(nx.group(1)) if nx else 0.0,
    )


def p99_ms(verbose_out: str) -> float | None:
    latencies = sorted(float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", verbose_out, re.M))
    if not latencies:
        return None
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000


def cpu_measured(
    server: Server, queries: Path, seconds: float, settings: Settings, **options: Any
) -> tuple[Stats, float | None]:
    """One dnsperf run against `server` (`options` as `dnsperf` takes them): its summary, and
    the server's CPU µs per answered query over it (None when unknown or nothing answered)."""
    before = server.cpu_seconds()
    stats = parse_stats(dnsperf(server.port, queries, seconds, settings, **options))
    after = server.cpu_seconds()
    if before is None or after is None or not stats.completed:
        return stats, None
    return stats, (after - before) / stats.completed * 1e6


def measure(scenario: Scenario, server: Server, queries: Path, run: Run) -> Result:
    settings = run.settings
    if scenario.warm:
        dnsperf(server.port, queries, settings.warm_pass_limit, settings, once=True)
    once = not scenario.loop_file
    stats, cpu_us = cpu_measured(server, queries, settings.duration, settings, once=once)
    lat_queries = queries
    if once:  # the p99 run needs names nobody asked yet: take them from the end of the file
        lat_queries = queries.with_suffix(".tail.txt")
        lines = queries.read_text().splitlines(keepends=True)
        lat_queries.write_text("".join(lines[-int(min(len(lines) // 2, 100_000)) :]))
    # p99 at half the measured throughput (or the rate asked for): per-query output would
    # distort a full-speed run
    seconds = max(1.0, settings.duration / 3)
    rate = settings.p99_rate or int(stats.qps / 2)
    verbose = dnsperf(
        server.port, lat_queries, seconds, settings, once=once, verbose=True, max_qps=rate
    )
    return Result(
        scenario.name,
        server.name,
        stats.qps,
        stats.avg_ms,
        p99_ms(verbose),
        stats.lost_pct,
        server.rss_kib(),
        start_s=server.start_s,
        nxdomain_pct=stats.nxdomain_pct,
        max_ms=stats.max_ms,
        cpu_us=cpu_us,
    )


def half_capacity(server: Server, queries: Path, settings: Settings) -> int:
    """Half of what a warmed server answers in a short full-speed run: the fixed rate of the
    runs that change something under load."""
    dnsperf(server.port, queries, settings.warm_pass_limit, settings, once=True)
    capacity = parse_stats(dnsperf(server.port, queries, 3, settings)).qps
    return max(1000, int(capacity / 2))


def background_dnsperf(
    port: int, queries: Path, seconds: float, settings: Settings, rate: int
) -> tuple[threading.Thread, list[str]]:
    """dnsperf at a fixed rate in a thread (started); its output lands in the list."""
    out: list[str] = []
    load = threading.Thread(
        target=lambda: out.append(dnsperf(port, queries, seconds, settings, max_qps=rate))
    )
    load.start()
    return load, out


def answers_nxdomain(port: int, name: str) -> bool:
    return ask(port, name, 0.5) == NXDOMAIN


def measure_reload(
    scenario: Scenario,
    server: Server,
    queries: Path,
    run: Run,
    is_live: Callable[[int, str], bool] = answers_nxdomain,
) -> Result:
    """Fixed-rate traffic (half of a short full-speed run), one list change and reload inside;
    `is_live(port, name)` says when the new rule answers (default: one NXDOMAIN answer)."""
    settings = run.settings
    if server.reload is None:
        return _not_run(scenario, server, server.reload_how or "no reload")
    rate = half_capacity(server, queries, settings)
    run.reloads += 1
    new_name = f"reload{run.reloads}-{os.getpid()}.bench-reload.test"
    load, perf_out = background_dnsperf(server.port, queries, settings.reload_run, settings, rate)
    time.sleep(3)
    run.lists.add_rule(new_name)
    triggered = time.monotonic()
    note = ""
    try:
        server.reload(server)
    except (subprocess.SubprocessError, OSError) as exc:
        note = f"reload command failed: {exc}"
    live: float | None = None
    while load.is_alive() and not note:
        if is_live(server.port, new_name):
            live = time.monotonic() - triggered
            break
        time.sleep(0.05)
    load.join()
    if server.proc is not None and server.proc.poll() is not None:
        note = f"exited during reload: {server.last_log_line()}"
    if not perf_out:
        return _not_run(scenario, server, note or "dnsperf failed")
    stats = parse_stats(perf_out[0])
    if live is None and not note:
        note = f"new rule not live within {settings.reload_run - 3:g} s"
    return Result(
        scenario.name,
        server.name,
        stats.qps,
        stats.avg_ms,
        None,
        stats.lost_pct,
        server.rss_kib(),
        note=f"{server.reload_how}, {rate:,} q/s" + (f"; {note}" if note else ""),
        start_s=server.start_s,
        nxdomain_pct=stats.nxdomain_pct,
        max_ms=stats.max_ms,
        lost=stats.lost,
        reload_s=live,
        rate=rate,
    )


def _not_run(scenario: Scenario, server: Server, why: str) -> Result:
    return Result(scenario.name, server.name, 0, 0, None, 0, None, note=f"not run: {why}")


def run_scenarios(settings: Settings, only: list[str] | None = None) -> list[Result]:
    for tool in ("dnsperf", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `sh bench/install-peers.sh`")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dns-bench-") as tmp:
        run = Run(Path(tmp), settings)
        auth = fast_authority(free_port()).start(run.workdir)
        try:
            queries = miss_queries(run)
            stats = parse_stats(dnsperf(auth.port, queries, settings.duration, settings, once=True))
            results.append(
                Result("authority-alone", auth.name, stats.qps, stats.avg_ms, None, 0.0, None)
            )
            for scenario in SCENARIOS:
                if only and scenario.name not in only:
                    continue
                print(f"scenario {scenario.name} ...", flush=True)
                queries = scenario.make_queries(run)
                for name, factory in scenario.servers.items():
                    result = one_server(scenario, name, factory, auth.port, queries, run)
                    print(f"  {row(result, None)}", flush=True)
                    results.append(result)
        finally:
            auth.stop()
    return results


def one_server(
    scenario: Scenario, name: str, factory: Factory, upstream: int, queries: Path, run: Run
) -> Result:
    lists = run.lists if scenario.blocklist else None
    if not _installed(factory, upstream, run.workdir, lists):
        return Result(scenario.name, name, 0, 0, None, 0, None, note="not installed")
    server = factory(upstream, free_port(), run.workdir, lists)
    try:
        server.start(run.workdir)
    except (RuntimeError, OSError) as exc:
        return Result(scenario.name, name, 0, 0, None, 0, None, note=str(exc))
    try:
        if scenario.reload:
            return measure_reload(scenario, server, queries, run)
        return measure(scenario, server, queries, run)
    except RuntimeError as exc:
        return Result(scenario.name, name, 0, 0, None, 0, server.rss_kib(), note=str(exc))
    finally:
        server.stop()


def _installed(factory: Factory, upstream: int, workdir: Path, lists: Blocklist | None) -> bool:
    binary = factory(upstream, 0, workdir, None).argv[0]
    return Path(binary).exists() or shutil.which(binary) is not None


# ---- output ----------------------------------------------------------------------------------
def row(r: Result, base: Result | None) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    ratio = f"{r.qps / base.qps:.2f}x" if base and base.qps and r.qps else ""
    if base and base.cpu_us and r.cpu_us:
        ratio += f" (cpu {r.cpu_us / base.cpu_us:.2f}x)"
    rss = f"{r.rss_kib / 1024:.0f}" if r.rss_kib else "-"
    note = f" ({r.note.splitlines()[0][:110]})" if r.note else ""
    return (
        f"| {r.scenario} | {r.server}{note} | {r.qps:,.0f} | {num(r.cpu_us, '.1f')} "
        f"| {r.avg_ms:.3f} | {num(r.p99_ms, '.3f')} | {num(r.max_ms, '.1f')} | {r.lost_pct:.2f} "
        f"| {num(r.nxdomain_pct, '.1f')} | {rss} "
        f"| {num(r.start_s, '.1f')} | {ratio} |"
    )


def table(results: list[Result]) -> str:
    rows = [
        "| scenario | server | q/s | CPU µs/q | avg ms | p99 ms | max ms | lost % | NXDOMAIN % "
        "| RSS MiB | start s | ours/base |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r.scenario, r.server): r for r in results}
    bases = {s.name: s.baseline for s in SCENARIOS}
    for r in results:
        if r.scenario == "reload":
            continue
        ours_row = r.server.startswith("safe-resolver")
        base = by.get((r.scenario, bases.get(r.scenario, ""))) if ours_row else None
        rows.append(row(r, base))
    reloads = [r for r in results if r.scenario == "reload"]
    if reloads:
        rows += [
            "",
            "| reload under load | how | fixed rate q/s | lost queries | max ms | avg ms "
            "| new rule live after s | RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in reloads:
            how = r.note.replace("|", "/")
            live = f"{r.reload_s:.2f}" if r.reload_s is not None else "-"
            lost = "-" if r.lost is None else f"{r.lost:,}"
            rss = f"{r.rss_kib / 1024:.0f}" if r.rss_kib else "-"
            max_ms = f"{r.max_ms:.1f}" if r.max_ms is not None else "-"
            rows.append(
                f"| {r.server} | {how} | {r.qps:,.0f} | {lost} | {max_ms} | {r.avg_ms:.3f} "
                f"| {live} | {rss} |"
            )
    return "\n".join(rows)


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def save(results: Sequence[Any], settings: Any, kind: str = "dns") -> Path:
    """`bench/results/KIND-STAMP.json`: date, machine, commit, settings and the results (all
    dataclasses)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{kind}-{stamp}.json"
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "commit": commit(),
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


def add_variants(scenario: Scenario, wanted: list[str], baseline: Path | None) -> None:
    """Variants of ours run right after it, only when asked for: another checkout
    (`--baseline-repo`, as safe-resolver-base) or another UDP path (`--server
    safe-resolver-pure`). Interleaved in one run, their ratios are comparable."""
    if "safe-resolver" not in scenario.servers:
        return
    variants: dict[str, Factory] = {}
    if baseline is not None:
        variants["safe-resolver-base"] = partial(
            ours, name="safe-resolver-base", repo=baseline.resolve()
        )
    for name in wanted:
        if name.startswith("safe-resolver-") and name in PEERS:
            variants[name] = PEERS[name]
    servers: dict[str, Factory] = {}
    for name, factory in scenario.servers.items():
        servers[name] = factory
        if name == "safe-resolver":
            servers.update(variants)
    scenario.servers = servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dns", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--clients", type=int, help="dnsperf client sockets (default 8)")
    parser.add_argument("--quick", action="store_true", help="short runs (3 s)")
    names = [s.name for s in SCENARIOS]
    parser.add_argument(
        "--scenario", action="append", choices=names, help="only these (repeatable)"
    )
    parser.add_argument("--server", action="append", help="only these servers (repeatable)")
    parser.add_argument("--list-size", type=int, help="blocklist rules (default 1,000,000)")
    parser.add_argument(
        "--p99-rate",
        type=int,
        metavar="QPS",
        help="measure p99 at this rate for every server (default: half of each one's peak)",
    )
    parser.add_argument(
        "--baseline-repo",
        type=Path,
        metavar="DIR",
        help="also run ours from this checkout (its .venv) as safe-resolver-base, right after ours",
    )
    args = parser.parse_args(argv)
    settings = Settings.quick_settings() if args.quick else Settings()
    if args.duration:
        settings.duration = args.duration
    if args.clients:
        settings.clients = args.clients
    if args.list_size:
        settings.list_size = args.list_size
    if args.p99_rate:
        settings.p99_rate = args.p99_rate
    for scenario in SCENARIOS:
        add_variants(scenario, args.server or [], args.baseline_repo)
    if args.server:
        keep = [*args.server, *(["safe-resolver-base"] if args.baseline_repo else [])]
        for scenario in SCENARIOS:
            scenario.servers = {k: v for k, v in scenario.servers.items() if k in keep}
    results = run_scenarios(settings, args.scenario)
    print(
        f"\nDNS benchmark ({machine()}; commit {commit()}; server on CPU {SERVER_CPU}, dnsperf "
        f"and authority on CPU {LOAD_CPU}; {settings.duration:g} s runs)\n"
    )
    print(table(results))
    print(f"\nresults: {save(results, settings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
