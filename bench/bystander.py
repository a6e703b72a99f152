"""A bystander: a 1 ms asyncio ticker in a process of its own, sharing nothing with the code
under test, on another core.

Why: on this VM every vCPU pauses for 10-50 ms about 2 s after any process frees gigabytes
(a plain ticker process on one core stalled 11-18 ms while compile processes ran on the other;
bench/README.md). Started beside a stall measurement and stopped after it, the bystander's
longest gap says what the machine itself imposed in those seconds, so a stall it shares is
the machine's, not the resolver's.

    with Bystander() as bystander:
        ...  # measure
    bystander.worst_ms
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from types import TracebackType

from resolver.build.child import child_cpus


class Bystander:
    """The ticker process, running while the `with` block runs."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = other_cpu() if cpu is None else cpu
        self.worst_ms = 0.0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Bystander:
        cmd = [sys.executable, "-m", "bench.bystander", str(self.cpu)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self._proc.stdout.readline()  # "ticking"
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._proc is not None
        out, _ = self._proc.communicate()  # closing its stdin stops it; it prints its worst gap
        if self._proc.returncode:  # a bystander that died must not read as "no pause"
            raise RuntimeError(f"bystander exited with status {self._proc.returncode}")
        self.worst_ms = float(out.split()[-1])


def other_cpu() -> int:
    """A CPU other than the ones this process may run on (one of them on a 1-CPU machine)."""
    return min(child_cpus(os.sched_getaffinity(0), os.cpu_count() or 1))


async def longest_gap(done: asyncio.Event) -> float:
    """Wake every 1 ms until `done`; the longest delay beyond that, in seconds."""
    worst = 0.0
    last = time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        worst = max(worst, now - last - 0.001)
        last = now
    return worst


async def _until_stdin_closes() -> float:
    done = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), done.set)
    print("ticking", flush=True)
    return await longest_gap(done)


def main(argv: list[str]) -> int:
    with contextlib.suppress(OSError):  # a CPU this container may not use: tick where we are
        os.sched_setaffinity(0, {int(argv[0])})
    print(f"{asyncio.run(_until_stdin_closes()) * 1000:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
