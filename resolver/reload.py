"""Holding the current policy snapshot and replacing it without stalling DNS.

Readers take `holder.current` once per query. A reload:
  1. compiles the policy in a fresh worker *process* at idle CPU priority, which validates it
     and writes the compiled list index to the snapshot cache (building a multi-million-rule
     index resizes huge dicts in single C calls that would hold our GIL for over a second);
  2. compiles again in the reload's own thread here (nice 19), which now loads the index from
     that cache in small frames (the GIL is released between them);
  3. checks the policy's own `expect` samples, then swaps the one reference;
  4. frees the old index table by table in that thread, not in one long pause on the loop,
     keeping its region for SPARE_SECONDS in case another reload follows.
Any failure keeps the old snapshot serving and is reported. Reloads requested while one runs
are merged into one more run after it (a burst of SIGHUPs compiles at most twice).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from resolver.match.index import free_in_pieces
from resolver.match.packed import SPARE
from resolver.policy.compile import compile_policy
from resolver.policy.snapshot import PolicySnapshot
from resolver.stats import Stats
from resolver.worker import WorkerFailed, run_idle
from resolver.yamlsource import ConfigError

log = logging.getLogger(__name__)
RELOAD_SWITCH_INTERVAL = 0.001  # seconds; see PolicyHolder._reload_once
# The reload's own thread runs at the lowest priority. Traced with perf at 5M rules: handed the
# GIL, a normal-priority reload thread woken by the loop thread took the core from it and kept it
# 5 ms (the kernel protects a running task's slice) while the other core sat idle. At nice 19 a
# woken reload thread does not preempt the loop; it waits for a free core.
RELOAD_NICE = 19
# A retired index's region is kept this long for the next reload to load into
# (`packed.SpareRegions`): reloads in quick succession then fault in no fresh memory. Until then
# memory stays at its reload peak, two regions.
SPARE_SECONDS = 20.0


class ReloadRejected(Exception):
    """The new policy must not go live (errors, or its own `expect` samples fail)."""


def _compile_in_worker(path: str) -> list[str]:
    """Runs in the worker process: compile (filling the index cache); return error lines."""
    try:
        compile_policy(path)
    except ConfigError as exc:
        return [str(p) for p in exc.errors or exc.problems]
    except Exception as exc:  # the reload that asked reports it; the traceback goes to stderr
        log.exception("policy compile failed")
        return [f"{type(exc).__name__}: {exc}"]
    return []


class PolicyHolder:
    def __init__(self, path: Path, stats: Stats) -> None:
        self.path = path
        self.stats = stats
        self.current: PolicySnapshot | None = None
        self.last_result: dict[str, Any] = {}
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self._again = False
        self._worker = reload_thread()
        self.spare_seconds = SPARE_SECONDS
        self._spare_timer: asyncio.TimerHandle | None = None
        # Called with each snapshot just before it goes live (zone-transfer increments not
        # compiled into it yet: resolver.transfer.overlay).
        self.prepare: list[Callable[[PolicySnapshot], None]] = []

    def load_initial(self) -> None:
        """First load, before serving: errors propagate (the process must not start on them)."""
        snapshot = compile_policy(self.path)
        _verify(snapshot)
        self._install(snapshot, 0.0)

    async def reload(self) -> dict[str, Any]:
        """Compile and swap; returns {ok, generation, error, duration}. Merges concurrent calls."""
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._reload_loop())
        else:
            self._again = True
        return await asyncio.shield(self._running)

    async def _reload_loop(self) -> dict[str, Any]:
        result = await self._reload_once()
        while self._again:
            self._again = False
            result = await self._reload_once()
        return result

    async def _reload_once(self) -> dict[str, Any]:
        started = time.monotonic()
        # While the reload thread loads and frees millions of names, hand the GIL back to the
        # event loop every 1 ms instead of 5 ms: the measured longest stall drops below 10 ms.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(RELOAD_SWITCH_INTERVAL)
        try:
            return await self._reload_steps(started)
        finally:
            sys.setswitchinterval(interval)

    async def _reload_steps(self, started: float) -> dict[str, Any]:
        try:
            errors = await self._in_thread(_compile_in_fresh_process, str(self.path))
            if errors:
                raise ReloadRejected("\n".join(errors))
            snapshot = await self._in_thread(compile_policy, self.path)
            _verify(snapshot)
        except (ReloadRejected, ConfigError, WorkerFailed) as exc:
            return self._failed(started, str(exc))
        except Exception as exc:  # a broken list or policy must never take the server down
            log.exception("policy reload failed")
            return self._failed(started, f"{type(exc).__name__}: {exc}")
        old = self.current
        seconds = time.monotonic() - started
        self._install(snapshot, seconds)
        if old is not None:
            indexes = (old.index, old.mandated, old.own)
            pieces = [piece for index in indexes if index is not None for piece in index.storage()]
            del old, indexes
            await self._in_thread(free_in_pieces, pieces, SPARE)
            self._release_spares_later()
        log.warning(
            "policy reloaded generation=%s seconds=%.3f", self.stats.policy_generation, seconds
        )
        self.last_result = {
            "ok": True,
            "generation": self.stats.policy_generation,
            "error": None,
            "duration": round(seconds, 3),
        }
        return self.last_result

    def _release_spares_later(self) -> None:
        if self._spare_timer is not None:
            self._spare_timer.cancel()
        loop = asyncio.get_running_loop()
        self._spare_timer = loop.call_later(self.spare_seconds, self._release_spares)

    def _release_spares(self) -> Future[None]:
        """Unmap the regions no reload took, in the reload's thread (one long system call)."""
        self._spare_timer = None
        return self._worker.submit(free_in_pieces, SPARE.drain())

    def release_spares_now(self) -> Future[None] | None:
        """What the spare timer does when it fires, now (shutdown, tests); None if unarmed."""
        if self._spare_timer is None:
            return None
        self._spare_timer.cancel()
        return self._release_spares()

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the reload's own low-priority thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def _install(self, snapshot: PolicySnapshot, seconds: float) -> None:
        for prepare in self.prepare:
            prepare(snapshot)
        self.current = snapshot
        # Move everything alive now, the new index's millions of containers included, out of
        # the cyclic collector's reach: otherwise the next full collection, triggered by any
        # allocation on the event loop, walks them all in one pause (194 ms measured at 5M).
        # Reference counting still frees them when the snapshot is replaced.
        gc.freeze()
        self.stats.reloads += 1
        self.stats.policy_generation += 1
        self.stats.reload_seconds_last = seconds
        self.stats.list_sizes = dict(snapshot.list_sizes)
        self.stats.list_updated = _list_times(snapshot)

    def _failed(self, started: float, error: str) -> dict[str, Any]:
        self.stats.reload_failures += 1
        self.stats.reload_last_error = error
        log.error(
            "policy reload failed, keeping generation %s: %s", self.stats.policy_generation, error
        )
        self.last_result = {
            "ok": False,
            "generation": self.stats.policy_generation,
            "error": error,
            "duration": round(time.monotonic() - started, 3),
        }
        return self.last_result


