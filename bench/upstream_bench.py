"""The forwarder alone: CPU per upstream exchange, with nothing else of the resolver around it.

`python -m bench upstream [--exchanges N] [--concurrency C] [--rounds R]`. The fast authority
(bench/fast_authority.py) runs pinned to CPU 1; this process pins itself to CPU 0 and sends N
unique names through `Forwarder.resolve`, C at a time, on uvloop, and reports its own CPU time
per exchange (time.process_time, so other load on the machine hardly moves it) and the rate.
This is the figure that decides how upstream sockets are handled (resolver/dns/upstream.py);
to compare two versions, run it against each one's `resolver/` (bench/README.md says how).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import uvloop

from bench.peers.configs import fast_authority
from bench.peers.process import SERVER_CPU, free_port
from resolver.dns.packet import encode_name
from resolver.dns.settings import UpstreamConfig
from resolver.dns.upstream import Forwarder
from resolver.stats import Stats

A_IN = b"\x00\x01\x00\x01"


async def exchanges(port: int, count: int, concurrency: int, tag: str) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, failures) for `count` exchanges, `concurrency` at a time."""
    forwarder = Forwarder([("127.0.0.1", port)], UpstreamConfig(), Stats())
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bytes:
        async with gate:
            name = encode_name(f"m{i}.{tag}.bench.test")
            return await forwarder.resolve(name, A_IN, False, False, time.monotonic() + 2)

    cpu, wall = time.process_time(), time.monotonic()
    done = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    failures = sum(isinstance(r, BaseException) for r in done)
    return time.process_time() - cpu, time.monotonic() - wall, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench upstream", description=__doc__)
    parser.add_argument("--exchanges", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 exchanges, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.exchanges, args.rounds = 5_000, 2
    os.sched_setaffinity(0, {int(SERVER_CPU)})
    with tempfile.TemporaryDirectory(prefix="upstream-bench-") as tmp:
        authority = fast_authority(free_port()).start(Path(tmp))
        try:
            uvloop.run(exchanges(authority.port, 2_000, args.concurrency, "warm"))
            for n in range(args.rounds):
                tag = f"r{os.getpid()}-{n}"
                cpu, wall, failed = uvloop.run(
                    exchanges(authority.port, args.exchanges, args.concurrency, tag)
                )
                print(
                    f"round {n + 1}: {args.exchanges:,} exchanges ({failed} failed), "
                    f"{cpu / args.exchanges * 1e6:.1f} µs CPU each, {args.exchanges / wall:,.0f}/s",
                    flush=True,
                )
        finally:
            authority.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
