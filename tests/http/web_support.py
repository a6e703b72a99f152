"""An in-memory `ResolverControl` with real data, for the web-app tests (no mock library).

It keeps a small policy table (client -> profile, blocked names -> Decision), a real `Stats`,
a small answer cache, and writes approvals through the real overlay writer. The lead's
server object implements the same Protocol for real.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from resolver.http.devices import DeviceSetup, device_setups
from resolver.policy.blockinfo import BlockInfo
from resolver.policy.decision import Action, BlockMode, Decision, Tier
from resolver.stats import Stats, UpstreamStats
from resolver.store.events import QueryEvent
from resolver.store.overlay import OverlayEntry, add_entry, read_overlay, remove_entry

PROFILE_OF = {"127.0.0.1": "students", "::1": "students", "127.0.0.2": "staff"}
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AN_TOKEN = "an0phone0token0123456"


def _block(profile: str, category: str | None, tier: Tier = Tier.CATEGORY) -> Decision:
    return Decision(Action.BLOCK, tier, profile, category=category, block_mode=BlockMode.BLOCKPAGE)


class ControlImpl:
    """Implements `resolver.http.ports.ResolverControl` over plain in-memory tables."""

    def __init__(self, overlay_path: Path) -> None:
        self.overlay_path = overlay_path
        self.clock = time.time  # what overlay entries expire by (tests move it)
        self.generation = 1
        self.fail_next_reload = False
        self.started = time.time()
        self.blocked: dict[str, Decision] = {
            "adult.example": _block("students", "adult"),
            "casino.example": _block("students", "gambling"),
            "banned.example": _block("students", None, Tier.MANDATED),
        }
        self.cache = {"a.example": 1, "b.example": 2, "c.example": 3}
        self.display: dict[str, dict[str, str]] = {}  # profile -> display names (block page)
        self.facts: dict[str, BlockInfo] = {}  # host -> what the page is told, when set
        self.ca_pem: bytes | None = None  # the school CA's certificate (PEM)
        self._stats = Stats()
        s = self._stats
        s.queries[("udp", "A", "allowed", "students", "")] = 90
        s.queries[("udp", "A", "blocked", "students", "adult")] = 7
        s.queries[("tcp", "AAAA", "blocked", "staff", "gambling")] = 3
        s.queries[("udp", "A", "rewritten", "students", "")] = 2
        for seconds in (0.0002, 0.002, 0.002, 0.03, 3.0):
            s.observe_latency(seconds)
        s.cache_hits, s.cache_misses, s.cache_size = 60, 40, 3
        s.upstreams["192.0.2.53:53"] = UpstreamStats(
            "192.0.2.53:53", queries=40, errors=1, latency_sum=0.4, latency_count=40
        )
        s.upstreams["198.51.100.53:53"] = UpstreamStats("198.51.100.53:53", healthy=False)
        s.list_sizes = {"adult": 1200, "gambling": 300}
        s.list_updated = {"adult": time.time() - 3600, "gambling": time.time() - 10 * 86400}
        s.malformed["short-header"] = 4
        s.querylog_dropped = 5
        s.policy_generation = self.generation

    async def reload(self, accept_shrink: bool = False) -> dict[str, Any]:
        if self.fail_next_reload:
            self.fail_next_reload = False
            self._stats.reload_failures += 1
            return {"ok": False, "generation": self.generation, "error": "x.yaml:3: bad key",
                    "duration": 0.01}  # fmt: skip
        self.generation += 1
        self._stats.reloads += 1
        self._stats.policy_generation = self.generation
        return {"ok": True, "generation": self.generation, "error": None, "duration": 0.02}

    def status(self) -> dict[str, Any]:
        return {
            "version": "0.1.0",
            "policy_generation": self.generation,
            "list_sizes": dict(self._stats.list_sizes),
            "uptime": time.time() - self.started,
            "listeners": ["udp 127.0.0.1:5335"],
        }

    async def explain(
        self, client: str, name: str, qtype: str = "A", at: datetime | None = None
    ) -> dict[str, Any]:
        if client not in PROFILE_OF:
            raise ValueError(f"unknown client {client!r}")
        decision = self.blocked.get(name)
        return {
            "client": client,
            "profile": PROFILE_OF[client],
            "name": name,
            "qtype": qtype,
            "at": at.isoformat() if at else None,
            "action": decision.action.value if decision else "allow",
            "tier": decision.tier.value if decision else "default",
        }

    async def flush_cache(self, name: str | None = None) -> int:
        if name is None:
            n = len(self.cache)
            self.cache.clear()
            return n
        return 1 if self.cache.pop(name, None) is not None else 0

    def stats(self) -> Stats:
        return self._stats

    async def refresh_stats(self) -> None:
        return None

    def block_reason(self, client: str, host: str) -> Decision | None:
        decision = self.blocked.get(host)
        return decision if decision and client in PROFILE_OF else None

    def block_info(self, client: str, host: str) -> BlockInfo | None:
        if host in self.facts and client in PROFILE_OF:
            return self.facts[host]
        decision = self.block_reason(client, host)
        if decision is None:
            return None
        return BlockInfo(decision, dict(self.display.get(decision.profile, {})))

    def school_ca(self) -> bytes | None:
        return self.ca_pem

    def device_setups(self) -> list[DeviceSetup]:
        paths = {"an-phone": f"family/{AN_TOKEN}", "binh-tablet": "family/b1nh0tablet0token0789"}
        return device_setups(paths, [443], [853], "dns.example.vn")

    def policy_snapshot(self) -> None:
        return None  # no compiled policy: the dashboard's policy pages say so

    def policy_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), ZONE)

    async def overlay_entries(self) -> list[OverlayEntry]:
        return [e for e in read_overlay(self.overlay_path, ZONE) if not e.expired(self.clock())]

    async def overlay_add(self, entry: OverlayEntry) -> dict[str, Any]:
        if entry.profile not in PROFILE_OF.values():
            raise ValueError(f"unknown profile {entry.profile!r}")
        mandated = self.blocked.get(entry.target)
        if entry.target_kind == "name" and mandated and mandated.tier is Tier.MANDATED:
            raise ValueError(
                f"{entry.target} is on the authorities' mandated list"
            )  # as the real one
        add_entry(self.overlay_path, entry, ZONE)
        if entry.target_kind == "name":
            self.blocked.pop(entry.target, None)  # what the reload the real one starts would do
        return await self.reload()

    async def overlay_remove(self, entry_id: str) -> tuple[OverlayEntry, dict[str, Any]] | None:
        gone = remove_entry(self.overlay_path, entry_id, ZONE)
        return None if gone is None else (gone, await self.reload())


def event(ts: float, **fields: Any) -> QueryEvent:
    """A QueryEvent with sensible defaults."""
    base = {
        "ts": ts, "client": "192.0.2.10", "profile": "students", "qname": "ok.example",
        "qtype": "A", "action": "allowed", "tier": "default", "category": None, "rcode": 0,
        "latency_ms": 1.5, "transport": "udp", "cached": False,
    }  # fmt: skip
    return QueryEvent(**(base | fields))
