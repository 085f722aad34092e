"""The mailbox and wave state machines, as plain transition tables.

`advance_mailbox(state, event_type)` and `advance_wave(status, event_type)`
return the next state, or one of two verdicts:

* `DUPLICATE` — the event restates where the object already is or has been
  (a redelivery, or a late event overtaken by a later one). Ack it, do nothing.
* `Invalid(reason)` — the event cannot happen in this state. Dead-letter it.

Why some rows skip ahead: every agent consumes independently and retries
through delay queues, so the ledger can see `mailbox.mail_enabled` before the
`mailbox.provisioned` that preceded it, and Exchange can report a small move
completed between two polls without ever showing it synced. The table says
which jumps are legitimate; the rank of each state turns the late event into a
duplicate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DUPLICATE",
    "MAILBOX_TRANSITIONS",
    "READINESS_EVENTS",
    "RESUME_AFTER_FAILED_STEP",
    "WAVE_TRANSITIONS",
    "Duplicate",
    "Invalid",
    "MailboxState",
    "WavePhase",
    "WaveStatus",
    "advance_mailbox",
    "advance_wave",
]


class MailboxState(enum.StrEnum):
    DISCOVERED = "discovered"
    PROVISIONED = "provisioned"
    MAIL_ENABLED = "mail_enabled"
    MOVE_REQUESTED = "move_requested"
    SYNCING = "syncing"
    SYNCED = "synced"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self is MailboxState.COMPLETED


class WavePhase(enum.StrEnum):
    REQUESTED = "requested"
    PREPARING = "preparing"
    READY = "ready"
    MIGRATING = "migrating"
    MIGRATED = "migrated"
    CUTOVER = "cutover"
    DONE = "done"
    FAILED = "failed"


class Duplicate:
    """Singleton verdict: the event repeats what is already known."""

    _instance: Duplicate | None = None

    def __new__(cls) -> Duplicate:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DUPLICATE"


DUPLICATE: Final = Duplicate()


@dataclass(frozen=True)
class Invalid:
    reason: str


# --------------------------------------------------------------------------- mailbox

M = MailboxState
_RESUME: Final = "resume"  # marker: go back to the state recorded when the mailbox failed

# The happy path in order; a state's position is its rank.
_ORDER: Final = (
    M.DISCOVERED, M.PROVISIONED, M.MAIL_ENABLED, M.MOVE_REQUESTED,
    M.SYNCING, M.SYNCED, M.COMPLETING, M.COMPLETED,
)
_RANK: Final = {state: rank for rank, state in enumerate(_ORDER)}

# event type -> the state it reports
_REPORTS: Final = {
    "mailbox.discovered": M.DISCOVERED,
    "mailbox.provisioned": M.PROVISIONED,
    "mailbox.mail_enabled": M.MAIL_ENABLED,
    "mailbox.move_requested": M.MOVE_REQUESTED,
    "mailbox.syncing": M.SYNCING,
    "mailbox.synced": M.SYNCED,
    "mailbox.completing": M.COMPLETING,
    "mailbox.completed": M.COMPLETED,
}

# (current state, event type) -> next state. `None` is a mailbox not yet seen.
MAILBOX_TRANSITIONS: Final[dict[tuple[MailboxState | None, str], MailboxState | str]] = {
    # first sighting: normally `discovered`, but a retried handler may let a later event in first
    (None, "mailbox.discovered"): M.DISCOVERED,
    (None, "mailbox.provisioned"): M.PROVISIONED,
    (None, "mailbox.mail_enabled"): M.MAIL_ENABLED,
    (M.DISCOVERED, "mailbox.provisioned"): M.PROVISIONED,
    (M.DISCOVERED, "mailbox.mail_enabled"): M.MAIL_ENABLED,
    (M.PROVISIONED, "mailbox.mail_enabled"): M.MAIL_ENABLED,
    (M.MAIL_ENABLED, "mailbox.move_requested"): M.MOVE_REQUESTED,
    # Exchange reports whatever it has reached by the next poll
    (M.MOVE_REQUESTED, "mailbox.syncing"): M.SYNCING,
    (M.MOVE_REQUESTED, "mailbox.synced"): M.SYNCED,
    (M.MOVE_REQUESTED, "mailbox.completing"): M.COMPLETING,
    (M.MOVE_REQUESTED, "mailbox.completed"): M.COMPLETED,
    (M.SYNCING, "mailbox.syncing"): M.SYNCING,  # progress: a real update, not a duplicate
    (M.SYNCING, "mailbox.synced"): M.SYNCED,
    (M.SYNCING, "mailbox.completing"): M.COMPLETING,
    (M.SYNCING, "mailbox.completed"): M.COMPLETED,
    (M.SYNCED, "mailbox.completing"): M.COMPLETING,
    (M.SYNCED, "mailbox.completed"): M.COMPLETED,
    (M.COMPLETING, "mailbox.completed"): M.COMPLETED,
    # failure from every non-terminal state; replay returns to where it failed
    **{(state, "mailbox.failed"): M.FAILED for state in _ORDER if not state.terminal},
    (None, "mailbox.failed"): M.FAILED,  # failed before the ledger saw it discovered
    (M.FAILED, "mailbox.replayed"): _RESUME,
}

# A replay returns a failed mailbox to the state before the step that failed.
RESUME_AFTER_FAILED_STEP: Final = {
    "export": M.DISCOVERED,
    "provision": M.DISCOVERED,
    "mail-enable": M.PROVISIONED,
    "move": M.MAIL_ENABLED,
    "complete": M.SYNCED,
}


def advance_mailbox(
    state: MailboxState | None, event_type: str, *, failed_from: MailboxState | None = None
) -> MailboxState | Duplicate | Invalid:
    """The mailbox's next state after *event_type*; `failed_from` is needed to resume a replay."""
    target = MAILBOX_TRANSITIONS.get((state, event_type))
    if target == _RESUME:
        if failed_from is None:
            return Invalid("replayed, but the state before the failure is not known")
        return failed_from
    if isinstance(target, MailboxState):
        return target
    if event_type == "mailbox.failed" and state is M.FAILED:
        return DUPLICATE
    reported = _REPORTS.get(event_type)
    if (reported is not None and state is not None and state is not M.FAILED
            and _RANK[reported] <= _RANK[state]):
        return DUPLICATE  # late or repeated: the mailbox is already there or beyond
    if event_type not in _REPORTS and event_type not in ("mailbox.failed", "mailbox.replayed"):
        return Invalid(f"{event_type} is not a mailbox event")
    where = state.value if state is not None else "an unknown mailbox"
    return Invalid(f"{event_type} cannot happen to {where}")


