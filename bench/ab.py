"""Two versions of the resolver, one DNS scenario, interleaved: A, B, A, B... and the ratios.

On a machine shared with other work, absolute rates drift from minute to minute; running the
two versions alternately in the same sitting and comparing neighbouring runs is what makes a
ratio trustworthy. Each version is a git revision exported to a temp dir (or the working tree,
`WORKTREE`), with this checkout's `bench/` copied over it so both run the same benchmark code.
Every run is `python -m bench dns --scenario S ...` under `flock /tmp/bench.lock`; both q/s and
the server's CPU time per answered query are compared (the second moves far less with the
machine's other load).

    python -m bench.ab HEAD WORKTREE --scenario cache-miss --rounds 3 [--server unbound] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

from bench.peers.process import REPO

LOCK = "/tmp/bench.lock"
OURS = "safe-resolver"
WORKTREE = "WORKTREE"


# What a server needs besides `resolver/`: the list catalogue and services (a policy build reads
# them), and what builds the C fast path.
SERVED = ["resolver", "blocklists"]
BUILD = ["setup.py", "pyproject.toml"]


def export(rev: str, into: Path) -> Path:
    """The resolver at `rev` (or the working tree, as built), with the current bench code. A
    revision gets its C fast path built in place, as the working tree has it: without it the
    pure-Python twin would serve one side only."""
    into.mkdir(parents=True)
    if rev == WORKTREE:
        for part in SERVED:
            shutil.copytree(REPO / part, into / part)
    else:
        archive = subprocess.run(
            ["git", "archive", rev, *SERVED, *BUILD], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
        subprocess.run(
            [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
            cwd=into,
            check=True,
            capture_output=True,
        )
    shutil.copytree(REPO / "bench", into / "bench", ignore=shutil.ignore_patterns("results"))
    return into


def run(tree: Path, args: list[str]) -> list[dict[str, Any]]:
    """One `python -m bench dns` run in `tree`; its results (one dict per server)."""
    cmd = ["flock", LOCK, sys.executable, "-m", "bench", "dns", *args]
    subprocess.run(cmd, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    newest = max((tree / "bench" / "results").glob("dns-*.json"), key=lambda p: p.stat().st_mtime)
    results: list[dict[str, Any]] = json.loads(newest.read_text())["results"]
    return results


def table(
    results: dict[tuple[int, str], dict[str, dict[str, Any]]],
    rounds: int,
    peers: list[str],
    field: str,
    fmt: str,
) -> str:
    """One Markdown table of `field` per round: A, B, B/A, and each peer in both runs."""
    header = ["round", "A", "B", "B/A"]
    for peer in peers:
        header += [f"{peer} (A run)", f"{peer} (B run)", f"A/{peer}", f"B/{peer}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]

    def value(n: int, side: str, server: str) -> float | None:
        got = results[(n, side)].get(server, {}).get(field)
        return float(got) if got else None

    def ratio(x: float | None, y: float | None) -> str:
        return f"{x / y:.2f}" if x and y else "-"

    def shown(x: float | None) -> str:
        return format(x, fmt) if x is not None else "-"

    ratios = []
    for n in range(rounds):
        a, b = value(n, "A", OURS), value(n, "B", OURS)
        row = [str(n + 1), shown(a), shown(b), ratio(b, a)]
        if a and b:
            ratios.append(b / a)
        for peer in peers:
            pa, pb = value(n, "A", peer), value(n, "B", peer)
            row += [shown(pa), shown(pb), ratio(a, pa), ratio(b, pb)]
        lines.append("| " + " | ".join(row) + " |")
    if ratios:
        lines.append(
            f"\nB/A median {median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument("a", help="git revision, or WORKTREE")
    parser.add_argument("b", help="git revision, or WORKTREE")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="append", default=[], help="a peer to run as well")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    dns_args = ["--scenario", args.scenario, "--server", OURS]
    for peer in args.server:
        dns_args += ["--server", peer]
    if args.quick:
        dns_args.append("--quick")
    # (round, side) -> {server: its result}
    results: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        trees = {"A": export(args.a, Path(tmp) / "a"), "B": export(args.b, Path(tmp) / "b")}
        for n in range(args.rounds):
            for side, tree in trees.items():
                got = {
                    r["server"]: r for r in run(tree, dns_args) if r["scenario"] == args.scenario
                }
                results[(n, side)] = got
                summary = ", ".join(
                    f"{name} {r['qps']:,.0f} q/s {r.get('cpu_us') or 0:.1f} us/q"
                    for name, r in got.items()
                )
                print(f"round {n + 1} {side}: {summary}", flush=True)
    print(f"\nA = {args.a}, B = {args.b}: {args.scenario}, A and B alternating\n")
    print("q/s\n\n" + table(results, args.rounds, args.server, "qps", ",.0f"))
    print("\nserver CPU per answered query, µs\n")
    print(table(results, args.rounds, args.server, "cpu_us", ".1f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
