"""What the agent must remember between events: each wave's domains and the records before it.

`wave.migrated` and `wave.rollback_requested` do not say which domains a wave
has or whether a partial cutover was allowed, and rollback needs the records
exactly as they were before the wave touched them. Both live in one small
SQLite file in the agent's state directory. The before-state is written
once, before the first change, and never overwritten: a redelivered or
repeated `wave.requested` reads records that are already changed, and
recording those would make the rollback restore the wrong thing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.events import DnsRecordSet

__all__ = ["CutoverState", "WavePlan"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS waves (
    wave_id TEXT PRIMARY KEY,
    domains TEXT NOT NULL,            -- JSON list, in the order requested (the first is the primary)
    allow_partial INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS before_records (
    wave_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    records TEXT NOT NULL,            -- contracts.events.DnsRecordSet as JSON
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (wave_id, domain)
);
"""


@dataclass(frozen=True)
class WavePlan:
    domains: tuple[str, ...]
    allow_partial: bool

    @property
    def primary(self) -> str:
        return self.domains[0]


class CutoverState:
    """Thread-safe (handlers run in a pool); every write is committed before it returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def remember_wave(self, wave_id: str, domains: Sequence[str], allow_partial: bool) -> WavePlan:
        """Record a requested wave; a repeated request adds domains and updates allow_partial.

        Re-requesting a wave with `--allow-partial` is how an operator permits the
        cutover after the fact, so the latest answer wins.
        """
        with self._lock:
            known = self._wave(wave_id)
            merged = tuple(dict.fromkeys([*(known.domains if known else ()), *domains]))
            self._db.execute(
                "INSERT INTO waves (wave_id, domains, allow_partial) VALUES (?, ?, ?) "
                "ON CONFLICT (wave_id) DO UPDATE SET domains = excluded.domains, "
                "allow_partial = excluded.allow_partial",
                (wave_id, json.dumps(merged), int(allow_partial)))
        return WavePlan(merged, allow_partial)

    def wave(self, wave_id: str) -> WavePlan | None:
        with self._lock:
            return self._wave(wave_id)

    def remember_before(self, wave_id: str, domain: str, records: DnsRecordSet) -> DnsRecordSet:
        """Keep *records* as the wave's before-state unless one is kept already; return the kept one."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO before_records (wave_id, domain, records) VALUES (?, ?, ?)",
                (wave_id, domain, records.model_dump_json()))
            kept = self._before(wave_id, domain)
        assert kept is not None  # just inserted or already there
        return kept

    def before(self, wave_id: str, domain: str) -> DnsRecordSet | None:
        with self._lock:
            return self._before(wave_id, domain)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _wave(self, wave_id: str) -> WavePlan | None:
        row = self._db.execute("SELECT domains, allow_partial FROM waves WHERE wave_id = ?",
                               (wave_id,)).fetchone()
        return WavePlan(tuple(json.loads(row[0])), bool(row[1])) if row else None

    def _before(self, wave_id: str, domain: str) -> DnsRecordSet | None:
        row = self._db.execute("SELECT records FROM before_records WHERE wave_id = ? AND domain = ?",
                               (wave_id, domain)).fetchone()
        return DnsRecordSet.model_validate_json(row[0]) if row else None
