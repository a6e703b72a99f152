"""Client networks at ISP scale: `check`, compile and reload time at 10k, 100k and 1M networks.

`python -m bench networks [--sizes 10000,100000,1000000] [--quick]` (`--quick`: 10k and 100k).

For each size a seeded ISP-like subscriber export is written as a networks file
(`clients.networks_file`, one `prefix profile` per line) beside a small policy, then measured:

- `check`: the real command line, `safe-resolver check POLICY` in a fresh process (wall time,
  Python start included), as an operator runs it before a reload;
- `compile`: `compile_policy` in this process (what each of a reload's two compiles costs);
- reload: a build and swap as the server runs it (a compile in a fresh child process,
  then one in the reload thread), with the longest event-loop stall meanwhile (a 1 ms ticker on
  the same loop) and the longest gap of a bystander process on the other core (what the machine
  itself imposed; `bench/bystander.py`);
- `check` of `--inline` networks (200,000) written in the policy's YAML mapping instead;
- the lookup table's size (bytes per network) and its lookup time per address (the address
  already an int, as on a `client_cache` miss after `client_ip`).

At the largest size the lookup structures are also compared on the same prefixes: the dict of
(version, length, prefix) tuples the resolver used before (one probe per prefix length present),
a dict keyed by one int per prefix, and the sorted interval arrays it uses now.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.bystander import Bystander, longest_gap
from resolver.build.compile import compile_policy
from resolver.holder import SnapshotHolder
from resolver.policy.networks import ClientNetworks
from resolver.policy.prefixes import parse_prefix
from resolver.stats import Stats

PACKAGES = ("standard", "family", "kids", "school", "business")
POLICY = """\
version: 1
clients:
  default: standard
  networks_file: subscribers.txt
  networks:
    100.64.0.0/10: standard          # the CGNAT pool
    "2001:db8::/32": standard        # the ISP's IPv6 allocation
profiles:
  standard: {age: unrestricted, block_mode: nxdomain, log: false}
  family: {age: 11-14}
  kids: {age: 6-10}
  school: {age: 15-17}
  business: {age: adult-staff}