def reload_thread() -> ThreadPoolExecutor:
    """The reload's own thread, at RELOAD_NICE (benchmarks measure stalls with it too)."""
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="reload", initializer=_lower_priority
    )


def _lower_priority() -> None:
    """Initializer of the reload thread (on Linux the nice value belongs to the thread)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RELOAD_NICE)


def _list_times(snapshot: PolicySnapshot) -> dict[str, float]:
    """Per category, when its newest list file changed (`lists update` replaces files whole)."""
    times: dict[str, float] = {}
    for source in snapshot.sources:
        try:
            mtime = os.stat(source["path"]).st_mtime
        except OSError:
            continue
        times[source["category"]] = max(mtime, times.get(source["category"], 0.0))
    return times


def _verify(snapshot: PolicySnapshot) -> None:
    failures = snapshot.check_expectations()
    if failures:
        raise ReloadRejected("policy expectations failed: " + "; ".join(failures))


def _compile_in_fresh_process(path: str) -> list[str]:
    """Compile in a fresh idle-priority process (`python -m resolver.reload PATH`); its error
    lines. Launched and awaited from a thread: started from the event loop, the launch itself
    stalled the loop 4-14 ms per reload (traced at 5M rules)."""
    lines = run_idle("resolver.reload", path).splitlines()
    if not lines:
        raise WorkerFailed("the compile worker printed no result")
    return json.loads(lines[-1])


if __name__ == "__main__":  # the worker process
    print(json.dumps(_compile_in_worker(sys.argv[1])))
