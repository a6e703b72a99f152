"""IXFR of K changed rules into an N-rule mandated list (default 1,000 into 1M): time until live
and the longest event-loop stall.

`python -m bench xfr [--rules N] [--changes K] [--rounds R] [--quick]`. A real Knot primary
(`knotd`, the zone-transfer tests' `tests/support/knot.py`) serves the mandated list as an RPZ zone
of N names (the benchmark's 1M-domain list, `blocklist_data.py`); our server runs in this
process: the real `Service` (DNS listener, transfer manager, NOTIFY, reload) with a task on its
event loop that wakes every 1 ms and records the longest gap beyond that, and a bystander process
on another core for what the machine itself imposed (bench/bystander.py).

  1. start with no copy: the first AXFR of N rules and the reload that puts them live (timed);
  2. R rounds: one signed UPDATE at the primary removes K/2 names and adds K/2; Knot sends
     NOTIFY; timed from the UPDATE until an added name answers NXDOMAIN (polled every 50 ms:
     the increment is live), and until the reload that rebuilds the index from the new copy has
     finished, with the transfer process's own figures (load the copy, transfer, check, write);
     the longest loop stall is measured apart for each of the two spans.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import uvloop

from bench.blocklist_data import choose_names
from bench.bystander import Bystander, longest_gap
from resolver import logs
from resolver.app import Service
from resolver.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' Knot primary
from support.knot import KEY_NAME, KnotPrimary, write_secret
from support.resolver_proc import free_port

ZONE = "rpz.bench"
POLL = 0.05  # seconds between "is it live yet" queries
LIVE_TIMEOUT = 900.0

POLICY = """\
version: 1
clients: {default: everyone}
profiles:
  everyone: {age: unrestricted, block_mode: nxdomain}
mandated:
  block_mode: nxdomain
  sources:
    - id: authority
      format: rpz
      transfer:
        primary: "PRIMARY"
        zone: ZONE
        tsig: {name: KEY, algorithm: hmac-sha256, secret_file: xfr.key}
lists:
  dir: lists
  catalogue_sources: false
"""


class _Outcomes(logging.Handler):
    """Keeps the transfer process's outcomes (with its own timings) as the manager logs them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("transfer source=") and isinstance(record.args, tuple):
            self.last = dict(record.args[-1])  # type: ignore[call-overload]


async def _blocked(port: int, name: str) -> bool:
    query = dns.message.make_query(name, "A")
    try:
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1.0)
    except dns.exception.Timeout:
        return False
    return reply.rcode() == dns.rcode.NXDOMAIN


async def _until_live(port: int, name: str, started: float) -> float:
    while not await _blocked(port, name):
        if time.perf_counter() - started > LIVE_TIMEOUT:
            raise TimeoutError(f"{name} not blocked after {LIVE_TIMEOUT:g} s")
        await asyncio.sleep(POLL)
    return time.perf_counter() - started


async def _run(
    folder: Path, primary: KnotPrimary, port: int, names: list[str], changes: int, rounds: int
) -> dict[str, Any]:
    cfg = load_config(folder / "server.yaml")
    logs.setup(cfg.log_level)  # the server's warnings (a refused transfer) show as they happen
    service = Service(cfg)
    assert service.holder is not None and service.transfers is not None
    await asyncio.to_thread(service.holder.load_initial)
    await service.start_dns()
    outcomes = _Outcomes()
    logging.getLogger("resolver.transfer.manager").addHandler(outcomes)
    logging.getLogger("resolver.transfer.manager").setLevel(logging.INFO)
    results: dict[str, Any] = {"rounds": []}
    try:
        started = time.perf_counter()
        await service.transfers.start()
        results["axfr_live"] = await _until_live(port, names[0], started)
        results["axfr_outcome"] = outcomes.last
        await _settle(service)
        half = changes // 2
        for index in range(rounds):
            removed = names[1 + index * half : 1 + (index + 1) * half]
            added = [f"added{index}-{i}.bench-xfr.test" for i in range(changes - half)]
            reloads = service.counters.reloads
            with Bystander() as machine_live:
                done = asyncio.Event()
                ticker = asyncio.create_task(longest_gap(done))
                started = time.perf_counter()
                await asyncio.to_thread(primary.update, ZONE, add=added, remove=removed)
                live = await _until_live(port, added[-1], started)
                done.set()
                stall_live = await ticker
            with Bystander() as machine_rebuild:
                done = asyncio.Event()
                ticker = asyncio.create_task(longest_gap(done))
                await _settle(service, reloads)
                folded = time.perf_counter() - started
                done.set()
                stall_rebuild = await ticker
            assert not await _blocked(port, removed[0]), "a removed name is still blocked"
            results["rounds"].append(
                {
                    "live": live,
                    "folded": folded,
                    "stall_live_ms": stall_live * 1000,
                    "machine_live_ms": machine_live.worst_ms,
                    "stall_rebuild_ms": stall_rebuild * 1000,
                    "machine_rebuild_ms": machine_rebuild.worst_ms,
                    "reload_s": service.counters.reload_seconds_last,
                    "outcome": outcomes.last,
                }
            )
        results["transfer"] = service.transfers.status()[0]
    finally:
        await service.stop()
    return results


