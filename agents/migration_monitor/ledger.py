"""The wave ledger: where each wave and each of its mailboxes stands.

The monitor changes the ledger and records the events that announce the
change in the same transaction (the outbox); a relay then publishes the
outbox and deletes what the broker confirmed. A crash can therefore never
leave a state change unannounced, and a repeat publishes the same event ids,
which consumers drop as duplicates.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel

from agents.migration_monitor.database import Database, Transaction
from contracts.events import WaveRequestedData
from contracts.states import MailboxState, WavePhase, WaveStatus

__all__ = ["ACTIVE_STATES", "Ledger", "MailboxRow", "OutboxRow", "WaveRow"]

# States in which a move holds a slot at the endpoint and at MRSProxy.
ACTIVE_STATES: Final = (MailboxState.MOVE_REQUESTED, MailboxState.SYNCING, MailboxState.COMPLETING)
# States in which Exchange still has a move to watch.
WATCHED_STATES: Final = (*ACTIVE_STATES, MailboxState.SYNCED)

_SCHEMA: Final = {
    "waves": """
        CREATE TABLE IF NOT EXISTS waves (
            wave_id TEXT PRIMARY KEY,
            phase TEXT NOT NULL,
            readiness TEXT NOT NULL,
            request TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            expected INTEGER,
            endpoint TEXT,
            max_concurrent INTEGER,
            mrs_limit INTEGER,
            concurrency_cap INTEGER,
            cap_until DOUBLE PRECISION,
            polling INTEGER NOT NULL,
            poll_seq INTEGER NOT NULL,
            idle_polls INTEGER NOT NULL,
            batch_seq INTEGER NOT NULL,
            migrated_key TEXT,
            blocked_step TEXT,
            blocked_reason TEXT,
            last_poll_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
    "mailboxes": """
        CREATE TABLE IF NOT EXISTS mailboxes (
            wave_id TEXT NOT NULL,
            mailbox_id TEXT NOT NULL,
            address TEXT,
            state TEXT NOT NULL,
            failed_from TEXT,
            failed_step TEXT,
            error_class TEXT,
            reason TEXT,
            exchange_status TEXT,
            percent INTEGER,
            bytes_transferred BIGINT,
            bytes_total BIGINT,
            batch TEXT,
            submitted INTEGER NOT NULL,
            move_attempts INTEGER NOT NULL,
            not_before DOUBLE PRECISION,
            enabled_event TEXT,
            has_archive INTEGER NOT NULL,
            complete_requested INTEGER NOT NULL,
            stats_at DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (wave_id, mailbox_id)
        )""",
}
# The one column the dialects spell differently: an ever-growing sequence (publish order).
_OUTBOX_SEQ: Final = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}
_OUTBOX: Final = """
    CREATE TABLE IF NOT EXISTS outbox (
        seq {seq},
        message_id TEXT NOT NULL UNIQUE,
        exchange TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        body TEXT NOT NULL,
        headers TEXT NOT NULL
    )"""


@dataclass
class WaveRow:
    wave_id: str
    phase: WavePhase
    readiness: frozenset[str]
    request: WaveRequestedData
    correlation_id: str
    expected: int | None = None
    endpoint: str | None = None
    max_concurrent: int | None = None
    mrs_limit: int | None = None
    concurrency_cap: int | None = None  # lowered after MRSProxy refused connections
    cap_until: float | None = None
    polling: bool = False
    poll_seq: int = 0
    idle_polls: int = 0
    batch_seq: int = 0
    migrated_key: str | None = None
    # A wave.failed marks the wave as failed at a step without erasing how far it got:
    # once the step is replayed and succeeds, the wave carries on from there.
    blocked_step: str | None = None
    blocked_reason: str | None = None
    last_poll_at: float | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def shown_phase(self) -> WavePhase:
        """What operators see: `failed` while a step is blocked, else the phase reached."""
        return WavePhase.FAILED if self.blocked_step else self.phase

    @property
    def status(self) -> WaveStatus:
        return WaveStatus(self.phase, self.readiness)

    def apply(self, status: WaveStatus) -> None:
        self.phase, self.readiness = status.phase, status.readiness


@dataclass
class MailboxRow:
    wave_id: str
    mailbox_id: str
    state: MailboxState
    address: str | None = None
    failed_from: MailboxState | None = None
    failed_step: str | None = None
    error_class: str | None = None
    reason: str | None = None
    exchange_status: str | None = None
    percent: int | None = None
    bytes_transferred: int | None = None
    bytes_total: int | None = None
    batch: str | None = None  # batch name, or the move request's identity
    submitted: bool = False  # False with a batch set: submission started, outcome unknown
    move_attempts: int = 0
    not_before: float | None = None  # a transient move failure waits until then
    enabled_event: str | None = None  # the mailbox.mail_enabled JSON: what a move failure dead-letters
    has_archive: bool = False
    complete_requested: bool = False
    stats_at: float | None = None


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]


_WAVE_COLUMNS: Final = [f.name for f in dataclasses.fields(WaveRow)]
_MAILBOX_COLUMNS: Final = [f.name for f in dataclasses.fields(MailboxRow)]


