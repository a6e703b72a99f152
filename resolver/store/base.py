"""The storage interface: what the query log, reports and the web apps need from a database.

SQLite (`resolver.store.sqlite`) is the only implementation: embedded, nothing to install. A
larger site could add PostgreSQL by implementing these two Protocols; nothing above this module
touches SQL. Every method is blocking: async callers run them in a thread (`asyncio.to_thread`),
the query log calls them from its own writer thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from resolver.store.events import QueryEvent

SEARCH_LIMIT_MAX = 1000


@dataclass(frozen=True, slots=True)
class QueryFilter:
    """Query-log search criteria; None means "any". `qname` matches the name and its subdomains."""

    since: float | None = None
    until: float | None = None
    client: str | None = None  # as stored (pseudonym, address, or nothing)
    qname: str | None = None
    profile: str | None = None
    action: str | None = None
    category: str | None = None
    limit: int = 100


@dataclass(slots=True)
class Summary:
    """Aggregate figures for a period: what reports and the dashboard show. No client appears."""

    queries: int = 0
    blocked: int = 0
    rewritten: int = 0
    mandated: int = 0  # blocked by a list mandated by the authorities
    safesearch: int = 0  # safe-search rewrites
    per_day: list[dict[str, Any]] = field(default_factory=list)  # day, queries, blocked, ...
    per_profile: list[dict[str, Any]] = field(default_factory=list)  # profile, queries, ...
    by_category: list[dict[str, Any]] = field(default_factory=list)  # category, blocked
    top_blocked: list[dict[str, Any]] = field(default_factory=list)  # qname, blocked


class QueryStore(Protocol):
    """Where query events are kept."""

    def write(self, events: Sequence[QueryEvent]) -> int:
        """Store a batch in one transaction; `client` is already pseudonymized ("" = none)."""
        ...

    def search(self, flt: QueryFilter) -> list[dict[str, Any]]:
        """Newest first, at most `min(flt.limit, SEARCH_LIMIT_MAX)` rows."""
        ...

    def summary(
        self, since: float, until: float, profile: str | None = None, top: int = 20
    ) -> Summary:
        """Aggregates over [since, until); days are the server's local calendar days."""
        ...

    def purge(self, before: float | None) -> int:
        """Delete rows older than `before` (every row if None); returns how many."""
        ...

    def close(self) -> None: ...


class RequestStore(Protocol):
    """Unblock requests and harmful-content reports sent from the block page.

    Neither holds personal data: no client address, no name; only the site, the profile and the
    category as the page showed them, and an optional short free-text note.
    """

    def add_unblock(self, host: str, profile: str, category: str | None, note: str) -> int | None:
        """Store a pending request; None when the pending-request cap is reached."""
        ...

    def list_unblock(self, status: str | None = "pending", limit: int = 200) -> list[dict]: ...

    def get_unblock(self, request_id: int) -> dict | None: ...

    def set_unblock_status(self, request_id: int, status: str, decided_by: str = "admin") -> bool:
        """Move a pending request to approved/rejected; False if it is not pending."""
        ...

    def add_content_report(self, url: str, note: str) -> int | None:
        """Store a report of harmful content; None when the cap is reached."""
        ...

    def list_content_reports(self, limit: int = 200) -> list[dict]: ...

    def close(self) -> None: ...
