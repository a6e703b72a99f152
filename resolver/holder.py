"""The policy snapshot one process serves, replaced by mapping a new snapshot file.

Readers take `holder.current` once per query. A replacement is two steps, so that every
process of the resolver swaps to a new generation or none does:
  1. `prepare(generation, path)` maps and verifies the snapshot file in the holder's own
     low-priority thread (building the name tables holds the GIL in short frames only);
  2. `commit(generation)` swaps the one reference on the event loop, then frees the old
     snapshot's tables in that thread, not in one long pause on the loop.
`abort(generation)` drops a prepared snapshot that will not go live.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from resolver.build.child import ChildFailed, build_in_child
from resolver.build.snapshotfile import SnapshotFileError, map_snapshot
from resolver.match.index import free_in_pieces
from resolver.policy.memo import DecisionMemo
from resolver.policy.snapshot import PolicySnapshot
from resolver.stats import Stats

log = logging.getLogger(__name__)
# While the thread maps a snapshot (millions of names), the GIL goes back to the event loop
# every 1 ms instead of 5 ms.
SWITCH_INTERVAL = 0.001
# The holder's thread runs at the lowest priority. Traced with perf at 5M rules: a
# normal-priority thread woken by the loop thread took the core from it and kept it 5 ms (the
# kernel protects a running task's slice) while the other core sat idle. At nice 19 a woken
# thread does not preempt the loop; it waits for a free core.
THREAD_NICE = 19
FREE_AFTER = 2.0  # seconds a replaced snapshot's tables stay mapped


class SnapshotHolder:
    """`current` is the snapshot this process serves (None until the first commit), `serving`
    the same with this process's memo of it: the one reference a query reads."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.current: PolicySnapshot | None = None
        self.serving: tuple[PolicySnapshot, DecisionMemo] | None = None
        self.path: Path | None = None
        self._prepared: tuple[int, Path, PolicySnapshot] | None = None
        self._thread = low_priority_thread()
        # What every snapshot gets before it serves: zone-transfer increments not compiled in
        # yet beside its mandated index (resolver.transfer.overlay). `refresh` re-applies it.
        self.transform: Callable[[PolicySnapshot], PolicySnapshot] | None = None

    async def prepare(
        self, generation: int, path: Path | str, *, starting: bool = False
    ) -> PolicySnapshot:
        """Map and check snapshot file `path` as `generation`; raises SnapshotFileError.

        `starting`: this process serves nothing yet (a worker's first snapshot), so nothing
        needs the low priority; at nice 19 on a core that serving siblings keep busy, a
        replacement worker's start took seconds longer."""
        self.abort()
        if starting:
            snapshot: PolicySnapshot = await asyncio.to_thread(map_snapshot, Path(path), generation)
        else:
            interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
            try:
                snapshot = await self.in_thread(map_snapshot, Path(path), generation)
            finally:
                sys.setswitchinterval(interval)
        if self.transform is not None:
            snapshot = self.transform(snapshot)
        self._prepared = (generation, Path(path), snapshot)
        return snapshot

    async def build(
        self, policy: Path | str, generation: int, now: float | None = None
    ) -> dict[str, Any]:
        """Build `policy` once, in the idle child, and prepare its snapshot as `generation`
        (overlay entries as of `now`). Returns the build's result; with "ok" False ("errors"
        say why) nothing is prepared."""
        try:
            built: dict[str, Any] = await self.in_thread(build_in_child, str(policy), now)
        except ChildFailed as exc:
            return {"ok": False, "errors": [str(exc)]}
        if not built.get("ok"):
            return {"ok": False, "errors": list(built.get("errors") or ["the build failed"])}
        try:
            await self.prepare(generation, built["snapshot"])
        except SnapshotFileError as exc:
            return {"ok": False, "errors": [str(exc)]}
        return built

    @property
    def prepared(self) -> PolicySnapshot:
        """The snapshot prepared and not yet committed (or aborted)."""
        assert self._prepared is not None, "nothing prepared"
        return self._prepared[2]

    def commit(self, generation: int) -> bool:
        """Serve the snapshot prepared as `generation`; False if none is prepared."""
        prepared = self._prepared
        if prepared is None or prepared[0] != generation:
            return False
        self._prepared = None
        _, path, snapshot = prepared
        old, self.current, self.path = self.current, snapshot, path
        self.serving = (snapshot, DecisionMemo(snapshot))
        # Move everything alive now, the new tables included, out of the cyclic collector's
        # reach: otherwise the next full collection walks millions of containers in one pause
        # (194 ms measured at 5M rules). Reference counting still frees them on replacement.
        gc.freeze()
        stats = self.stats
        stats.policy_generation = generation
        stats.list_sizes = dict(snapshot.list_sizes)
        if old is not None:
            self._free(old)
        return True

    def refresh(self) -> None:
        """Serve the current snapshot again through `transform` (new increments): the same
        mapped indexes, so nothing is freed."""
        if self.current is None or self.transform is None:
            return
        self.current = self.transform(self.current)
        self.serving = (self.current, DecisionMemo(self.current))

    def abort(self, generation: int | None = None) -> None:
        """Drop the prepared snapshot (only `generation`'s, if given)."""
        prepared = self._prepared
        if prepared is not None and (generation is None or prepared[0] == generation):
            self._prepared = None
            self._free(prepared[2])

    def _free(self, snapshot: PolicySnapshot) -> None:
        """Unmap and empty `snapshot`'s tables in the thread, FREE_AFTER seconds from now: a
        slow path that took the snapshot before the swap (explain, the block page) finishes
        on it first."""
        indexes = (snapshot.index, snapshot.mandated, snapshot.own)
        pieces = [piece for index in indexes if index is not None for piece in index.storage()]
        asyncio.get_running_loop().call_later(
            FREE_AFTER, self._thread.submit, free_in_pieces, pieces
        )

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` in the holder's own low-priority thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=False)


def low_priority_thread() -> ThreadPoolExecutor:
    """One thread at THREAD_NICE (benchmarks measure stalls with it too)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="holder", initializer=_lower)


def _lower() -> None:
    """Initializer of the holder's thread (on Linux the nice value belongs to the thread)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), THREAD_NICE)
