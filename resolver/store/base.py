"""The storage interface: what the query log, reports and the web apps need from a database.

Two backends implement `QueryStore`: SQLite (`resolver.store.sqlite`, the default: embedded,
nothing to install, right for a school box) and PostgreSQL (`resolver.store.postgresql`, for an
ISP: many servers, one database, day partitions). `resolver.store.backends.open_query_store`
picks one; nothing above this module touches SQL. Every method is blocking: async callers run
them in a thread (`asyncio.to_thread`), the query log calls them from its own writer thread.

Each backend keeps its schema as numbered migrations per component (`MIGRATIONS` in its module,
applied in order and recorded in a `schema_versions` table), so later tables are added as new
components or new versions, never by editing a step that has run. The `reports` component holds
the daily roll-ups and the audit trail (`resolver.store.reportdb`), in the same database as the
raw query log but kept apart: `purge` and the raw log's retention never touch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from resolver.rollup import Batch
from resolver.store.audit import AuditEntry
from resolver.store.events import QueryEvent
from resolver.store.reportdb import RollupRows

SEARCH_LIMIT_MAX = 1000
SEARCH_OFFSET_MAX = 100_000  # rows a search may page past (newest first; deeper: narrow the time)

# One schema step: the statements that take a component from version N-1 to N, run in one
# transaction. A component's migrations are a tuple of steps: version N is `steps[N - 1]`.
Migration = tuple[str, ...]


def pending_steps(
    component: str, steps: tuple[Migration, ...], current: int
) -> tuple[Migration, ...]:
    """The steps to run on a database at version `current`.

    A database from a newer safe-resolver (a version this one does not know) is refused rather
    than written with an older idea of the schema.
    """
    if current > len(steps):
        raise RuntimeError(
            f"{component} schema version {current} is newer than this safe-resolver knows"
            f" ({len(steps)}): upgrade safe-resolver"
        )
    return steps[current:]


class StoreUnavailable(Exception):
    """The database cannot be reached (down, restarting, refused the login): a retry may work.

    Any other exception from `write` means this batch cannot be stored (retrying would not help).
    The message names the database without its password.
    """


@dataclass(frozen=True, slots=True)
class QueryFilter:
    """Query-log search criteria; None means "any". `qname` matches the name and its subdomains,
    `name_contains` any name with that text in it. `offset` skips that many of the newest rows
    (the dashboard's pages: it pins `until` so that new rows do not shift them)."""

    since: float | None = None
    until: float | None = None
    client: str | None = None  # as stored (pseudonym, address, or nothing)
    qname: str | None = None
    profile: str | None = None
    action: str | None = None
    category: str | None = None
    limit: int = 100
    qtype: str | None = None
    name_contains: str | None = None
    offset: int = 0
    profiles: tuple[str, ...] | None = None  # any of these (a teacher's); () matches nothing


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

    name: str  # for messages: the file, or the database without its password

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
        """Delete rows older than `before` exactly (every query-log row if None); how many."""
        ...

    def expire(self, before: float) -> int:
        """Retention: remove rows older than `before` in the backend's cheapest unit; how many.

        SQLite deletes exactly those rows; PostgreSQL drops whole day partitions that end at or
        before `before` (so a row outlives `before` by less than a day, and no row is deleted
        one by one).
        """
        ...

    def maintain(self, now: float) -> None:
        """Housekeeping the writer runs at start and hourly (PostgreSQL: the next days'
        partitions are created ahead, so a batch at midnight never waits for DDL; both: past
        days' most-blocked domains are cut to the top TOP_STORED)."""
        ...

    # -- roll-ups and the audit trail: never touched by `purge` or `expire` ----------------------

    def write_rollups(self, batch: Batch, server: str) -> None:
        """Add a batch of roll-up counts and `server`'s day marks, in one transaction."""
        ...

    def write_audit(self, entries: Sequence[AuditEntry], server: str) -> None:
        """Append audit rows, in one transaction."""
        ...

    def read_rollups(self, first: str, last: str, profile: str | None = None) -> RollupRows:
        """The roll-up rows of local days [first, last] (ISO dates)."""
        ...

    def read_audit(
        self, since: float | None = None, until: float | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit rows in [since, until), oldest first."""
        ...

    def lists_in_force(self, since: float, until: float) -> list[dict[str, Any]]:
        """The list versions in force at some time in [since, until)."""
        ...

    def find_reports(self, digest: str) -> list[dict[str, Any]]:
        """The audit rows of reports whose bytes have this SHA-256."""
        ...

    def expire_reports(self, before_day: str, before_ts: float) -> int:
        """Retention of the roll-ups (days before `before_day`) and the audit trail (rows
        before `before_ts`); how many rows went."""
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

    def list_unblock(
        self, status: str | None = "pending", limit: int = 200
    ) -> list[dict[str, Any]]: ...

    def get_unblock(self, request_id: int) -> dict[str, Any] | None: ...

    def set_unblock_status(self, request_id: int, status: str, decided_by: str = "admin") -> bool:
        """Move a pending request to approved/rejected; False if it is not pending."""
        ...

    def add_content_report(self, url: str, note: str) -> int | None:
        """Store a report of harmful content; None when the cap is reached."""
        ...

    def list_content_reports(self, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first; `offset` skips that many (the inbox's pages)."""
        ...

    def count_content_reports(self) -> int:
        """How many reports are kept (the inbox shows every one, page by page)."""
        ...

    def delete_content_reports(self, ids: Sequence[int]) -> int:
        """Delete these reports (the inbox's Delete); how many went."""
        ...

    def expire(self, unblock_before: float, reports_before: float) -> int:
        """Retention: decided requests and content reports older than the given times."""
        ...

    def close(self) -> None: ...
