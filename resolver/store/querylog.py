"""The query log: a bounded in-memory queue filled by the DNS path, emptied by one writer thread.

`submit()` is what the DNS path calls for every logged answer: one length check and one
`deque.append`, never blocking and never raising. When the queue is full the event is dropped
and counted (`stats.querylog_dropped`): DNS answers never wait for the database. The writer
thread owns the only write connection (database calls block, so they stay off the event loop),
writes in batches of `batch` rows per transaction (SQLite) or per COPY (PostgreSQL),
pseudonymizes client addresses on the way in (see `resolver.store.pseudonym`), and once an hour
runs the store's housekeeping and drops rows older than `retention_days`.

When the database cannot be reached (`StoreUnavailable`: PostgreSQL down or restarting) the
writer keeps the batch it holds, lets the queue fill (then `submit` drops and counts), logs
once, and retries after 1, 2, 4 ... up to 10 s; every failed attempt counts in
`stats.querylog_failed_batches`. A batch the database refuses for another reason is dropped and
counted. `close()` drains the queue before returning, except in an outage, where what is left is
counted as dropped at once: a stop never waits for a database that is down.

Per-profile "do not log" is the caller's decision: events for a decision with `log=False` must
simply not be submitted.

The same thread writes the daily roll-ups and the audit trail (`resolver.rollup`,
`resolver.store.audit`) to the same database: every ROLLUP_EVERY seconds it takes what the
supervisor folded (with a heartbeat marking the day as covered) and adds it in one
transaction; audit entries go as soon as they come. Neither is ever dropped for a full queue
or an outage: a batch that cannot be written is put back and goes with the next one. They have
their own retention (`report_retention_days`), applied in the same hourly sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from resolver.rollup import RollupFold, local_day
from resolver.stats import Stats
from resolver.store.audit import AuditEntry, server_name
from resolver.store.backends import open_query_store
from resolver.store.base import QueryFilter, QueryStore, StoreUnavailable, Summary
from resolver.store.events import QueryEvent
from resolver.store.pseudonym import PSEUDONYM_DIGITS, Pseudonymizer

log = logging.getLogger(__name__)

CLIENT_MODES = ("pseudonymized", "full", "none")
PURGE_EVERY = 3600.0  # seconds between retention sweeps
RETRY_FIRST = 1.0  # seconds before the first retry after the database became unreachable
RETRY_MAX = 10.0  # the back-off doubles up to this
ROLLUP_EVERY = 5.0  # seconds between roll-up writes: what a crash of the supervisor may lose


class QueryLog:
    """Asynchronous, batched, privacy-preserving query log (SQLite by default, or PostgreSQL)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        backend: str = "sqlite",
        dsn: str | None = None,
        clients: str = "pseudonymized",
        retention_days: int | None = 30,
        queue_size: int = 10000,
        batch: int = 500,
        flush_interval: float = 1.0,
        key_rotation: str = "daily",
        stats: Stats | None = None,
        rollups: RollupFold | None = None,
        report_retention_days: int | None = None,
    ) -> None:
        if clients not in CLIENT_MODES:
            raise ValueError(f"querylog.clients must be one of {', '.join(CLIENT_MODES)}")
        if queue_size < 1 or batch < 1:
            raise ValueError("querylog.queue_size and batch must be positive")
        if retention_days is not None and retention_days < 1:
            raise ValueError("querylog.retention_days must be at least 1 (or null to keep all)")
        self.path = Path(path) if path is not None else None
        self.backend = backend
        self._dsn = dsn
        self.clients = clients
        self.retention_days = retention_days
        self.stats = stats if stats is not None else Stats()
        self._queue: deque[QueryEvent] = deque()
        self._queue_size = queue_size
        self._batch = batch
        self._flush_interval = flush_interval
        self._pseudonym = Pseudonymizer(key_rotation)
        self._wake = threading.Event()
        self._closed = True
        self._thread: threading.Thread | None = None
        self._writer: QueryStore | None = None
        self._reader: QueryStore | None = None
        self._pending: list[QueryEvent] = []  # a pseudonymized batch waiting for the database
        self._outage_since: float | None = None  # monotonic time the database became unreachable
        self._outage_dropped = 0  # querylog_dropped when the outage began
        self._retry_delay = RETRY_FIRST
        self._retry_at = 0.0  # monotonic time of the next attempt in an outage
        self._next_sweep = 0.0  # unix time of the next housekeeping and retention round
        self.rollups = rollups
        self.report_retention_days = report_retention_days
        self.server = server_name()
        self._audit: deque[AuditEntry] = deque()
        self._next_rollup = 0.0  # unix time of the next roll-up write

    async def start(self) -> None:
        """Open the stores (SQLite: raises on a bad path; PostgreSQL: connects in the writer,
        so a database that is down never stops DNS) and start the writer thread."""
        self._writer = await asyncio.to_thread(self._open)
        self._reader = await asyncio.to_thread(self._open)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="querylog-writer", daemon=True)
        self._thread.start()

    def submit(self, event: QueryEvent) -> None:
        """Queue one event; O(1), never blocks, never raises. Call from the event-loop thread."""
        queue = self._queue
        if self._closed or len(queue) >= self._queue_size:
            self.stats.querylog_dropped += 1
            return
        queue.append(event)
        if len(queue) >= self._batch:
            self._wake.set()

    def audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (`resolver.store.audit.AuditSink`); written within a second,
        kept in memory through an outage, never dropped for a full queue."""
        self._audit.append(entry)
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def close(self) -> None:
        """Stop accepting events, write everything queued (in an outage: count it as dropped),
        close the database."""
        if self._thread is None:
            return
        self._closed = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        for store in (self._writer, self._reader):
            if store is not None:
                store.close()

    def _open(self) -> QueryStore:
        return open_query_store(self.backend, path=self.path, dsn=self._dsn)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._outage_since is None:
                self._wake.wait(min(self._flush_interval, ROLLUP_EVERY))
            else:
                self._wake.wait(max(0.0, self._retry_at - time.monotonic()))
            self._wake.clear()
            if self.rollups is not None:
                self.rollups.beat(time.time())
            if self._outage_since is None or time.monotonic() >= self._retry_at:
                self._drain()
                # In an outage a held batch is the probe; with none, the housekeeping is.
                in_outage = self._outage_since is not None
                if time.time() >= self._next_sweep and not (in_outage and self._pending):
                    self._sweep()
            if self._outage_since is None:
                self._write_reports(final=self._closed)
            if self._closed:
                if self._outage_since is not None:  # never wait for a database that is down
                    self.stats.querylog_dropped += len(self._pending) + len(self._queue)
                    self._pending, self._queue = [], deque()
                    if self.rollups is not None and self.rollups.take():
                        log.error("query log: the roll-ups of the last seconds are lost (outage)")
                    return
                if not self._queue and not self._pending:
                    return

    def _drain(self) -> None:
        """Write everything queued, a batch at a time, until done or the database is gone."""
        assert self._writer is not None
        queue = self._queue
        while self._pending or queue:
            if not self._pending:
                n = min(self._batch, len(queue))
                self._pending = [self._private(queue.popleft()) for _ in range(n)]
            try:
                self.stats.querylog_written += self._writer.write(self._pending)
            except StoreUnavailable as exc:  # keep the batch; retry after the back-off
                self.stats.querylog_failed_batches += 1
                self._unavailable(exc)
                return
            except Exception:  # disk full, bad row...: count, carry on, never kill the thread
                self.stats.querylog_failed_batches += 1
                self.stats.querylog_dropped += len(self._pending)
                log.exception("query log: could not write %d events", len(self._pending))
            else:
                self._available()
            self._pending = []

    def _unavailable(self, exc: StoreUnavailable) -> None:
        """Back off; log once per outage (when it starts), not at every retry."""
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_dropped = self.stats.querylog_dropped
            self._retry_delay = RETRY_FIRST
            log.warning(
                "query log: cannot write (%s); DNS goes on, up to %d events wait and the rest"
                " are dropped and counted; retrying every %.0f-%.0f s",
                exc, self._queue_size, RETRY_FIRST, RETRY_MAX,
            )  # fmt: skip
        else:
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        self._retry_at = time.monotonic() + self._retry_delay

    def _available(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "query log: writing again after %.0f s; %d events were dropped meanwhile",
                time.monotonic() - self._outage_since,
                self.stats.querylog_dropped - self._outage_dropped,
            )
            self._outage_since = None

    def _private(self, event: QueryEvent) -> QueryEvent:
        if self.clients == "pseudonymized":
            return event._replace(client=self._pseudonym(event.client, event.ts))
        if self.clients == "none":
            return event._replace(client="")
        return event

    def _write_reports(self, final: bool) -> None:
        """Audit entries now, roll-ups every ROLLUP_EVERY seconds (and at the end); what the
        database does not take is put back for the next round."""
        assert self._writer is not None
        now = time.time()
        audit = self._audit
        if audit:
            entries = [audit.popleft() for _ in range(len(audit))]
            if not self._store_reports(self._writer.write_audit, entries, "audit entries"):
                audit.extendleft(reversed(entries))
                return
        if self.rollups is None or not (final or now >= self._next_rollup):
            return
        self._next_rollup = now + ROLLUP_EVERY
        batch = self.rollups.take()
        if batch:
            if self._store_reports(self._writer.write_rollups, batch, "roll-ups"):
                self.stats.rollup_writes += 1
                self.stats.rollup_written_at = now
            else:
                self.rollups.restore(batch)

    def _store_reports(self, write: Any, data: Any, what: str) -> bool:
        try:
            write(data, self.server)
        except StoreUnavailable as exc:
            self.stats.rollup_failed_writes += 1
            self._unavailable(exc)
            return False
        except Exception:  # disk full...: kept for the next round, never dropped
            self.stats.rollup_failed_writes += 1
            log.exception("query log: could not write %s; retrying with the next round", what)
            return False
        return True

    def _sweep(self) -> None:
        """Housekeeping and retention, hourly; retried with the back-off when unreachable."""
        assert self._writer is not None
        now = time.time()
        try:
            self._writer.maintain(now)
            if self.retention_days is not None:
                removed = self._writer.expire(now - self.retention_days * 86400)
                if removed:
                    log.info("query log: retention removed %d rows", removed)
            if self.report_retention_days is not None:
                before = now - self.report_retention_days * 86400
                zone = self.rollups.zone if self.rollups is not None else None
                day = (
                    local_day(before, zone)[0]
                    if zone is not None
                    else time.strftime("%Y-%m-%d", time.localtime(before))
                )
                removed = self._writer.expire_reports(day, before)
                if removed:
                    log.info("reports: retention removed %d roll-up and audit rows", removed)
        except StoreUnavailable as exc:
            self._unavailable(exc)
            return
        except Exception:
            log.exception("query log: housekeeping or retention failed")
        self._available()
        self._next_sweep = now + PURGE_EVERY

    # -- reading (blocking: the admin app calls these through asyncio.to_thread) --------------

    def client_key(self, client: str) -> str | None:
        """How `client` (an address) is stored now: for searching the log by device."""
        if self.clients == "none":
            return None
        return self._pseudonym.lookup(client) if self.clients == "pseudonymized" else client

    def search(self, flt: QueryFilter) -> list[dict[str, Any]]:
        """Search; `flt.client` is an address, matched under the current key, or a pseudonym
        as the log shows it (16 hex digits: matched as stored, so an earlier day's one works)."""
        assert self._reader is not None, "QueryLog.start() first"
        if flt.client is not None and not _is_pseudonym(flt.client, self.clients):
            key = self.client_key(flt.client)
            if key is None:
                return []
            flt = dataclasses.replace(flt, client=key)
        return self._reader.search(flt)

    @property
    def reader(self) -> QueryStore:
        """The store for reading roll-ups and the audit trail (blocking: call in a thread)."""
        assert self._reader is not None, "QueryLog.start() first"
        return self._reader

    def summary(
        self, since: float, until: float, profile: str | None = None, top: int = 20
    ) -> Summary:
        assert self._reader is not None, "QueryLog.start() first"
        return self._reader.summary(since, until, profile, top)

    def purge(self, older_than_days: int | None) -> int:
        """Delete rows older than N days (all rows if None)."""
        assert self._reader is not None, "QueryLog.start() first"
        before = None if older_than_days is None else time.time() - older_than_days * 86400
        return self._reader.purge(before)


def _is_pseudonym(text: str, clients: str) -> bool:
    return (
        clients == "pseudonymized"
        and len(text) == PSEUDONYM_DIGITS
        and all(c in "0123456789abcdef" for c in text)
    )
