"""What the web apps need from the running resolver: the one seam between `http` and the DNS side.

The supervisor (`resolver.supervisor.Supervisor`) implements `ResolverControl`; the apps never
import the DNS server or the policy holder. Tests use a small in-memory implementation with real
data.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from resolver.policy.decision import Decision
from resolver.policy.snapshot import PolicySnapshot
from resolver.stats import Stats

if TYPE_CHECKING:
    from resolver.http.devices import DeviceSetup


class ResolverControl(Protocol):
    async def reload(self, accept_shrink: bool = False) -> dict[str, Any]:
        """Reload policy and lists (merged with other reload triggers, one at a time).

        Returns {"ok": bool, "generation": int, "error": str | None, "duration": float seconds}.
        A failed reload keeps the old snapshot serving and returns ok=False with the error.
        `accept_shrink`: the operator confirms that the mandated list really shrank.
        """
        ...

    def status(self) -> dict[str, Any]:
        """{"version", "policy_generation", "list_sizes": {category: rules}, "uptime": seconds,
        "listeners": [str, ...]} (more keys are passed through to the client as they are)."""
        ...

    async def explain(
        self, client: str, name: str, qtype: str = "A", at: datetime | None = None
    ) -> dict[str, Any]:
        """The same JSON as `safe-resolver explain --json`; raises ValueError on bad input.
        Never blocks the caller's event loop (the rule's line is looked up in a thread)."""
        ...

    async def flush_cache(self, name: str | None = None) -> int:
        """Drop cached answers for `name` (every entry if None) in every worker; returns how
        many went."""
        ...

    def stats(self) -> Stats:
        """The counters (read-only for the apps), as of the last `refresh_stats()` or push."""
        ...

    async def refresh_stats(self) -> None:
        """Collect every worker's counters now (what /metrics shows must be current)."""
        ...

    def block_reason(self, client: str, host: str) -> Decision | None:
        """Why `host` is blocked for `client` now, or None if it is not blocked (block page)."""
        ...

    def add_overlay_allow(self, profile: str, name: str, note: str) -> None:
        """Allow `name` for `profile` in the overlay file and start a reload.

        The real implementation calls `resolver.store.overlay.add_overlay_allow(path, ...)` with
        the configured overlay path, then schedules `reload()`. Raises ValueError for an unknown
        profile or an invalid name.
        """
        ...

    def device_setups(self) -> list[DeviceSetup]:
        """Each device of the policy with the encrypted endpoints it is set up with (empty
        when no encrypted listener is on or no policy is loaded)."""
        ...

    def policy_snapshot(self) -> PolicySnapshot | None:
        """The policy serving now (None before the first one), read-only: the dashboard's
        profile pages, schedules and list status read it."""
        ...
