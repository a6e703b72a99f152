"""`python -m bench [dns|match|policy|reload|networks|encrypted|xfr|isp|upstream|workers]
[options]`: one benchmark, or all in turn.

With no benchmark named, every one runs; `--quick` is passed on to each (dns: 3 s runs;
match: 100k rules only; policy: 100k rules instead of 1M; reload: 200k rules; networks: 10k and
100k networks only; encrypted: 3 s runs; xfr: 100k rules; isp: 3 s runs; upstream: 5,000
exchanges; workers: 3 s runs, 200k rules).
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


# name -> "module:function"; a benchmark's module is imported only when it runs.
BENCHMARKS = {
    "dns": "bench.dns_bench:main",
    "match": "bench.match_bench:main",
    "policy": "bench.__main__:policy",
    "reload": "bench.reload_stall:main",
    "encrypted": "bench.encrypted_bench:main",
    "networks": "bench.networks_bench:main",
    "xfr": "bench.xfr_bench:main",
    "isp": "bench.isp_bench:main",
    "upstream": "bench.upstream_bench:main",
    "workers": "bench.workers_bench:main",
}


def _load(name: str) -> Callable[[list[str]], int]:
    module, func = BENCHMARKS[name].split(":")
    loaded: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return loaded


def main(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        return _load(argv[0])(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    unknown = [a for a in argv if a != "--quick"]
    if unknown:
        names = "|".join(BENCHMARKS)
        print(f"unknown arguments {unknown}; use `python -m bench {names} --help`")
        return 2
    status = 0
    for name in BENCHMARKS:
        print(f"\n=== {name} benchmark ===", flush=True)
        status |= _load(name)(list(argv))
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
