"""`python -m bench [dns|match] [options]`: run one benchmark, or all of them in turn.

With no benchmark named, every one runs; `--quick` is passed on to each.
"""

from __future__ import annotations

import sys

from bench import dns_bench, match_bench

BENCHMARKS = {"dns": dns_bench.main, "match": match_bench.main}


def main(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    unknown = [a for a in argv if a != "--quick"]
    if unknown:
        print(f"unknown arguments {unknown}; use `python -m bench dns|match --help`")
        return 2
    status = 0
    for name, run in BENCHMARKS.items():
        print(f"\n=== {name} benchmark ===", flush=True)
        status |= run(list(argv))
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
