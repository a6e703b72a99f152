"""Matching-core benchmark: compile time, RSS per rule, lookups/s, snapshot size and load
time, longest event-loop stall during a reload; each against a plain `set` suffix walk.

    python -m bench.match_bench            # 100k, 1M, 5M rules, real+generated
    python -m bench.match_bench --quick    # 100k only
    python -m bench.match_bench --sizes 5000000 --data mix
    python -m bench.match_bench --sizes 5000000 --data mix --lists 40
    python -m bench.match_bench --tune 5000000 window=256 window=192,fill=0.4 lists=40

Every configuration runs in fresh subprocesses pinned to one core, so RSS numbers don't mix.
Rules (`--data`): "mix" is the union of the real block lists in /work/shared/data (≈1.3M
names) topped up with seeded generated names, so its 100k and 1M rows are real data; "gen" is
generated names only. Generated names look like block-list names: registered domains under
weighted TLDs (.com, .net, .org, .vn, .com.vn, .xyz, .top, ...) and ~35 % subdomains, skewed
onto popular bases as in the real lists. Traffic: "allowed" is the Tranco top list, "blocked"
is `www.` and `cdn.x.` under sampled rule names, and the "deep" columns are both with random
labels prepended to reach 4-6 labels.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import lzma
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bystander import Bystander, longest_gap
from resolver.build import indexfile
from resolver.build.child import run_idle
from resolver.holder import SWITCH_INTERVAL, low_priority_thread
from resolver.lists.model import Entry
from resolver.match.builder import IndexBuilder
from resolver.match.index import CategoryIndex, free_in_pieces
from resolver.match.key import NameKey, name_key
from resolver.match.packed import DEEP

DATA = Path(os.environ.get("SAFE_RESOLVER_DATA", "/work/shared/data"))
SIZES = (100_000, 1_000_000, 5_000_000)
QUERIES = 200_000
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+")
_SKIP_DIRS = {"popularity", "safesearch"}
_TLDS = {"com": 40, "net": 8, "org": 5, "info": 4, "xyz": 5, "top": 5, "vn": 4, "com.vn": 6}
_TLDS |= {"net.vn": 1, "io": 2, "online": 2, "site": 2, "club": 2, "ru": 3, "de": 2, "co": 2}
_TLDS |= {"me": 2, "tk": 2, "cc": 1, "pro": 1, "co.uk": 1, "com.br": 1}
_HOSTS = "www m ads ad api cdn img static track click stats app mail login my shop bet live news"
_SYLL = "ba be bi bo bu ca co da de di do ga ha ho ki la le li lo ma me mi mo na ne ni no "
_SYLL += "pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi vo xa xe xo an en in on bet"
_SYLL += " game shop club casino porn sex tube cam hot vip live news"


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
    """Seeded block-list-like names (see the module docstring); none of them in `taken`."""
    rng = random.Random(seed)
    syll = _SYLL.split()
    hosts = _HOSTS.split()
    tlds, weights = list(_TLDS), list(_TLDS.values())
    parents: list[str] = []
    out: list[str] = []

    def word() -> str:
        text = "".join(rng.choices(syll, k=rng.randint(2, 5)))
        roll = rng.random()
        if roll < 0.2:
            text += str(rng.randint(1, 999))
        elif roll < 0.3:
            text += "-" + "".join(rng.choices(syll, k=2))
        return text

    while len(out) < count:
        if parents and rng.random() < 0.35:  # a subdomain, mostly of a few popular bases
            parent = parents[int(len(parents) * rng.random() ** 4)]
            extra = rng.choices((1, 2, 3, 4), (75, 17, 6, 2))[0]
            labels = [rng.choice(hosts) if rng.random() < 0.5 else word() for _ in range(extra)]
            name = ".".join([*labels, parent])
        else:
            name = f"{word()}.{rng.choices(tlds, weights)[0]}"
            parents.append(name)
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def deepen(names: list[str], seed: int) -> list[str]:
    """Each name with random labels prepended to reach 4-6 labels."""
    rng = random.Random(seed)
    syll = _SYLL.split()
    out = []
    for name in names:
        extra = max(1, rng.randint(4, 6) - name.count(".") - 1)
        labels = ["".join(rng.choices(syll, k=rng.randint(1, 3))) for _ in range(extra)]
        out.append(".".join([*labels, name]))
    return out


def prepare(workdir: Path, total: int, data: str) -> None:
    real = real_names() if data == "mix" else []
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
    return read_rules_text(workdir).split("\n", size)[:size]


def read_rules_text(workdir: Path) -> str:
    """rules.txt (95 MB at 5M) in 1 MiB reads, as the server's list reader reads lists: the
    compile worker shares a core with the event loop it is measured against, and one read
    of the whole file kept that core in the kernel for up to 25 ms (perf sched timehist)."""
    with (workdir / "rules.txt").open(encoding="utf-8") as file:
        return "".join(iter(lambda: file.read(1 << 20), ""))


def compile_index(workdir: str, size: int, lists: int = 2, **packing: Any) -> CategoryIndex:
    """`size` names cut into `lists` lists, one category bit each; `packing` goes to
    IndexBuilder. More lists mean more distinct records (a name's own list meets its
    ancestors'), so wider record digits, as in a real policy."""
    names = read_rules(Path(workdir), size)
    builder = IndexBuilder(**packing)
    step = -(-len(names) // lists)
    for bit in range(lists):
        builder.add(bit, (Entry(name) for name in names[bit * step : (bit + 1) * step]), f"l{bit}")
    return builder.build()


def rate(fn, queries: list[str]) -> float:
    start = time.perf_counter()
    for name in queries:
        fn(name)
    return len(queries) / (time.perf_counter() - start)


def rate_keys(lookup, keys: list[NameKey]) -> float:
    """`rate` for the index's hot path, fed `(key, dots)` pairs as the DNS packet reader hands
    them over (building them left `read_query` at the same cost, see bench/README.md)."""
    start = time.perf_counter()
    for key, dots in keys:
        lookup(key, dots)
    return len(keys) / (time.perf_counter() - start)


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


async def longest_stall(job, machine: list[float] | None = None) -> tuple[float, object]:
    """Run `job(loop)` while a 1 ms ticker measures the longest gap between its wakeups. With
    `machine`, a bystander process on another core (bench/bystander.py) ticks meanwhile and
    its longest gap, in ms, is appended there."""
    if machine is not None:
        with Bystander() as bystander:
            out = await longest_stall(job)
        machine.append(bystander.worst_ms)
        return out
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    ticker = asyncio.create_task(longest_gap(done))
    await asyncio.sleep(0.01)
    result = await job(loop)
    done.set()
    return await ticker, result


def worker_build(workdir: Path, size: int, lists: int) -> dict:
    text = read_rules_text(workdir)
    gc.collect()
    base0 = rss()
    names = text.split("\n", size)[:size]
    baseline = set(names)
    del names
    gc.collect()
    base_bytes = (rss() - base0) / size  # the set and its strings
    del baseline, text
    gc.collect()
    start = time.perf_counter()
    index = compile_index(str(workdir), size, lists)
    compile_s = time.perf_counter() - start
    path = workdir / f"{size}.idx"
    start = time.perf_counter()
    indexfile.save(index, path)
    return {
        "compile_s": compile_s,
        "save_s": time.perf_counter() - start,
        "snapshot_mb": path.stat().st_size / 1e6,
        "set_bytes_per_rule": base_bytes,
        "keys_per_rule": index.name_count() / size,
    }


def traffic(workdir: Path, rules: list[str]) -> dict[str, list[str]]:
    rng = random.Random(3)
    sample = rng.sample(rules, min(len(rules), QUERIES // 2))
    allowed = (workdir / "allowed.txt").read_text().split("\n")
    return {
        "blocked": [f"www.{name}" for name in sample] + [f"cdn.x.{name}" for name in sample],
        "allowed": allowed,
        "deep_blocked": deepen(sample * 2, seed=13),
        "deep_allowed": deepen(allowed, seed=17),
    }


def worker_load(workdir: Path, size: int, lists: int) -> dict:
    path = workdir / f"{size}.idx"
    rules = read_rules(workdir, size)
    queries = traffic(workdir, rules)
    baseline = set_walk(set(rules))
    del rules
    gc.collect()
    before = rss()
    start = time.perf_counter()
    index = indexfile.load(path)
    load_s = time.perf_counter() - start
    gc.collect()
    out: dict = {"load_s": load_s, "bytes_per_rule": (rss() - before) / size}
    out |= lookup_rates(index, queries, baseline)
    del queries, baseline
    holder = [index]
    del index
    # As the server does after each install (resolver/reload.py): what is alive now is moved out
    # of the cyclic collector's reach. Without it a full collection that fell during a load
    # walked whatever the bench still held and stalled the loop ~10 ms (bench/README.md).
    gc.freeze()
    thread = low_priority_thread()  # the server's snapshot thread, at its low priority
    machine: list[float] = []  # the bystander's longest gaps beside each stall measured
    out["stall_free_ms"] = 0.0

    def free(job) -> None:
        """Run `job` (freeing) in the thread; its longest loop stall goes to "stall_free_ms"."""

        async def run(loop):
            await loop.run_in_executor(thread, job)

        stall = asyncio.run(longest_stall(run, machine))[0]
        out["stall_free_ms"] = max(out["stall_free_ms"], stall * 1000)

    def swap(new: CategoryIndex) -> list[object]:
        """Put `new` live as the server's install does; the old index's pieces, to free."""
        pieces = holder[0].storage()
        holder[0] = new  # the old index's big containers die in the thread
        gc.freeze()
        return pieces

    def reload() -> float:
        """Longest loop stall while a thread loads the snapshot beside the live index; the old
        index is then freed in a thread, its region kept for the next load (as the server
        does)."""

        async def job(loop):
            return await loop.run_in_executor(thread, indexfile.load, path)

        stall, new = asyncio.run(longest_stall(job, machine))
        pieces = swap(new)
        free(lambda: free_in_pieces(pieces))
        return stall * 1000

    sys.setswitchinterval(SWITCH_INTERVAL)  # as the server does during a reload
    out["stall_load_ms"] = reload()  # a map of the file written a moment ago
    out["stall_reuse_ms"] = reload()  # and again, as back-to-back reloads do

    async def reload_via_process(loop):
        # the server's path: compile in a fresh idle-priority process started and awaited
        # from the reload thread (it rewrites the snapshot this worker loaded), load and free
        # there
        build = ("bench.match_bench", "--worker", "build", str(workdir), str(size))
        build += (str(lists),)
        await loop.run_in_executor(thread, run_idle, *build)
        new = await loop.run_in_executor(thread, indexfile.load, path)
        await loop.run_in_executor(thread, free_in_pieces, swap(new))

    out["stall_process_ms"] = asyncio.run(longest_stall(reload_via_process, machine))[0] * 1000
    out["stall_machine_process_ms"] = machine[-1]
    out["stall_machine_ms"] = max(machine)  # over every stall measured above
    sys.setswitchinterval(0.005)
    thread.shutdown()
    return out


def lookup_rates(index: CategoryIndex, queries: dict[str, list[str]], baseline) -> dict:
    """Lookups/s of the index and of the set walk per kind of traffic, after checking that
    both agree (its own function so that no query list outlives it)."""
    out = {}
    for kind, names in queries.items():
        keys = list(map(name_key, names))  # median of 3 passes: one pass varies by ~5 %
        out[f"{kind}_per_s"] = statistics.median(rate_keys(index.lookup, keys) for _ in range(3))
        out[f"set_{kind}_per_s"] = statistics.median(rate(baseline, names) for _ in range(3))
        mismatch = [n for n in names[:20_000] if bool(index.lookup_name(n)) != baseline(n)]
        assert not mismatch, f"{kind}: index and set walk disagree on {mismatch[:5]}"
    assert all(map(index.lookup_name, queries["blocked"]))
    return out


def tune(size: int, packings: list[str], rounds: int = 5) -> str:
    """Compare packings of the packed table in one process, measured interleaved:
    differences of a few per cent are real here, where separate processes vary by about 5 %.
    A packing is IndexBuilder keywords ("window=192,fill=0.4"), or "lists=40" to cut the rules
    into 40 lists. Median M lookups/s over `rounds` passes."""
    lookups = {}
    indexes = []
    with tempfile.TemporaryDirectory(prefix="match-tune-") as tmp:
        prepare(Path(tmp), size, "mix")
        queries = traffic(Path(tmp), read_rules(Path(tmp), size))
        for packing in packings:
            options = {key: float(value) if "." in value else int(value) for key, value in
                       (item.split("=") for item in packing.split(",") if item)}  # fmt: skip
            index = compile_index(tmp, size, small=0, **options)
            indexes.append(index)
            lookups[packing] = index.lookup
            print(f"{packing or 'defaults'}: {index.names.count:,} windows, "
                  f"{index.names.spilled():,} spilled, {len(index._records):,} records, "
                  f"{index.names.width} digit bytes", file=sys.stderr)  # fmt: skip
    kinds = ("blocked", "allowed", "deep_blocked", "deep_allowed")
    keys = {kind: list(map(name_key, queries[kind])) for kind in kinds}
    rates: dict[tuple[str, str], list[float]] = {(p, k): [] for p in lookups for k in kinds}
    for _ in range(rounds):
        for packing, lookup in lookups.items():
            for kind in kinds:
                rates[packing, kind].append(rate_keys(lookup, keys[kind]) / 1e6)
    lines = ["| packing | " + " | ".join(f"{kind} M/s" for kind in kinds) + " |"]
    lines.append("|---|" + "---:|" * len(kinds))
    for packing in lookups:
        cells = " | ".join(f"{statistics.median(rates[packing, kind]):.3f}" for kind in kinds)
        lines.append(f"| {packing or 'defaults'} | {cells} |")
    return "\n".join(lines) + "\n\n" + by_steps(indexes[0], queries)


def by_steps(index: CategoryIndex, queries: dict[str, list[str]]) -> str:
    """Where the time goes: traffic split by how many window searches its walk makes, each
    class timed on 1,000 of its names repeated (so in cache: the bytecode's share)."""
    lines = ["| traffic | searches | share | ns per lookup, in cache |", "|---|---:|---:|---:|"]
    for kind in ("blocked", "allowed"):
        classes: dict[int, list[str]] = {}
        for name in queries[kind]:
            classes.setdefault(min(walk_steps(index, name), 3), []).append(name)
        for steps, names in sorted(classes.items()):
            if len(names) < 1000:
                continue
            sample = list(map(name_key, names[:1000])) * 100
            ns = min(1e9 / rate_keys(index.lookup, sample) for _ in range(3))
            share = len(names) / len(queries[kind])
            lines.append(f"| {kind} | {steps}{'+' * (steps == 3)} | {share:.0%} | {ns:.0f} |")
    return "\n".join(lines)


def walk_steps(index: CategoryIndex, name: str) -> int:
    """Window searches `index.lookup(name)` makes: one per key from the base down, while the
    key found has keys below it (hot names included: the next one is in its own window)."""
    labels = name.split(".")
    steps = 0
    for start in range(len(labels) - 2, -1, -1):
        steps += 1
        rid = index.names.get(".".join(labels[start:]))
        if rid is None or not index._records[rid].flags & DEEP:
            break
    return steps


def run_worker(mode: str, workdir: Path, size: int, lists: int) -> dict:
    cmd = [sys.executable, "-m", "bench.match_bench", "--worker", mode, str(workdir)]
    cmd += [str(size), str(lists)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"match bench worker {mode} {size} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (
        "| data | rules | compile s | index file MB | load s | RSS B/rule (set) "
        "| blocked M/s (set) | allowed M/s (set) | deep blocked M/s (set) "
        "| deep allowed M/s (set) | stall ms: map / map again "
        "| stall ms: free | stall ms: process+load (bystander) | bystander ms, longest |"
    )
    lines = [head, "|" + "---|" * 14]

    def pair(r: dict, kind: str) -> str:
        return f"{r[f'{kind}_per_s'] / 1e6:.2f} ({r[f'set_{kind}_per_s'] / 1e6:.2f})"

    for r in rows:
        stalls = " / ".join(f"{r[f'stall_{key}_ms']:.1f}" for key in ("load", "reuse"))
        lines.append(
            f"| {r['data']} | {r['size']:,} | {r['compile_s']:.1f} "
            f"| {r['snapshot_mb']:.0f} | {r['load_s']:.2f} "
            f"| {r['bytes_per_rule']:.0f} ({r['set_bytes_per_rule']:.0f}) "
            f"| {pair(r, 'blocked')} | {pair(r, 'allowed')} | {pair(r, 'deep_blocked')} "
            f"| {pair(r, 'deep_allowed')} | {stalls} | {r['stall_free_ms']:.1f} "
            f"| {r['stall_process_ms']:.1f} ({r['stall_machine_process_ms']:.1f}) "
            f"| {r['stall_machine_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rules only")
    parser.add_argument("--sizes", default="")
    parser.add_argument("--data", default="mix,gen", help="mix (real + generated), gen")
    parser.add_argument(
        "--lists", type=int, default=2, help="cut the rules into this many lists (records)"
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--tune", nargs="+", metavar=("RULES", "PACKING"), help="compare packings")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.tune:
        print(tune(int(args.tune[0]), args.tune[1:] or [""]))
        return 0
    if args.worker:
        mode, workdir, size, lists = args.worker
        fn = worker_build if mode == "build" else worker_load
        print(json.dumps(fn(Path(workdir), int(size), int(lists))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(SIZES)
    if args.quick:
        sizes = [SIZES[0]]
    rows = []
    for data in args.data.split(","):
        with tempfile.TemporaryDirectory(prefix="match-bench-") as tmp:
            workdir = Path(tmp)
            prepare(workdir, max(sizes), data)
            real = json.loads((workdir / "meta.json").read_text())["real"]
            print(f"{data}: real names {real:,}; up to {max(sizes):,}", file=sys.stderr)
            for size in sizes:
                row = {"data": data, "size": size}
                row |= run_worker("build", workdir, size, args.lists)
                row |= run_worker("load", workdir, size, args.lists)
                print(row, file=sys.stderr)
                rows.append(row)
                (workdir / f"{size}.idx").unlink()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
