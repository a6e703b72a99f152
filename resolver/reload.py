"""Holding the current policy snapshot and replacing it safely.

Readers take `holder.current` once per query; a reload compiles a new snapshot off the event
loop, checks the policy's own `expect` samples, and only then swaps the one reference. Any
failure keeps the old snapshot serving and is reported. Reloads requested while one runs are
merged into one more run after it (a burst of SIGHUPs compiles at most twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resolver.stats import Stats
from resolver.yamlsource import ConfigError

log = logging.getLogger(__name__)

Compile = Callable[[Path], Any]


class PolicyHolder:
    def __init__(self, path: Path, stats: Stats, compile_policy: Compile) -> None:
        self.path = path
        self.stats = stats
        self._compile = compile_policy
        self.current: Any = None
        self.last_result: dict[str, Any] = {}
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self._again = False

    def load_initial(self) -> None:
        """First load, before serving: errors propagate (the process must not start on them)."""
        snapshot = self._compile(self.path)
        self._verify(snapshot)
        self._install(snapshot, 0.0)

    async def reload(self) -> dict[str, Any]:
        """Compile and swap; returns {ok, generation, error, seconds}. Merges concurrent calls."""
        if self._running is not None and not self._running.done():
            self._again = True
            return await asyncio.shield(self._running)
        self._running = asyncio.get_running_loop().create_task(self._reload_loop())
        return await asyncio.shield(self._running)

    async def _reload_loop(self) -> dict[str, Any]:
        result = await self._reload_once()
        while self._again:
            self._again = False
            result = await self._reload_once()
        return result

    async def _reload_once(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            snapshot = await asyncio.to_thread(self._compile, self.path)
            self._verify(snapshot)
        except ConfigError as exc:
            return self._failed(started, "\n".join(str(p) for p in exc.errors or exc.problems))
        except ExpectationsFailed as exc:
            return self._failed(started, str(exc))
        except Exception as exc:  # a broken list or policy must never take the server down
            log.exception("policy reload failed")
            return self._failed(started, f"{type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        self._install(snapshot, seconds)
        log.info(
            "policy reloaded generation=%s seconds=%.3f", self.stats.policy_generation, seconds
        )
        self.last_result = {
            "ok": True,
            "generation": self.stats.policy_generation,
            "error": None,
            "seconds": round(seconds, 3),
        }
        return self.last_result

    def _verify(self, snapshot: Any) -> None:
        failures = snapshot.check_expectations()
        if failures:
            raise ExpectationsFailed(failures)

    def _install(self, snapshot: Any, seconds: float) -> None:
        self.current = snapshot
        self.stats.reloads += 1
        self.stats.policy_generation += 1
        self.stats.reload_seconds_last = seconds
        self.stats.list_sizes = dict(snapshot.list_sizes)
        self.stats.list_updated = dict(getattr(snapshot, "list_updated", {}) or {})

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
            "seconds": round(time.monotonic() - started, 3),
        }
        return self.last_result


class ExpectationsFailed(Exception):
    """The compiled policy contradicts its own `expect` samples: it must not go live."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__("policy expectations failed: " + "; ".join(failures))
        self.failures = failures
