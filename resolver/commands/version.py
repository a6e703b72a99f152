"""`safe-resolver version`: the version and which UDP path `serve` would use here.

"compiled: yes" means the C fast path (resolver/dns/_fastpath.c) was built at install and is
not disabled with SAFE_RESOLVER_PURE=1. A running server reports the same line per worker in
`GET /api/v1/status` (`datapath`).
"""

from __future__ import annotations

import argparse
import sys

from resolver import __version__
from resolver.config import load_config, parse_workers
from resolver.dns.fastpath import describe, use_compiled
from resolver.supervisor import worker_count
from resolver.yamlsource import ConfigError


def version_command(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        workers = worker_count(parse_workers(args.workers) if args.workers else cfg.workers)
    except (ConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    udp = cfg.udp
    print(f"safe-resolver {__version__}")
    datapath = describe(use_compiled(), udp.batch, udp.fast_answers)
    print(f"datapath: {datapath}, workers: {workers}")
    return 0