async def _settle(service: Service, reloads: int | None = None) -> None:
    """Until the reload that put the new version live has finished (old index freed)."""
    holder = service.holder
    assert holder is not None
    while reloads is not None and service.counters.reloads == reloads:
        await asyncio.sleep(POLL)
    while holder._running is not None and not holder._running.done():
        await asyncio.sleep(POLL)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench xfr", description=__doc__)
    parser.add_argument("--rules", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k rules, 1 round")
    args = parser.parse_args(argv)
    rules, rounds = (100_000, 1) if args.quick else (args.rules, args.rounds)
    with tempfile.TemporaryDirectory(prefix="xfr-bench-") as tmp:
        folder = Path(tmp)
        limit = 253 - len(ZONE) - 1  # room for the zone's own labels in the owner names
        names, origin = choose_names(rules)
        names = [n for n in names if len(n) <= limit]
        print(f"rules: {origin}; {len(names):,} fit under {ZONE}")
        zone = (
            f"$ORIGIN {ZONE}.\n$TTL 300\n@ IN SOA localhost. hostmaster.localhost. 1 3600 600 "
            "86400 300\n@ IN NS localhost.\n" + "".join(f"{n} CNAME .\n" for n in names)
        )
        port = free_port()
        primary = KnotPrimary(folder / "knot", {ZONE: zone}, notify_port=port)
        del zone
        started = time.perf_counter()
        primary.start()
        print(f"knotd serves the zone after {time.perf_counter() - started:.1f} s")
        try:
            write_secret(folder / "xfr.key")
            (folder / "policy.yaml").write_text(
                POLICY.replace("PRIMARY", primary.address)
                .replace("ZONE", ZONE)
                .replace("KEY", KEY_NAME)
            )
            (folder / "server.yaml").write_text(
                f"listen: ['127.0.0.1:{port}']\nupstreams: ['127.0.0.1:9']\n"
                "upstream: {timeout_ms: 200, attempts: 1}\npolicy: policy.yaml\n"
                "admin: {listen: []}\nlog_level: warning\n"
            )
            results = uvloop.run(_run(folder, primary, port, names, args.changes, rounds))
        finally:
            primary.stop()
    print(f"\nfirst AXFR of {len(names):,} rules live after {results['axfr_live']:.1f} s")
    print(f"  {results['axfr_outcome']}")
    print(
        f"\n| IXFR of {args.changes:,} changes | live after s | transfer process s "
        "| longest loop stall until live ms (bystander) | index rebuilt after s | reload s "
        "| longest loop stall during the rebuild ms (bystander) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|"
    )
    for i, r in enumerate(results["rounds"], 1):
        seconds = r["outcome"].get("seconds", "-")
        print(
            f"| {i} | {r['live']:.1f} | {seconds} "
            f"| {r['stall_live_ms']:.1f} ({r['machine_live_ms']:.1f}) "
            f"| {r['folded']:.1f} | {r['reload_s']:.1f} "
            f"| {r['stall_rebuild_ms']:.1f} ({r['machine_rebuild_ms']:.1f}) |"
        )
    for r in results["rounds"]:
        print(f"  {r['outcome']}")
    print(f"\nstatus: {results['transfer']}")
    return 0
