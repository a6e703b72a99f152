"""`python -m bench [dns|match|policy|reload|upstream] [options]`: one benchmark, or all in turn.

With no benchmark named, every one runs; `--quick` is passed on to each (dns: 3 s runs;
match: 100k rules only; policy: 100k rules instead of 1M; reload: 200k rules; upstream: 5,000
exchanges).
"""

from __future__ import annotations

import sys

from bench import dns_bench, match_bench, policy_bench, reload_stall, upstream_bench


def policy(argv: list[str]) -> int:
    """policy_bench reads its rule count from sys.argv; `--quick` means 100k rules."""
    rules = [a for a in argv if a.isdigit()] or (["100000"] if "--quick" in argv else [])
    sys.argv = ["bench/policy_bench.py", *rules]
    policy_bench.main()
    return 0


BENCHMARKS = {
    "dns": dns_bench.main,
    "match": match_bench.main,
    "policy": policy,
    "reload": reload_stall.main,
    "upstream": upstream_bench.main,
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    unknown = [a for a in argv if a != "--quick"]
    if unknown:
        names = "|".join(BENCHMARKS)
        print(f"unknown arguments {unknown}; use `python -m bench {names} --help`")
        return 2
    status = 0
    for name, run in BENCHMARKS.items():
        print(f"\n=== {name} benchmark ===", flush=True)
        status |= run(list(argv))
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
