"""Run a job in a fresh Python process at idle CPU priority, so that it never delays DNS.

Why: a reload compiles in a child process (building a multi-million-rule index would hold our
GIL for seconds). At normal priority that child competes with the event loop for a core, and
the kernel lets a running task finish its slice before a woken one gets the core: traced with
`perf` at 5M rules, the child's interpreter start-up alone kept the loop thread waiting 4-6 ms
at every reload. A SCHED_IDLE task is preempted at once by any normal one: the loop always
comes first, the compile gets the rest. `posix_spawn` returns as soon as the child has exec'd
(glibc uses vfork semantics, so no page tables of a server holding gigabytes are copied), and
the policy is set right then: the child's start-up runs idle. (posix_spawn's own scheduler
attribute refuses SCHED_IDLE, and a thread that made itself idle to pass the policy on could
not leave it again without privilege, while holding our GIL at idle priority.)
"""

from __future__ import annotations

import contextlib
import os
import sys

IDLE = os.sched_param(0)


class WorkerFailed(Exception):
    """The child exited with an error status or was killed."""


def run_idle(module: str, *args: str) -> str:
    """Run `python -m module *args` as a SCHED_IDLE child and return its standard output.
    Blocks until the child exits: call it from a thread, never from the event loop."""
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
    with contextlib.suppress(OSError):  # exited already, or a sandbox refuses: it runs anyway
        os.sched_setscheduler(pid, os.SCHED_IDLE, IDLE)
    with open(read_end, "rb") as pipe:
        output = pipe.read()
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code > 0:
        raise WorkerFailed(f"{module} worker exited with status {code}")
    if code < 0:
        raise WorkerFailed(f"{module} worker killed by signal {-code}")
    return output.decode()


def _environment() -> dict[str, str]:
    """Ours, with our import path: the child finds the same modules even when we were started
    from a source tree that is not installed."""
    path = [os.path.abspath(entry) for entry in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
