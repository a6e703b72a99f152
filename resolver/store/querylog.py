"""The query log: a bounded in-memory queue filled by the DNS path, emptied by one writer thread.

`submit()` is what the DNS path calls for every logged answer: one length check and one
`deque.append`, never blocking and never raising. When the queue is full the event is dropped
and counted (`stats.querylog_dropped`): DNS answers never wait for the disk. The writer thread
owns the only write connection (sqlite3 calls block, so they stay off the event loop), writes in
batches of `batch` rows per transaction, pseudonymizes client addresses on the way in (see
`resolver.store.pseudonym`), and deletes rows older than `retention_days` once an hour.
`close()` drains the queue before returning: nothing submitted before a clean stop is lost.

Per-profile "do not log" is the caller's decision: events for a decision with `log=False` must
simply not be submitted.
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

from resolver.stats import Stats
from resolver.store.base import QueryFilter, QueryStore, Summary
from resolver.store.events import QueryEvent
from resolver.store.pseudonym import Pseudonymizer
from resolver.store.sqlite import SqliteQueryStore

log = logging.getLogger(__name__)

CLIENT_MODES = ("pseudonymized", "full", "none")
PURGE_EVERY = 3600.0  # seconds between retention sweeps


class QueryLog:
    """Asynchronous, batched, privacy-preserving query log (SQLite by default)."""

    def __init__(
        self,
        path: str | Path,
        *,
        clients: str = "pseudonymized",
        retention_days: int | None = 30,
        queue_size: int = 10000,
        batch: int = 500,
        flush_interval: float = 1.0,
        key_rotation: str = "daily",
        stats: Stats | None = None,
    ) -> None:
        if clients not in CLIENT_MODES:
            raise ValueError(f"querylog.clients must be one of {', '.join(CLIENT_MODES)}")
        if queue_size < 1 or batch < 1:
            raise ValueError("querylog.queue_size and batch must be positive")
        if retention_days is not None and retention_days < 1:
            raise ValueError("querylog.retention_days must be at least 1 (or null to keep all)")
        self.path = Path(path)
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

    async def start(self) -> None:
        """Open the database (raises on a bad path) and start the writer thread."""
        self._writer = await asyncio.to_thread(SqliteQueryStore, self.path)
        self._reader = await asyncio.to_thread(SqliteQueryStore, self.path)
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

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def close(self) -> None:
        """Stop accepting events, write everything queued, close the database."""
        if self._thread is None:
            return
        self._closed = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        for store in (self._writer, self._reader):
            if store is not None:
                store.close()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        next_purge = 0.0
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            while self._queue:
                self._write_batch()
            if self.retention_days is not None and time.time() >= next_purge:
                next_purge = time.time() + PURGE_EVERY
                self._safe_purge()
            if self._closed and not self._queue:
                return

    def _write_batch(self) -> None:
        queue, batch = self._queue, []
        for _ in range(min(self._batch, len(queue))):
            batch.append(self._private(queue.popleft()))
        try:
            assert self._writer is not None
            self.stats.querylog_written += self._writer.write(batch)
        except Exception:  # disk full, locked file...: count and carry on, never kill the thread
            self.stats.querylog_dropped += len(batch)
            log.exception("query log: could not write %d events to %s", len(batch), self.path)

    def _private(self, event: QueryEvent) -> QueryEvent:
        if self.clients == "pseudonymized":
            return event._replace(client=self._pseudonym(event.client, event.ts))
        if self.clients == "none":
            return event._replace(client="")
        return event

    def _safe_purge(self) -> None:
        try:
            assert self._writer is not None and self.retention_days is not None
            removed = self._writer.purge(time.time() - self.retention_days * 86400)
            if removed:
                log.info("query log: retention removed %d rows", removed)
        except Exception:
            log.exception("query log: retention purge failed")

    # -- reading (blocking: the admin app calls these through asyncio.to_thread) --------------

    def client_key(self, client: str) -> str | None:
        """How `client` (an address) is stored now: for searching the log by device."""
        if self.clients == "none":
            return None
        return self._pseudonym.lookup(client) if self.clients == "pseudonymized" else client

    def search(self, flt: QueryFilter) -> list[dict[str, Any]]:
        """Search; `flt.client` is an address and is matched under the current key."""
        assert self._reader is not None, "QueryLog.start() first"
        if flt.client is not None:
            key = self.client_key(flt.client)
            if key is None:
                return []
            flt = dataclasses.replace(flt, client=key)
        return self._reader.search(flt)

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