lists: {dir: lists, catalogue_sources: false}
"""


def subscribers(count: int, seed: int = 468) -> Iterator[str]:
    """`count` distinct `prefix package` lines, like an ISP's subscriber export: 60 % IPv4
    (/24 to /32, allocated upwards from the CGNAT /10 with gaps), 40 % IPv6 (/56 residential,
    /64 single-LAN, a few /48 business delegations inside 2001:db8::/32), one in twenty with a
    more specific block inside it on another package (a business customer's school subnet)."""
    rnd = random.Random(seed)
    v4 = 100 << 24 | 64 << 16  # 100.64.0.0, walking up
    v6 = 0x20010DB8 << 96
    written = 0
    while written < count:
        package = rnd.choices(PACKAGES, weights=(60, 20, 8, 4, 8))[0]
        if rnd.random() < 0.6:
            length = rnd.choice((24, 26, 28, 29, 30, 32, 32, 32))
            size = 1 << (32 - length)
            v4 = (v4 + size - 1) // size * size  # align
            text, inner = _v4(v4, length), None
            if length <= 28 and rnd.random() < 0.05:
                inner = _v4(v4 + size // 2, length + 2)
            v4 += size * rnd.choice((1, 1, 1, 2, 5))
        else:
            length = rnd.choices((48, 56, 64), weights=(2, 78, 20))[0]
            size = 1 << (128 - length)
            v6 = (v6 + size - 1) // size * size
            text, inner = f"{ipaddress.IPv6Address(v6)}/{length}", None
            if length <= 56 and rnd.random() < 0.05:
                inner = f"{ipaddress.IPv6Address(v6 + size // 2)}/{length + 8}"
            v6 += size * rnd.choice((1, 1, 1, 2, 5))
        yield f"{text} {package}"
        written += 1
        if inner is not None and written < count:
            yield f"{inner} {rnd.choice([p for p in PACKAGES if p != package])}"
            written += 1


def _v4(value: int, length: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/{length}"


def write_policy(folder: Path, count: int) -> Path:
    """The policy and its networks file, in subscriber order (shuffled: not by address)."""
    lines = list(subscribers(count))
    random.Random(count).shuffle(lines)
    (folder / "subscribers.txt").write_text(
        "# prefix package (subscriber export)\n" + "\n".join(lines) + "\n"
    )
    (folder / "policy.yaml").write_text(POLICY)
    return folder / "policy.yaml"


def write_inline_policy(folder: Path, count: int) -> Path:
    """The same networks written in the policy's own `clients.networks` mapping (YAML)."""
    pairs = (line.split() for line in subscribers(count))
    mapping = "".join(f'\n    "{prefix}": {package}' for prefix, package in pairs)
    text = POLICY.replace("  networks_file: subscribers.txt\n", "").replace(
        "  networks:", "  networks:" + mapping, 1
    )
    (folder / "policy.yaml").write_text(text)
    return folder / "policy.yaml"


def check_seconds(policy: Path) -> tuple[float, str]:
    """Wall time of `safe-resolver check POLICY` and its last line."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "check", str(policy)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return seconds, done.stdout.strip().splitlines()[-1]


async def reload_once(policy: Path) -> tuple[float, float, float]:
    """(reload seconds, longest loop stall, bystander's longest gap in ms) for one reload."""
    holder = SnapshotHolder(Stats())
    first = await holder.build(policy, 1)
    if not first["ok"]:
        raise RuntimeError(first["errors"])
    holder.commit(1)
    done = asyncio.Event()
    with Bystander() as bystander:
        ticker = asyncio.create_task(longest_gap(done))
        started = time.perf_counter()
        outcome = await holder.build(policy, 2)
        holder.commit(2)
        seconds = time.perf_counter() - started
        await asyncio.sleep(0.2)
        done.set()
        stall = await ticker
    if not outcome["ok"]:
        raise RuntimeError(outcome["errors"])
    return seconds, stall * 1000, bystander.worst_ms


def per_lookup(
    lookup: Callable[..., object], addresses: Sequence[Any], star: bool = False
) -> float:
    """Seconds per call of `lookup` over `addresses` (best of 3); `star`: each is an args tuple."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        if star:
            for args in addresses:
                lookup(*args)
        else:
            for address in addresses:
                lookup(address)
        best = min(best, time.perf_counter() - started)
    return best / len(addresses)


def sample_addresses(count: int, seed: int = 7) -> list[str]:
    """Client addresses: half inside the subscriber ranges, half anywhere."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        if i % 2:
            out.append(str(ipaddress.IPv4Address((100 << 24 | 64 << 16) + rnd.randrange(1 << 22))))
        elif i % 4:
            out.append(str(ipaddress.IPv6Address(0x20010DB8 << 96 | rnd.randrange(1 << 96))))
        else:
            out.append(str(ipaddress.IPv4Address(rnd.randrange(1 << 32))))
    return out


def measure(size: int, quick: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        policy = write_policy(Path(tmp), size)
        check, summary = check_seconds(policy)
        started = time.perf_counter()
        snapshot = compile_policy(policy)
        compile_s = time.perf_counter() - started
        table = snapshot.networks
        ips = [ipaddress.ip_address(a) for a in sample_addresses(20_000 if quick else 100_000)]
        lookup = per_lookup(table.owner, [(ip.version, int(ip)) for ip in ips], star=True)
        reload_s, stall_ms, bystander_ms = uvloop.run(reload_once(policy))
    return {
        "networks": size,
        "check_s": round(check, 2),
        "compile_s": round(compile_s, 2),
        "reload_s": round(reload_s, 2),
        "stall_ms": round(stall_ms, 1),
        "bystander_ms": round(bystander_ms, 1),
        "table_bytes_per_network": round(table.nbytes / size, 1),
        "lookup_us": round(lookup * 1e6, 2),
        "check_says": summary,
    }


def compare_structures(size: int) -> list[dict[str, object]]:
    """The three lookup structures over the same `size` prefixes: memory and lookup time."""
    parsed = []
    for line in subscribers(size):
        text, package = line.split()
        prefix = parse_prefix(text)
        assert not isinstance(prefix, str)
        parsed.append((prefix, package))
    owners = {p: object() for p in PACKAGES}
    default = object()
    addresses = [ipaddress.ip_address(a) for a in sample_addresses(100_000)]
    rows = []

    tracemalloc.start()
    tuples = {
        (v, n, value >> ((32 if v == 4 else 128) - n)): owners[pkg] for (v, value, n), pkg in parsed
    }
    lengths = sorted({(k[0], k[1]) for k in tuples}, key=lambda k: -k[1])
    size_tuples = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    def by_tuple(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
        value, width = int(ip), ip.max_prefixlen
        for version, length in lengths:
            if version == ip.version:
                found = tuples.get((version, length, value >> (width - length)))
                if found is not None:
                    return found
        return default

    rows.append(("dict of (version, length, prefix) tuples", size_tuples, by_tuple))

    tracemalloc.start()
    ints: dict[int, dict[int, object]] = {4: {}, 6: {}}  # (prefix << 8 | length) -> owner
    for (v, value, n), pkg in parsed:
        ints[v][value >> ((32 if v == 4 else 128) - n) << 8 | n] = owners[pkg]
    int_lengths = {v: sorted({k & 0xFF for k in d}, reverse=True) for v, d in ints.items()}
    size_ints = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    def by_int(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
        value, width, table = int(ip), ip.max_prefixlen, ints[ip.version]
        for length in int_lengths[ip.version]:
            found = table.get(value >> (width - length) << 8 | length)
            if found is not None:
                return found
        return default

    rows.append(("dict keyed by (prefix << 8 | length)", size_ints, by_int))

    networks = ClientNetworks(PACKAGES, "standard")
    networks.begin("bench")
    tracemalloc.start()
    for line in subscribers(size):
        text, package = line.split()
        networks.add(text, package, 1, 1)
    table, _ = networks.table()
    size_arrays = table.nbytes
    tracemalloc.stop()
    table_owners = (default, *(owners[p] for p in PACKAGES))

    def by_interval(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
        return table_owners[table.owner(ip.version, int(ip))]

    rows.append(("sorted interval arrays (bisect)", size_arrays, by_interval))
    out = []
    for name, nbytes, fn in rows:
        out.append(
            {
                "structure": name,
                "bytes_per_network": round(nbytes / size, 1),
                "lookup_us": round(per_lookup(fn, addresses) * 1e6, 2),
            }
        )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench networks")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="10k and 100k networks only")
    parser.add_argument("--inline", type=int, default=200_000, help="networks in the YAML")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(
        "| networks | check s | compile s | reload s | loop stall ms | bystander ms | table B/net "
        "| lookup µs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        row = measure(size, args.quick)
        print(
            f"| {size:,} | {row['check_s']} | {row['compile_s']} | {row['reload_s']} | "
            f"{row['stall_ms']} | {row['bystander_ms']} | {row['table_bytes_per_network']} | "
            f"{row['lookup_us']} |",
            flush=True,
        )
        print(f"  check: {row['check_says']}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        seconds, summary = check_seconds(write_inline_policy(Path(tmp), args.inline))
    print(
        f"\n`check` of {args.inline:,} networks in the policy's own YAML mapping: {seconds:.2f} s"
    )
    print(f"  check: {summary}", file=sys.stderr)
    print()
    print(f"Lookup structures over the same {max(sizes):,} prefixes (uncached lookups):")
    print("| structure | bytes/network | lookup µs |")
    print("|---|---:|---:|")
    for row in compare_structures(max(sizes)):
        print(f"| {row['structure']} | {row['bytes_per_network']} | {row['lookup_us']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