# --------------------------------------------------------------------------- wave

W = WavePhase

# All three must arrive (in any order) before moves may start.
READINESS_EVENTS: Final = frozenset({"wave.cloud_ready", "wave.onprem_ready", "wave.dns_prepared"})


@dataclass(frozen=True)
class WaveStatus:
    phase: WavePhase
    readiness: frozenset[str] = field(default_factory=frozenset)


_READINESS: Final = "readiness"  # marker: record one readiness event; READY once all are in

WAVE_TRANSITIONS: Final[dict[tuple[WavePhase | None, str], WavePhase | str]] = {
    (None, "wave.requested"): W.REQUESTED,
    **{(W.REQUESTED, e): _READINESS for e in READINESS_EVENTS},
    **{(W.PREPARING, e): _READINESS for e in READINESS_EVENTS},
    # the export runs alongside preparation and moves; it carries the count only
    **{(p, "wave.exported"): p for p in (W.REQUESTED, W.PREPARING, W.READY, W.MIGRATING)},
    (W.READY, "mailbox.move_requested"): W.MIGRATING,
    (W.READY, "wave.migrated"): W.MIGRATED,  # nothing to move (everything already done)
    (W.MIGRATING, "wave.migrated"): W.MIGRATED,
    (W.MIGRATED, "wave.cutover_started"): W.CUTOVER,
    (W.MIGRATED, "wave.cutover_done"): W.DONE,
    (W.CUTOVER, "wave.cutover_done"): W.DONE,
    (W.DONE, "wave.rolled_back"): W.MIGRATED,
    (W.CUTOVER, "wave.rolled_back"): W.MIGRATED,
    # rolling back DNS before the cutover only undoes the preparation (SPF, TTL)
    **{(p, "wave.rolled_back"): p for p in (W.PREPARING, W.READY, W.MIGRATING, W.MIGRATED)},
    # a failed mailbox replayed after the wave was migrated: moves run again
    (W.MIGRATED, "mailbox.replayed"): W.MIGRATING,
    **{(p, "wave.failed"): W.FAILED for p in W if p not in (W.DONE, W.FAILED)},
    # A failed wave is not a dead end: once the cause is fixed and the dead-lettered
    # step replayed, the events that step would have produced carry the wave on.
    **{(W.FAILED, e): _READINESS for e in READINESS_EVENTS},
    (W.FAILED, "wave.exported"): W.FAILED,
    (W.FAILED, "mailbox.move_requested"): W.MIGRATING,
    (W.FAILED, "wave.migrated"): W.MIGRATED,
    (W.FAILED, "wave.cutover_started"): W.CUTOVER,
    (W.FAILED, "wave.cutover_done"): W.DONE,
}

_WAVE_RANK: Final = {p: r for r, p in enumerate(
    (W.REQUESTED, W.PREPARING, W.READY, W.MIGRATING, W.MIGRATED, W.CUTOVER, W.DONE)
)}
_WAVE_REPORTS: Final = {
    "wave.requested": W.REQUESTED,
    "mailbox.move_requested": W.MIGRATING,
    "wave.migrated": W.MIGRATED,
    "wave.cutover_started": W.CUTOVER,
    "wave.cutover_done": W.DONE,
}


def advance_wave(status: WaveStatus | None, event_type: str) -> WaveStatus | Duplicate | Invalid:
    """The wave's next status after *event_type*."""
    phase = status.phase if status is not None else None
    readiness = status.readiness if status is not None else frozenset()
    target = WAVE_TRANSITIONS.get((phase, event_type))
    if target == _READINESS:
        if event_type in readiness:
            return DUPLICATE
        received = readiness | {event_type}
        return WaveStatus(W.READY if received == READINESS_EVENTS else W.PREPARING, received)
    if isinstance(target, WavePhase):
        return WaveStatus(target, readiness)
    if phase is W.FAILED and event_type == "wave.failed":
        return DUPLICATE
    if event_type in READINESS_EVENTS and event_type in readiness:
        return DUPLICATE
    reported = _WAVE_REPORTS.get(event_type)
    if (reported is not None and phase is not None and phase is not W.FAILED
            and _WAVE_RANK[reported] <= _WAVE_RANK[phase]):
        return DUPLICATE
    where = phase.value if phase is not None else "an unknown wave"
    return Invalid(f"{event_type} cannot happen to a wave that is {where}")
