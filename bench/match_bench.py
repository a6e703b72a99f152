"""Matching-core benchmark: compile time, RSS per rule, lookups/s, snapshot size and load
time, longest event-loop stall during a reload; each against a plain `set` suffix walk.

    python -m bench.match_bench            # 100k, 1M, 5M rules, both backends
    python -m bench.match_bench --quick    # 100k only

Every configuration runs in fresh subprocesses pinned to one core, so RSS numbers don't mix.
Rules: the union of the real block lists in /work/shared/data (≈1.3M names) topped up with
seeded generated names; allowed traffic is the Tranco top list, blocked traffic is `www.` and
`cdn.x.` under sampled rule names.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import lzma
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from resolver.lists.model import Entry
from resolver.match import snapshot
from resolver.match.index import BACKENDS, CategoryIndex, IndexBuilder, free_in_pieces

DATA = Path(os.environ.get("SAFE_RESOLVER_DATA", "/work/shared/data"))
SIZES = (100_000, 1_000_000, 5_000_000)
QUERIES = 200_000
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+")
_SKIP_DIRS = {"popularity", "safesearch"}
_TLDS = ["com"] * 8 + ["net", "org", "info", "xyz", "top", "vn", "com.vn", "net.vn", "io", "co"]
_SYLL = "ba be bi bo bu ca co da de di do ga ha ho ki la le li lo ma me mi mo na ne ni no "
_SYLL += "pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi vo xa xe xo an en in on bet"


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".xz":
        raw = lzma.decompress(raw)
    return raw.decode("utf-8", "replace")


def real_names() -> list[str]:
    """Union of the block lists' names (a simple extractor; the real parsers live in lists/)."""
    names: set[str] = set()
    if not DATA.is_dir():
        return []
    for path in sorted(DATA.rglob("*")):
        if not path.is_file() or path.parent.name in _SKIP_DIRS or "-ip" in path.name:
            continue
        if path.parent == DATA:
            continue
        for line in _open_text(path).lower().splitlines():
            line = line.strip()
            if not line or line[0] in "#!;$":
                continue
            for token in re.split(r"[\s/|^\"]+", line):
                token = token.strip(".").removeprefix("*.")
                if _NAME.fullmatch(token) and not token.replace(".", "").isdigit():
                    names.add(token)
                    break
    return sorted(names)


def generated_names(count: int, taken: set[str], seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    syll = _SYLL.split()
    out: list[str] = []
    while len(out) < count:
        labels = [
            "".join(rng.choices(syll, k=rng.randint(2, 5))) + str(rng.randint(0, 99) or "")
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))
        ]
        name = ".".join([*labels, rng.choice(_TLDS)])
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def prepare(workdir: Path, total: int) -> None:
    real = real_names()
    rng = random.Random(7)
    rng.shuffle(real)
    extra = generated_names(max(0, total - len(real)), set(real))
    (workdir / "rules.txt").write_text("\n".join(real[:total] + extra))
    allowed: list[str] = []
    top = DATA / "popularity" / "tranco-top1m-4N6VX.dnsperf.txt.xz"
    if top.exists():
        allowed = [line.split()[0] for line in _open_text(top).splitlines()[:QUERIES]]
    allowed += generated_names(QUERIES - len(allowed), set(), seed=11)
    (workdir / "allowed.txt").write_text("\n".join(allowed))
    (workdir / "meta.json").write_text(json.dumps({"real": len(real)}))


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def read_rules(workdir: Path, size: int) -> list[str]:
    return (workdir / "rules.txt").read_text().split("\n", size)[:size]


def compile_index(workdir: str, size: int, backend: str) -> CategoryIndex:
    names = read_rules(Path(workdir), size)
    builder = IndexBuilder(backend)
    half = len(names) // 2  # two lists, two category bits
    builder.add(0, (Entry(name) for name in names[:half]), "listA")
    builder.add(1, (Entry(name) for name in names[half:]), "listB")
    return builder.build()


def compile_to_file(workdir: str, size: int, backend: str, path: str) -> str:
    """Process-pool job: compile, save a snapshot, hand back its path."""
    snapshot.save(compile_index(workdir, size, backend), path)
    return path


def rate(fn, queries: list[str]) -> float:
    start = time.perf_counter()
    for name in queries:
        fn(name)
    return len(queries) / (time.perf_counter() - start)


def set_walk(rules: set[str]):
    def hit(name: str) -> bool:
        if name in rules:
            return True
        i = name.find(".")
        while i >= 0:
            if name[i + 1 :] in rules:
                return True
            i = name.find(".", i + 1)
        return False

    return hit