def _upsert(table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return (
        f"INSERT INTO {table} ({names}, updated_at) VALUES ({marks}, ?) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}, updated_at = excluded.updated_at"
    )


_WAVE_UPSERT: Final = _upsert("waves", _WAVE_COLUMNS, ["wave_id"])
_MAILBOX_UPSERT: Final = _upsert("mailboxes", _MAILBOX_COLUMNS, ["wave_id", "mailbox_id"])


def _to_sql(value: Any) -> Any:
    """A row's field as the database stores it."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return value


def _values(row: WaveRow | MailboxRow, columns: Sequence[str]) -> list[Any]:
    """The upsert's parameters: every column, then updated_at."""
    return [*(_to_sql(getattr(row, name)) for name in columns), time.time()]


def _wave_from(values: Sequence[Any]) -> WaveRow:
    data = dict(zip(_WAVE_COLUMNS, values, strict=True))
    data["phase"] = WavePhase(data["phase"])
    data["readiness"] = frozenset(filter(None, str(data["readiness"]).split(",")))
    data["request"] = WaveRequestedData.model_validate_json(data["request"])
    data["polling"] = bool(data["polling"])
    return WaveRow(**data)


def _mailbox_from(values: Sequence[Any]) -> MailboxRow:
    data = dict(zip(_MAILBOX_COLUMNS, values, strict=True))
    data["state"] = MailboxState(data["state"])
    data["failed_from"] = MailboxState(data["failed_from"]) if data["failed_from"] else None
    for flag in ("submitted", "has_archive", "complete_requested"):
        data[flag] = bool(data[flag])
    return MailboxRow(**data)


class Ledger:
    def __init__(self, database: Database) -> None:
        self.db = database
        with database.transaction() as tx:
            for ddl in _SCHEMA.values():
                tx.execute(ddl)
            tx.execute(_OUTBOX.format(seq=_OUTBOX_SEQ[database.dialect]))
            tx.execute("CREATE INDEX IF NOT EXISTS mailboxes_by_state ON mailboxes (wave_id, state)")

    # ------------------------------------------------------------------ waves

    def wave(self, tx: Transaction, wave_id: str) -> WaveRow | None:
        rows = tx.execute(f"SELECT {', '.join(_WAVE_COLUMNS)} FROM waves WHERE wave_id = ?", [wave_id])
        return _wave_from(rows[0]) if rows else None

    def save_wave(self, tx: Transaction, row: WaveRow) -> None:
        tx.execute(_WAVE_UPSERT, _values(row, _WAVE_COLUMNS))

    def waves(self, tx: Transaction) -> list[WaveRow]:
        rows = tx.execute(f"SELECT {', '.join(_WAVE_COLUMNS)} FROM waves ORDER BY created_at")
        return [_wave_from(r) for r in rows]

    # ------------------------------------------------------------------ mailboxes

    def mailbox(self, tx: Transaction, wave_id: str, mailbox_id: str) -> MailboxRow | None:
        rows = tx.execute(
            f"SELECT {', '.join(_MAILBOX_COLUMNS)} FROM mailboxes WHERE wave_id = ? AND mailbox_id = ?",
            [wave_id, mailbox_id],
        )
        return _mailbox_from(rows[0]) if rows else None

    def save_mailbox(self, tx: Transaction, row: MailboxRow) -> None:
        tx.execute(_MAILBOX_UPSERT, _values(row, _MAILBOX_COLUMNS))

    def mailboxes(
        self, tx: Transaction, wave_id: str, states: Iterable[MailboxState] | None = None
    ) -> list[MailboxRow]:
        sql = f"SELECT {', '.join(_MAILBOX_COLUMNS)} FROM mailboxes WHERE wave_id = ?"
        params: list[Any] = [wave_id]
        wanted = [s.value for s in states] if states is not None else None
        if wanted is not None:
            sql += f" AND state IN ({', '.join('?' for _ in wanted)})"
            params += wanted
        return [_mailbox_from(r) for r in tx.execute(sql + " ORDER BY updated_at, mailbox_id", params)]

    def counts(self, tx: Transaction, wave_id: str) -> dict[MailboxState, int]:
        rows = tx.execute("SELECT state, COUNT(*) FROM mailboxes WHERE wave_id = ? GROUP BY state", [wave_id])
        return {MailboxState(state): int(n) for state, n in rows}

    def moves_in_flight(self, tx: Transaction) -> int:
        """Moves holding a slot, across every wave (the endpoint and MRSProxy are shared)."""
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        rows = tx.execute(
            f"SELECT COUNT(*) FROM mailboxes WHERE state IN ({marks}) "
            "OR (state = ? AND batch IS NOT NULL AND submitted = 0)",
            [s.value for s in ACTIVE_STATES] + [MailboxState.MAIL_ENABLED.value],
        )
        return int(rows[0][0])

    # ------------------------------------------------------------------ outbox

    def enqueue(
        self,
        tx: Transaction,
        *,
        message_id: str,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any] | None = None,
    ) -> None:
        sql = (
            "INSERT INTO outbox (message_id, exchange, routing_key, body, headers) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (message_id) DO NOTHING"
        )
        tx.execute(sql, [message_id, exchange, routing_key, body.decode(), json.dumps(headers or {})])

    def pending_outbox(self, limit: int = 500) -> list[OutboxRow]:
        rows = self.db.query(
            "SELECT seq, message_id, exchange, routing_key, body, headers FROM outbox ORDER BY seq LIMIT ?",
            [limit],
        )
        return [
            OutboxRow(int(seq), mid, ex, rk, body.encode(), json.loads(headers))
            for seq, mid, ex, rk, body, headers in rows
        ]

    def delete_outbox(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self.db.transaction() as tx:
            tx.executemany("DELETE FROM outbox WHERE seq = ?", [[s] for s in seqs])
