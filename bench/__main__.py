"""`python -m bench [dns|match|policy|reload] [options]`: run one benchmark, or all of them in turn.

With no benchmark named, every one runs; `--quick` is passed on to each (dns: 3 s runs;
match: 100k rules only; policy: 100k rules instead of 1M; reload: 200k rules).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def policy(argv: list[str]) -> int:
    """policy_bench reads its rule count from sys.argv; `--quick` means 100k rules."""
    from bench import policy_bench

    rules = [a for a in argv if a.isdigit()] or (["100000"] if "--quick" in argv else [])
    sys.argv = ["bench/policy_bench.py", *rules]
    policy_bench.main()
    return 0


def _main_of(module: str) -> Callable[[list[str]], int]:
    """The benchmark's `main`, imported only when it runs (one that cannot load stops no other)."""

    def run(argv: list[str]) -> int:
        return int(importlib.import_module(module).main(argv))

    return run


BENCHMARKS: dict[str, Callable[[list[str]], int]] = {
    "dns": _main_of("bench.dns_bench"),
    "match": _main_of("bench.match_bench"),
    "policy": policy,
    "reload": _main_of("bench.reload_stall"),
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    unknown = [a for a in argv if a != "--quick"]
    if unknown:
        print(f"unknown arguments {unknown}; use `python -m bench dns|match|policy|reload --help`")
        return 2
    status = 0
    for name, run in BENCHMARKS.items():
        print(f"\n=== {name} benchmark ===", flush=True)
        status |= run(list(argv))
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
