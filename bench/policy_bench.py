"""decide() cost per query with a 1M-rule category index (not a test; run by hand or `make bench`).

    .venv/bin/python bench/policy_bench.py [RULES]

Generates RULES deterministic blocked domains as an operator list, compiles a school-like policy
over it (the compiled index is cached under a temporary folder), then times decide() for allowed
names (the hot path), blocked names, and safe-search rewrites. Each name comes with its
`name_key` pair, as the DNS packet reader hands it to decide().
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from resolver.build.compile import compile_policy
from resolver.match.key import NameKey, name_key
from resolver.policy.decide import decide
from resolver.policy.memo import DecisionMemo

POLICY = """
clients:
  default: guests
  networks: {10.1.0.0/16: primary, 10.9.0.0/16: teachers, 10.99.0.0/16: guests}
profiles:
  primary: {age: 6-10, schedules: [lessons], allow: [olm.vn], deny: [bad.example]}
  teachers: {age: adult-staff}
  guests: {age: 15-17}
schedules:
  lessons: {windows: ["mon-fri 07:00-11:30", "mon-fri 13:30-17:00"], block: [games, social]}
lists:
  dir: lists
  catalogue_sources: false
  sources: [{id: big, category: adult, path: big.txt, format: domains}]
"""


def timed(label: str, fn, names: list[str], repeat: int = 3) -> None:
    queries = [(name, name_key(name)) for name in names]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(queries)
        best = min(best, time.perf_counter() - start)
    print(f"{label:<44} {best / len(names) * 1e6:6.2f} µs/query")


def main() -> None:
    rules = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "big.txt").write_text("".join(f"site{i}-x{i % 97}.com\n" for i in range(rules)))
        (folder / "p.yaml").write_text(POLICY)
        start = time.perf_counter()
        snap = compile_policy(folder / "p.yaml")
        print(f"compile ({rules} rules, cold): {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        compile_policy(folder / "p.yaml")
        print(f"compile (index from cache):   {time.perf_counter() - start:.2f} s")
    now = datetime.fromisoformat("2026-03-02T12:00:00+07:00").timestamp()
    allowed = [f"www.allowed{i}.org" for i in range(100_000)]
    blocked = [f"cdn.site{i}-x{i % 97}.com" for i in range(0, 1_000_000, 10)][: len(allowed)]
    google = ["www.google.com.vn"] * len(allowed)

    memo = DecisionMemo(snap)  # as a serving process holds one beside its snapshot

    def run(client: str, qtype: int = 1):
        def loop(queries: list[tuple[str, NameKey]]) -> None:
            for name, key in queries:
                decide(snap, client, name, qtype, now, None, key, memo)

        return loop

    timed("allowed name, primary (schedules, allow/deny)", run("10.1.2.3"), allowed)
    timed("allowed name, teachers", run("10.9.2.3"), allowed)
    timed("blocked name (first time: decision made)", run("10.99.2.3"), blocked, repeat=1)
    timed("blocked name (decision cached)", run("10.99.2.3"), blocked[:50_000])
    timed("safe-search rewrite", run("10.1.2.3"), google)


if __name__ == "__main__":
    main()
