"""Workers benchmark: ours with one worker process and with two, in one run.

What a second worker costs and what it survives:
- CPU per answered query (every process of ours: supervisor and workers) for blocked answers
  and cache hits at each list size (dns_bench's `blocked` and `cache-hit` query files), 1 worker
  against 2: near-linear scaling means 2 workers within 10 % of 1. Measured twice: at full
  speed with everything of ours on CPU 0, and "spread": each worker on a CPU of its own (worker
  N on CPU N-1) at the same fixed rate per worker (SPREAD_SHARE of one worker's full speed);
- PSS after the load (supervisor + workers, /proc/PID/smaps_rollup): the snapshot file is mapped
  read-only by every process, so 2 workers should cost at most 1.3x one;
- with 2 workers, under mixed traffic at half of capacity: a reload (one rule appended to the
  list, SIGHUP) loses no query and the new rule answers NXDOMAIN in every worker; one worker
  SIGKILLed is replaced by the supervisor, and only its queries in flight are lost.

Apart from the spread runs, both workers and the supervisor are pinned to CPU 0, like the
one-worker server: on a 2-core machine CPU 1 is needed for dnsperf and the authority, so those
runs measure the cost of running two workers, not the throughput of two cores. In the spread
runs the second worker shares CPU 1 with dnsperf, which a fixed rate leaves room for. The list
sizes share one compiled snapshot per size (the 2-worker server maps what the 1-worker start
compiled).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.dns_bench import (
    SCENARIOS,
    Result,
    Run,
    Settings,
    background_dnsperf,
    blocked_queries,
    commit,
    cpu_measured,
    dnsperf,
    half_capacity,
    hit_queries,
    machine,
    measure,
    measure_reload,
    mixed_queries,
    parse_stats,
    save,
)
from bench.peers.configs import fast_authority, ours
from bench.peers.process import LOAD_CPU, NXDOMAIN, PROBE, SERVER_CPU, Server, free_port, query

SCENARIO = {s.name: s for s in SCENARIOS}
MEASURED = ("blocked", "cache-hit")
CLASS_CH, TYPE_TXT = 3, 16
PROBES_PER_CHECK = 16  # fresh client sockets per liveness check (each lands on one worker)
REPLACE_TIMEOUT = 60.0  # seconds a killed worker's replacement may take to answer
KILL_OUTSTANDING = 2000  # dnsperf -q of the kill run (the others: 200)
SPREAD_SHARE = 0.4  # each worker's fixed rate in the spread runs, of one worker's full speed
SPREAD_CLIENTS = 32  # dnsperf sockets in the spread runs: SO_REUSEPORT hashes them over workers


@dataclass
class WorkersSettings(Settings):
    list_sizes: list[int] = field(default_factory=lambda: [1_000_000, 5_000_000])
    workers: tuple[int, int] = (1, 2)
    kill_run: float = 20.0  # seconds of fixed-rate traffic around the SIGKILL

    @classmethod
    def quick_settings(cls) -> WorkersSettings:
        return cls(duration=3.0, warmup=1.0, quick=True, list_sizes=[200_000], reload_run=20.0)


@dataclass
class Row:
    """One server (list size, worker count): its measured runs and its memory after them."""

    list_size: int
    workers: int
    runs: dict[str, Result]
    pss_kib: int | None
    pss_anon_kib: int | None  # of which anonymous memory (not the mapped snapshot file)
    start_s: float | None
    spread: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # scenario ->
    # (fixed rate per worker, CPU µs per answered query) with each worker on its own CPU


@dataclass
class Churn:
    """A reload or a killed worker under fixed-rate load (2 workers)."""

    test: str  # "reload" or "kill"
    workers: int
    rate: int  # dnsperf -Q
    qps: float
    lost: int | None
    lost_pct: float | None
    max_ms: float | None
    after_s: float | None  # trigger to: the new rule live everywhere / the replacement answering
    note: str = ""


# ---- which worker answers ---------------------------------------------------------------------
def txt_of(reply: bytes, asked: bytes) -> str | None:
    """The first string of the first TXT answer in `reply` to the query `asked` (which it echoes
    as its question), or None."""
    if len(reply) < len(asked) + 11 or reply[:2] != asked[:2] or reply[6:8] == b"\0\0":
        return None
    pos = len(asked)
    pos += 2 if reply[pos] & 0xC0 == 0xC0 else reply.index(b"\0", pos) + 1 - pos
    rtype, _, _, rdlength = struct.unpack_from("!HHIH", reply, pos)
    rdata = reply[pos + 10 : pos + 10 + rdlength]
    if rtype != TYPE_TXT or not rdata or len(rdata) < 1 + rdata[0]:
        return None
    return rdata[1 : 1 + rdata[0]].decode(errors="replace")


def worker_of(identity: str | None) -> int | None:
    """The worker number in ours' `id.server` answer ("safe-resolver worker 2")."""
    last = (identity or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else None


def probe(port: int, name: str, timeout: float = 0.5) -> tuple[int | None, int | None]:
    """From one fresh client socket (SO_REUSEPORT sends its datagrams to one worker): which
    worker answers it (`id.server` CH TXT), and that worker's rcode for `name`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        ident = query("id.server", 0x1D1D, TYPE_TXT, CLASS_CH)
        try:
            sock.send(ident)
            worker = worker_of(txt_of(sock.recv(4096), ident))
            asked = query(name)
            sock.send(asked)
            reply = sock.recv(4096)
        except OSError:
            return None, None
    rcode = reply[3] & 0x0F if reply[:2] == asked[:2] and len(reply) >= 12 else None
    return worker, rcode


@dataclass
class LiveEverywhere:
    """`is_live` for dns_bench.measure_reload: true once every worker has answered the name
    NXDOMAIN (a worker that has stays so: generations only move forward)."""

    workers: int
    seen: set[int] = field(default_factory=set)

    def __call__(self, port: int, name: str) -> bool:
        for _ in range(PROBES_PER_CHECK):
            worker, rcode = probe(port, name)
            if worker is not None and rcode == NXDOMAIN:
                self.seen.add(worker)
            if len(self.seen) >= self.workers:
                return True
        return False


def worker_pids(server: Server) -> list[int]:
    """Ours' worker processes (`serve-worker`), not the supervisor or a build child."""
    found = []
    for pid in server.pids():
        try:
            if b"serve-worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def queued_bytes(pid: int, port: int) -> int:
    """Bytes waiting in the receive queues of `pid`'s UDP sockets bound to `port` (the
    kernel's rx_queue in /proc/net/udp: datagrams counted with their buffer overhead)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile (the listing's own fd)
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link.removeprefix("socket:[").rstrip("]"))
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[9] in inodes and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    total += int(cols[4].split(":")[1], 16)
    return total


def datagram_cost(payload: bytes) -> int:
    """What one datagram of this size adds to a receive queue on loopback (its truesize):
    turns `queued_bytes` into a count of queries."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        tx.sendto(payload, ("127.0.0.1", port))
        rx.settimeout(1.0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            cost = queued_bytes(os.getpid(), port)
            if cost:
                return cost
            time.sleep(0.001)
    return 0


def receive_buffer_drops() -> int:
    """UDP datagrams the kernel dropped for a full receive buffer, on the whole host
    (RcvbufErrors of /proc/net/snmp): a socket nobody reads fast enough."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [row[1:] for row in rows if row and row[0] == "Udp:"]
    return int(dict(zip(udp[0], udp[1], strict=True))["RcvbufErrors"])


def gone(pid: int) -> bool:
    """The process is dead (exited, or a zombie not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


# ---- the measurements -------------------------------------------------------------------------
def measure_spread(server: Server, queries: Path, run: Run, rate: int) -> float | None:
    """CPU µs per answered query (every process of ours) at `rate` q/s per worker, with worker
    i on CPU i-1 (the supervisor stays where it was); the pinning is put back after."""
    pids = sorted(worker_pids(server))
    cpus = sorted(os.sched_getaffinity(0))
    for i, pid in enumerate(pids):
        os.sched_setaffinity(pid, {cpus[i % len(cpus)]})
    try:
        settings = replace(run.settings, clients=SPREAD_CLIENTS)
        _, cpu_us = cpu_measured(server, queries, run.settings.duration, settings,
                                 max_qps=rate * len(pids))  # fmt: skip
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, {int(SERVER_CPU)})
    return cpu_us


def measure_kill(server: Server, queries: Path, run: Run, workers: int) -> Churn:
    """Fixed-rate traffic; 3 s in, SIGKILL one worker; how long until every worker number
    answers again (the killed one's only from its replacement), and what dnsperf lost."""
    settings = run.settings
    assert isinstance(settings, WorkersSettings)
    rate = half_capacity(server, queries, settings)
    # room for every query the dead worker holds: lost ones stay "outstanding" until timed out
    wide = replace(settings, outstanding=KILL_OUTSTANDING)
    drops = receive_buffer_drops()
    load, out = background_dnsperf(server.port, queries, settings.kill_run, wide, rate)
    time.sleep(3)
    before = worker_pids(server)
    note = ""
    replaced: float | None = None
    if not before:
        note = "no worker process found"
    else:
        victim = before[0]
        queued = queued_bytes(victim, server.port)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        # A killed process unmaps its memory before it closes its files: until then its socket
        # stays in the SO_REUSEPORT group and keeps receiving queries nobody reads.
        held = queued
        while not gone(victim) and time.monotonic() - killed < 5:
            held = max(held, queued_bytes(victim, server.port))
        dying = time.monotonic() - killed
        seen: set[int] = set()
        waiting = 0  # most bytes queued in the replacement's socket before it answered
        while time.monotonic() - killed < REPLACE_TIMEOUT and replaced is None:
            for pid in set(worker_pids(server)) - set(before):
                waiting = max(waiting, queued_bytes(pid, server.port))
            worker, _ = probe(server.port, PROBE, 0.2)
            if worker is not None:
                seen.add(worker)
            if len(seen) >= workers:
                replaced = time.monotonic() - killed
        new = sorted(set(worker_pids(server)) - set(before))
        note = f"pid {victim} killed, new pid {', '.join(map(str, new)) or 'none'}"
        cost = datagram_cost(query(PROBE))
        if cost:
            note += (
                f"; its socket held {queued // cost:,} queries at the kill, up to "
                f"{held // cost:,} while it died ({dying * 1000:.0f} ms to exit); the "
                f"replacement's socket up to {waiting // cost:,} before it answered"
            )
        if replaced is None:
            note += f"; not answering within {REPLACE_TIMEOUT:g} s"
    load.join()
    note += f"; {receive_buffer_drops() - drops:,} datagrams dropped for full receive buffers"
    if not out:
        return Churn("kill", workers, rate, 0, None, None, None, replaced, note + "; no dnsperf")
    stats = parse_stats(out[0])
    share_ms = stats.lost / (rate / workers) * 1000  # of the killed worker's share of traffic
    note += f"; lost = {share_ms:.1f} ms of its share"
    return Churn(
        "kill", workers, rate, stats.qps, stats.lost, stats.lost_pct, stats.max_ms, replaced, note
    )


def measure_server(
    run: Run, workers: int, upstream: int, churn: bool, rates: dict[str, int]
) -> tuple[Row, list[Churn]]:
    """Start ours with `workers`, measure blocked answers and cache hits (at full speed on one
    CPU, then spread at `rates` per worker, which the first server measured sets), read its
    PSS; with `churn`, then a reload and a killed worker under load."""
    lists = run.lists
    name = f"safe-resolver-w{workers}"
    server = ours(
        upstream, free_port(), run.workdir, lists, name=name, workers=workers,
        lists_dir=run.workdir / "lists",
    )  # fmt: skip
    server.start(run.workdir)
    churns: list[Churn] = []
    try:
        runs: dict[str, Result] = {}
        spread: dict[str, tuple[int, float | None]] = {}
        for scenario in MEASURED:
            queries = (blocked_queries if scenario == "blocked" else hit_queries)(run)
            # one more pass than dns_bench: each worker keeps its own answer table
            dnsperf(server.port, queries, max(run.settings.warmup, 5), run.settings, once=True)
            runs[scenario] = measure(SCENARIO[scenario], server, queries, run)
            rate = rates.setdefault(scenario, int(runs[scenario].qps * SPREAD_SHARE))
            spread[scenario] = (rate, measure_spread(server, queries, run, rate))
            print(f"  {name} {scenario}: {runs[scenario].qps:,.0f} q/s, "
                  f"{runs[scenario].cpu_us or 0:.1f} µs/q; spread at {rate:,} q/s per worker: "
                  f"{spread[scenario][1] or 0:.1f} µs/q", flush=True)  # fmt: skip
        pss, anon = server.pss_kib(), server.pss_kib("Pss_Anon")
        row = Row(run.settings.list_size, workers, runs, pss, anon, server.start_s, spread)
        if churn:
            mixed = mixed_queries(run)
            live = LiveEverywhere(workers)
            reload = measure_reload(SCENARIO["reload"], server, mixed, run, live)
            churns.append(
                Churn(
                    "reload", workers, reload.rate or 0, reload.qps, reload.lost,
                    reload.lost_pct, reload.max_ms, reload.reload_s,
                    "; ".join([f"SIGHUP; new rule NXDOMAIN in workers {sorted(live.seen)}",
                               *reload.note.split("; ")[1:]]),
                )
            )  # fmt: skip
            churns.append(measure_kill(server, mixed, run, workers))
            for c in churns:
                print(f"  {name} {c.test}: lost {c.lost}, after {c.after_s} s; {c.note}")
    finally:
        server.stop()
    return row, churns


def run_all(settings: WorkersSettings) -> tuple[list[Row], list[Churn]]:
    rows: list[Row] = []
    churns: list[Churn] = []
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        auth = fast_authority(free_port()).start(Path(tmp))
        try:
            for i, size in enumerate(settings.list_sizes):
                run = Run(Path(tmp) / f"rules-{size}", replace(settings, list_size=size))
                run.workdir.mkdir()
                print(f"{size:,} rules ...", flush=True)
                rates: dict[str, int] = {}  # the spread runs' rate per worker, for both servers
                for workers in settings.workers:
                    churn = i == 0 and workers == max(settings.workers)
                    row, more = measure_server(run, workers, auth.port, churn, rates)
                    rows.append(row)
                    churns += more
        finally:
            auth.stop()
    return rows, churns


# ---- output -----------------------------------------------------------------------------------
def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def _ratio(two: float | None, one: float | None) -> str:
    return f"{two / one:.2f}x" if two and one else "-"


def _pairs(rows: list[Row], one: int, two: int) -> list[tuple[int, Row | None, Row | None]]:
    """(list size, the `one`-worker row, the `two`-worker row) per list size, smallest first."""
    by = {(r.list_size, r.workers): r for r in rows}
    return [(size, by.get((size, one)), by.get((size, two)))
            for size in sorted({r.list_size for r in rows})]  # fmt: skip


def table(rows: list[Row], churns: list[Churn]) -> str:
    """Markdown: CPU per answer and PSS, 1 worker against 2 per list size; then the churn runs."""
    counts = sorted({r.workers for r in rows})
    one, two = counts[0], counts[-1]
    pairs = _pairs(rows, one, two)
    out = [
        f"| rules | scenario | CPU µs/q, {one} worker | CPU µs/q, {two} workers | {two} / {one} "
        f"| q/s, {one} | q/s, {two} |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, a, b in pairs:
        for scenario in MEASURED:
            ra = a.runs.get(scenario) if a else None
            rb = b.runs.get(scenario) if b else None
            cpu_a, cpu_b = ra.cpu_us if ra else None, rb.cpu_us if rb else None
            out.append(
                f"| {size:,} | {scenario} | {_num(cpu_a, '.1f')} | {_num(cpu_b, '.1f')} "
                f"| {_ratio(cpu_b, cpu_a)} | {_num(ra.qps if ra else None, ',.0f')} "
                f"| {_num(rb.qps if rb else None, ',.0f')} |"
            )
    out += [
        "",
        f"| rules | scenario | spread: fixed q/s per worker | CPU µs/q, {one} worker "
        f"| {two} workers, one CPU each | {two} / {one} |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for size, a, b in pairs:
        for scenario in MEASURED:
            rate, cpu_a = a.spread.get(scenario, (0, None)) if a else (0, None)
            cpu_b = b.spread.get(scenario, (0, None))[1] if b else None
            out.append(
                f"| {size:,} | {scenario} | {rate:,} | {_num(cpu_a, '.1f')} "
                f"| {_num(cpu_b, '.1f')} | {_ratio(cpu_b, cpu_a)} |"
            )
    out += [
        "",
        f"| rules | PSS MiB, {one} worker | PSS MiB, {two} workers | {two} / {one} "
        f"| anon MiB, {one} | anon MiB, {two} | start s, {one} | start s, {two} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, a, b in pairs:
        pss_a, pss_b = a.pss_kib if a else None, b.pss_kib if b else None
        anon_a, anon_b = a.pss_anon_kib if a else None, b.pss_anon_kib if b else None
        out.append(
            f"| {size:,} | {_mib(pss_a)} | {_mib(pss_b)} | {_ratio(pss_b, pss_a)} "
            f"| {_mib(anon_a)} | {_mib(anon_b)} "
            f"| {_num(a.start_s if a else None, '.1f')} | {_num(b.start_s if b else None, '.1f')} |"
        )
    if churns:
        out += [
            "",
            "| under load | workers | fixed rate q/s | q/s | lost queries | max ms "
            "| done after s | what |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        what = {"reload": "reload: 1 rule appended, SIGHUP", "kill": "one worker SIGKILLed"}
        for c in churns:
            note = c.note.replace("|", "/")
            out.append(
                f"| {what.get(c.test, c.test)} | {c.workers} | {c.rate:,} | {c.qps:,.0f} "
                f"| {_num(c.lost, ',')} | {_num(c.max_ms, '.1f')} | {_num(c.after_s, '.2f')} "
                f"| {note} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench workers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 200k rules only")
    parser.add_argument(
        "--list-size",
        type=int,
        action="append",
        help="blocklist rules (repeatable; default 1,000,000 and 5,000,000)",
    )
    parser.add_argument(
        "--reload-run",
        type=float,
        help="seconds of fixed-rate traffic around the reload (default 60): the new rule must be "
        "live in every worker within them, less the 3 s before the reload",
    )
    args = parser.parse_args(argv)
    settings = WorkersSettings.quick_settings() if args.quick else WorkersSettings()
    if args.duration:
        settings.duration = args.duration
    if args.list_size:
        settings.list_sizes = args.list_size
    if args.reload_run:
        settings.reload_run = args.reload_run
    rows, churns = run_all(settings)
    print(
        f"\nWorkers benchmark ({machine()}; commit {commit()}; ours (supervisor and every "
        f"worker) on CPU {SERVER_CPU}, dnsperf and authority on CPU {LOAD_CPU}; "
        f"{settings.duration:g} s runs)\n"
    )
    print(table(rows, churns))
    print(f"\nresults: {save([*rows, *churns], settings, kind='workers')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
