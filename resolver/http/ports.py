"""What the web apps need from the running resolver: the one seam between `http` and the DNS side.

The supervisor (`resolver.supervisor.Supervisor`) implements `ResolverControl`; the apps never
import the DNS server or the policy holder. Tests use a small in-memory implementation with real
data.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from resolver.policy.blockinfo import BlockInfo
from resolver.policy.decision import Decision
from resolver.policy.snapshot import PolicySnapshot
from resolver.stats import Stats

if TYPE_CHECKING:
    from resolver.http.devices import DeviceSetup
    from resolver.store.overlay import OverlayEntry


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

    def policy_now(self) -> datetime:
        """Now, in the policy's time zone, on the clock overlay entries expire by ("for 1
        hour", "until the end of today")."""
        ...

    def block_info(self, client: str, host: str) -> BlockInfo | None:
        """What the block page says about `host` for `client` now: the decision, the profile's
        display name, the service's name, when a schedule block lifts; None if not blocked."""
        ...

    def school_ca(self) -> bytes | None:
        """The school CA's certificate (PEM) for devices to install, or None when the block
        page has no CA (`blockpage.ca`)."""
        ...

    async def overlay_entries(self) -> list[OverlayEntry]:
        """The overlay's approvals and pauses still in force."""
        ...

    async def overlay_add(self, entry: OverlayEntry) -> dict[str, Any]:
        """Write `entry` to the overlay file (it replaces one with the same profile and target)
        and reload; returns the reload's result (as `reload()`). Raises ValueError when it
        cannot apply: no overlay file or policy from a bundle, an unknown profile, a category
        the profile does not block, an invalid name."""
        ...

    async def overlay_remove(self, entry_id: str) -> tuple[OverlayEntry, dict[str, Any]] | None:
        """Remove the entry with this id and reload: (the entry, the reload's result), or None
        when there is no such entry."""
        ...

    def device_setups(self) -> list[DeviceSetup]:
        """Each device of the policy with the encrypted endpoints it is set up with (empty
        when no encrypted listener is on or no policy is loaded)."""
        ...

    def policy_snapshot(self) -> PolicySnapshot | None:
        """The policy serving now (None before the first one), read-only: the dashboard's
        profile pages, schedules and list status read it."""
        ...