async def longest_stall(job) -> tuple[float, object]:
    """Run `job(loop)` while a 1 ms ticker measures the longest gap between its wakeups."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last - 0.001)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    result = await job(loop)
    done = True
    await ticker
    return worst, result


def worker_build(workdir: Path, size: int, backend: str) -> dict:
    text = (workdir / "rules.txt").read_text()
    base0 = rss()
    names = text.split("\n", size)[:size]
    baseline = set(names)
    del names
    base_bytes = (rss() - base0) / size  # the set and its strings
    gc.collect()
    start = time.perf_counter()
    index = compile_index(str(workdir), size, backend)
    compile_s = time.perf_counter() - start
    path = workdir / f"{backend}-{size}.idx"
    start = time.perf_counter()
    snapshot.save(index, path)
    save_s = time.perf_counter() - start
    del index, baseline
    gc.collect()

    async def thread_compile(loop):
        return await loop.run_in_executor(None, compile_index, str(workdir), size, backend)

    stall_thread_compile, _ = asyncio.run(longest_stall(thread_compile))
    return {
        "compile_s": compile_s,
        "save_s": save_s,
        "snapshot_mb": path.stat().st_size / 1e6,
        "set_bytes_per_rule": base_bytes,
        "stall_thread_compile_ms": stall_thread_compile * 1000,
    }


def worker_load(workdir: Path, size: int, backend: str) -> dict:
    path = workdir / f"{backend}-{size}.idx"
    rules = read_rules(workdir, size)
    rng = random.Random(3)
    sample = rng.sample(rules, min(len(rules), QUERIES // 2))
    blocked = [f"www.{name}" for name in sample] + [f"cdn.x.{name}" for name in sample]
    allowed = (workdir / "allowed.txt").read_text().split("\n")
    baseline = set_walk(set(rules))
    del rules
    gc.collect()
    before = rss()
    start = time.perf_counter()
    index = snapshot.load(path)
    load_s = time.perf_counter() - start
    bytes_per_rule = (rss() - before) / size
    assert all(index.lookup(name) for name in blocked[:1000])
    out = {
        "load_s": load_s,
        "bytes_per_rule": bytes_per_rule,
        "blocked_per_s": rate(index.lookup, blocked),
        "allowed_per_s": rate(index.lookup, allowed),
        "set_blocked_per_s": rate(baseline, blocked),
        "set_allowed_per_s": rate(baseline, allowed),
    }
    holder = [index]
    del index

    async def reload_in_thread(loop):
        new = await loop.run_in_executor(None, snapshot.load, path)
        pieces = holder[0].storage()
        holder[0] = new  # the swap; the old index's big containers die in the thread:
        await loop.run_in_executor(None, free_in_pieces, pieces)

    out["stall_thread_load_ms"] = asyncio.run(longest_stall(reload_in_thread))[0] * 1000

    async def reload_via_process(loop):
        # spawn, not fork: forking a process holding millions of objects copies page tables
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        tmp = str(path) + ".proc"
        await loop.run_in_executor(pool, compile_to_file, str(workdir), size, backend, tmp)
        await loop.run_in_executor(None, pool.shutdown)  # joining the child blocks: not on the loop
        new = await loop.run_in_executor(None, snapshot.load, tmp)
        pieces = holder[0].storage()
        holder[0] = new
        await loop.run_in_executor(None, free_in_pieces, pieces)

    out["stall_process_ms"] = asyncio.run(longest_stall(reload_via_process))[0] * 1000
    return out


def run_worker(mode: str, workdir: Path, size: int, backend: str) -> dict:
    cmd = [sys.executable, "-m", "bench.match_bench", "--worker", mode, str(workdir)]
    cmd += [str(size), backend]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (
        "| rules | backend | compile s | snapshot MB | load s | RSS B/rule (set) "
        "| blocked M/s (set) | allowed M/s (set) | stall ms: thread compile "
        "| stall ms: thread load | stall ms: process+load |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['backend']} | {r['compile_s']:.1f} | {r['snapshot_mb']:.0f} "
            f"| {r['load_s']:.2f} | {r['bytes_per_rule']:.0f} ({r['set_bytes_per_rule']:.0f}) "
            f"| {r['blocked_per_s'] / 1e6:.2f} ({r['set_blocked_per_s'] / 1e6:.2f}) "
            f"| {r['allowed_per_s'] / 1e6:.2f} ({r['set_allowed_per_s'] / 1e6:.2f}) "
            f"| {r['stall_thread_compile_ms']:.0f} | {r['stall_thread_load_ms']:.1f} "
            f"| {r['stall_process_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rules only")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--sizes", default="")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.worker:
        mode, workdir, size, backend = args.worker
        fn = worker_build if mode == "build" else worker_load
        print(json.dumps(fn(Path(workdir), int(size), backend)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(SIZES)
    if args.quick:
        sizes = [SIZES[0]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="match-bench-") as tmp:
        workdir = Path(tmp)
        prepare(workdir, max(sizes))
        real = json.loads((workdir / "meta.json").read_text())["real"]
        print(f"real list names: {real:,}; generated to reach {max(sizes):,}", file=sys.stderr)
        for size in sizes:
            for backend in args.backends.split(","):
                row = {"size": size, "backend": backend}
                row |= run_worker("build", workdir, size, backend)
                row |= run_worker("load", workdir, size, backend)
                print(row, file=sys.stderr)
                rows.append(row)
                (workdir / f"{backend}-{size}.idx").unlink()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
