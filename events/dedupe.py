"""Remembering which events a consumer has already handled.

Delivery is at-least-once, so every consumer sees some events twice (a
redelivery after a lost ack, a publisher resending after a reconnect). The
consumer records an event id after the event's effects are done and its
follow-up events confirmed, and acks a repeat without running the handler.

Two copies of the same event can also be in flight at once (a redelivery
while the first is still being handled): `InFlight` makes the second wait for
the first and then see it as handled.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

__all__ = ["DedupeStore", "InFlight", "MemoryDedupe", "SqliteDedupe"]


class DedupeStore(Protocol):
    def seen(self, event_id: uuid.UUID) -> bool: ...

    def remember(self, event_id: uuid.UUID) -> None: ...

    def flush(self) -> None:
        """Make every remembered id durable; called before the acks that depend on it."""


class MemoryDedupe:
    """The last *capacity* event ids, in memory: for tools and tests, not for agents."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def seen(self, event_id: uuid.UUID) -> bool:
        with self._lock:
            return event_id in self._ids

    def remember(self, event_id: uuid.UUID) -> None:
        with self._lock:
            self._ids[event_id] = None
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)

    def flush(self) -> None:
        pass


class SqliteDedupe:
    """Handled event ids in a SQLite file, kept for *retention_days* (survives restarts).

    Ids remembered by workers are visible at once and written in one
    transaction per `flush()` — the consumer flushes right before it acks the
    batch of messages they belong to, so an acked message is always remembered
    and a busy consumer pays one commit per batch, not one per message.
    """

    def __init__(self, path: Path, *, retention_days: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS handled (event_id BLOB PRIMARY KEY, at REAL NOT NULL)"
        )
        self._path = path
        self._lock = threading.Lock()
        self._readers = threading.local()  # WAL lets each worker read without the writer's lock
        self._pending: set[uuid.UUID] = set()
        self._flushing: set[uuid.UUID] = set()
        self._write_lock = threading.Lock()
        self._retention = retention_days * 86400
        self._writes = 0
        self._prune()

    def seen(self, event_id: uuid.UUID) -> bool:
        with self._lock:
            if event_id in self._pending or event_id in self._flushing:
                return True
        reader = getattr(self._readers, "db", None)
        if reader is None:
            reader = sqlite3.connect(str(self._path), check_same_thread=False)
            self._readers.db = reader
        row = reader.execute("SELECT 1 FROM handled WHERE event_id = ?", (event_id.bytes,)).fetchone()
        return row is not None

    def remember(self, event_id: uuid.UUID) -> None:
        with self._lock:
            self._pending.add(event_id)

    def flush(self) -> None:
        # Workers keep remembering while the commit runs: only the swap holds the lock.
        with self._write_lock:
            with self._lock:
                if not self._pending:
                    return
                self._flushing, self._pending = self._pending, set()
            now = time.time()
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO handled (event_id, at) VALUES (?, ?)",
                [(event_id.bytes, now) for event_id in self._flushing],
            )
            self._db.execute("COMMIT")
            self._writes += len(self._flushing)
            with self._lock:
                self._flushing = set()
            if self._writes >= 10_000:
                self._writes = 0
                self._prune_locked()

    def _prune(self) -> None:
        with self._write_lock:
            self._prune_locked()

    def _prune_locked(self) -> None:
        self._db.execute("DELETE FROM handled WHERE at < ?", (time.time() - self._retention,))

    def close(self) -> None:
        self.flush()
        with self._write_lock:
            self._db.close()


class InFlight:
    """One lock per event id being handled; released locks are forgotten."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[uuid.UUID, tuple[threading.Lock, int]] = {}

    @contextmanager
    def claim(self, event_id: uuid.UUID) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(event_id, (threading.Lock(), 0))
            self._locks[event_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[event_id]
                if users == 1:
                    del self._locks[event_id]
                else:
                    self._locks[event_id] = (lock, users - 1)
