"""A wave's picture, folded from its events (the audit stream is the source of truth).

The same state machines the agents obey (contracts.states) decide each
mailbox's state here, so `homebound status` shows what the system believes,
not a second opinion.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pydantic

from contracts.envelope import Event
from contracts.events import (
    MailboxFailed,
    UnknownEventType,
    WaveCutoverDone,
    WaveDnsPrepared,
    WaveExported,
    WaveFailed,
    WaveMigrated,
    WaveRequested,
    parse_event,
)
from contracts.states import (
    RESUME_AFTER_FAILED_STEP,
    MailboxState,
    WavePhase,
    WaveStatus,
    advance_mailbox,
    advance_wave,
)

__all__ = ["MailboxView", "WaveView", "WavesView"]


@dataclass
class MailboxView:
    mailbox_id: str
    address: str | None = None
    state: MailboxState | None = None
    failed_from: MailboxState | None = None
    failure: dict[str, Any] | None = None  # step, error_class, reason, remediation
    percent: int | None = None
    exchange_status: str | None = None


@dataclass
class WaveView:
    wave_id: str
    status: WaveStatus | None = None
    request: dict[str, Any] | None = None
    expected: int | None = None
    mailboxes: dict[str, MailboxView] = field(default_factory=dict)
    dns_before: dict[str, Any] | None = None
    dns_after: dict[str, Any] | None = None
    migrated: dict[str, Any] | None = None
    blocked: dict[str, Any] | None = None
    first_at: str | None = None
    last_at: str | None = None
    events: int = 0
    # state -> seconds after the wave's first event when the last mailbox reached it
    reached: dict[str, float] = field(default_factory=dict)
    _t0: float | None = None
    _now: float = 0.0

    @property
    def phase(self) -> WavePhase | None:
        if self.blocked is not None:
            return WavePhase.FAILED
        return self.status.phase if self.status else None

    def counts(self) -> Counter[str]:
        return Counter(m.state.value if m.state else "unknown" for m in self.mailboxes.values())

    @property
    def failures(self) -> list[MailboxView]:
        return [m for m in self.mailboxes.values() if m.state is MailboxState.FAILED]

    def apply(self, event: Event) -> None:
        self.events += 1
        self._t0 = self._t0 if self._t0 is not None else event.occurred_at.timestamp()
        self._now = event.occurred_at.timestamp() - self._t0
        stamp = event.occurred_at.isoformat(timespec="seconds")
        self.first_at = self.first_at or stamp
        self.last_at = stamp
        if event.mailbox_id is not None and event.type.startswith("mailbox."):
            self._apply_mailbox(event)
        if event.type.startswith("wave.") or event.type == "mailbox.move_requested":
            self._apply_wave(event)

    def _apply_wave(self, event: Event) -> None:
        if isinstance(event, WaveRequested):
            self.request = event.data.model_dump(mode="json")
        elif isinstance(event, WaveExported):
            self.expected = event.data.count
        elif isinstance(event, WaveDnsPrepared):
            self.dns_before = event.data.before.model_dump(mode="json")
        elif isinstance(event, WaveCutoverDone):
            self.dns_before = self.dns_before or event.data.before.model_dump(mode="json")
            self.dns_after = event.data.after.model_dump(mode="json")
        elif isinstance(event, WaveMigrated):
            self.migrated = event.data.model_dump(mode="json")
        if isinstance(event, WaveFailed):
            self.blocked = event.data.model_dump(mode="json")
            return
        if event.type == "wave.poll_due":
            return
        verdict = advance_wave(self.status, event.type)
        if isinstance(verdict, WaveStatus):
            self.status = verdict
            self.blocked = None

    def _apply_mailbox(self, event: Event) -> None:
        key = str(event.mailbox_id)
        view = self.mailboxes.setdefault(key, MailboxView(key))
        data = event.data
        mailbox = getattr(data, "mailbox", data)
        view.address = (
            view.address
            or getattr(mailbox, "primary_smtp_address", None)
            or getattr(data, "primary_smtp_address", None)
        )
        verdict = advance_mailbox(view.state, event.type, failed_from=view.failed_from)
        if not isinstance(verdict, MailboxState):
            return
        view.state = verdict
        self.reached[verdict.value] = max(self.reached.get(verdict.value, 0.0), self._now)
        if isinstance(event, MailboxFailed):
            view.failure = event.data.model_dump(mode="json")
            view.failed_from = RESUME_AFTER_FAILED_STEP.get(event.data.step.value, MailboxState.DISCOVERED)
        elif event.type == "mailbox.replayed":
            view.failure = None
        percent = getattr(data, "percent", None)
        if isinstance(percent, int):
            view.percent = percent
            view.exchange_status = getattr(data, "status", None)
        if verdict is MailboxState.COMPLETED:
            view.percent = 100


class WavesView:
    """Every wave seen on the stream, by id."""

    def __init__(self, only_wave: str | None = None) -> None:
        self.waves: dict[str, WaveView] = {}
        self.only_wave = only_wave
        self.skipped = 0
        self.started = time.monotonic()

    def apply_document(self, document: dict[str, Any]) -> WaveView | None:
        if self.only_wave and document.get("wave_id") != self.only_wave:
            return None
        try:
            event = parse_event(document)
        except (UnknownEventType, pydantic.ValidationError, ValueError):
            self.skipped += 1
            return None
        view = self.waves.setdefault(event.wave_id, WaveView(event.wave_id))
        view.apply(event)
        return view
