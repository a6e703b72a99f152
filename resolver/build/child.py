"""Run a build in a fresh Python process at idle CPU priority, so that it never delays DNS.

Why a process: compiling a multi-million-rule index would hold our GIL for seconds. Why
SCHED_IDLE: at normal priority the child competes with the event loop for a core, and the kernel
lets a running task finish its slice before a woken one gets the core (traced: the child's
interpreter start-up alone kept the loop waiting several ms per reload; bench/README.md). A
SCHED_IDLE task is preempted at once by any normal one: the loop always comes first, the compile
gets the rest. `posix_spawn` returns as soon as the child has exec'd (vfork semantics: no page
tables of a server holding gigabytes are copied), and the policy is set right then, so the
child's start-up runs idle. (posix_spawn's own scheduler attribute refuses SCHED_IDLE, and a
thread that made itself idle to pass the policy on could not leave it again without privilege.)

Idle priority alone starves the child when the server is pinned to a core it keeps busy (a
child inherits the pinning). So the child runs on the CPUs the server is not pinned to, when
there are any: the compile gets their spare time and never touches the loop's core or its
caches. A server free to use every CPU leaves the child free too. A cgroup's CPU set (systemd
`AllowedCPUs=`) still binds it: the kernel intersects any affinity with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

IDLE = os.sched_param(0)


class ChildFailed(Exception):
    """The child exited with an error status or was killed."""


def run_idle(module: str, *args: str, on_start: Callable[[int], None] | None = None) -> str:
    """Run `python -m module *args` as a SCHED_IDLE child and return its standard output.
    Blocks until the child exits: call it from a thread, never from the event loop.
    `on_start` gets the child's pid (a caller that may need to stop it early keeps it)."""
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", module, *args],
            _environment(),
            file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)],
        )
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    if on_start is not None:
        on_start(pid)
    with contextlib.suppress(OSError):  # exited already, or a sandbox refuses: it runs anyway
        os.sched_setscheduler(pid, os.SCHED_IDLE, IDLE)
    with contextlib.suppress(OSError):  # exited, or the cgroup allows none of those CPUs
        os.sched_setaffinity(pid, child_cpus(os.sched_getaffinity(0), os.cpu_count() or 1))
    with open(read_end, "rb") as pipe:
        output = pipe.read()
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code > 0:
        raise ChildFailed(f"{module} exited with status {code}")
    if code < 0:
        raise ChildFailed(f"{module} killed by signal {-code}")
    return output.decode()


def child_cpus(ours: set[int], cpu_count: int) -> set[int]:
    """The CPUs a build child may use: those we are not pinned to, or ours when we may use
    them all (the kernel further clips the set to our cgroup's)."""
    others = set(range(cpu_count)) - ours
    return others or ours


def _environment() -> dict[str, str]:
    """Ours, with our import path: the child finds the same modules even when we were started
    from a source tree that is not installed."""
    path = [os.path.abspath(entry) for entry in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def build_in_child(policy: str, now: float | None = None) -> dict[str, Any]:
    """Build `policy` in a fresh idle-priority process (`python -m resolver.build POLICY [NOW]`)
    and return its JSON result; overlay entries apply as of `now` (the child's clock if None).
    Blocks: call it from a thread. Launched from the event loop, the launch itself stalled the
    loop 4-14 ms per reload (traced at 5M rules)."""
    args = (policy,) if now is None else (policy, repr(now))
    lines = run_idle("resolver.build", *args).splitlines()
    if not lines:
        raise ChildFailed("the build printed no result")
    try:
        result = json.loads(lines[-1])
    except ValueError as exc:
        raise ChildFailed(f"the build printed no result: {lines[-1][:200]!r}") from exc
    if not isinstance(result, dict):
        raise ChildFailed("the build printed no result")
    return result
