"""The migration monitor's handlers: the ledger projection, readiness, polling, completion.

Every handler changes the ledger and queues the events that announce the change
in one transaction, then has the relay publish them before the message is acked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import structlog

from agents.migration_monitor.announce import announce
from agents.migration_monitor.cycle import PollCycle, PollOutcome
from agents.migration_monitor.database import Transaction
from agents.migration_monitor.ledger import WATCHED_STATES, Ledger, MailboxRow, WaveRow
from agents.migration_monitor.relay import OutboxRelay
from agents.migration_monitor.settings import MonitorSettings
from contracts.envelope import Event
from contracts.events import (
    MailboxFailed,
    MailboxMailEnabled,
    MailboxReplayed,
    Step,
    WaveCloudReady,
    WaveCompletionRequested,
    WaveExported,
    WaveFailed,
    WaveMigrated,
    WaveMigratedData,
    WaveOnpremReady,
    WavePollDue,
    WavePollDueData,
    WaveRequested,
)
from contracts.states import (
    DUPLICATE,
    RESUME_AFTER_FAILED_STEP,
    Invalid,
    MailboxState,
    WavePhase,
    WaveStatus,
    advance_mailbox,
    advance_wave,
)
from events.consumer import Context, Route
from events.errors import InvalidMessage, PublishError

__all__ = ["MigrationMonitor"]

log = structlog.get_logger(__name__)
M = MailboxState
W = WavePhase

WAVE_EVENTS = (
    "wave.cloud_ready",
    "wave.onprem_ready",
    "wave.dns_prepared",
    "wave.exported",
    "wave.cutover_started",
    "wave.cutover_done",
    "wave.failed",
    "wave.rolled_back",
)
MAILBOX_EVENTS = (
    "mailbox.discovered",
    "mailbox.provisioned",
    "mailbox.mail_enabled",
    "mailbox.failed",
    "mailbox.replayed",
)


class MigrationMonitor:
    def __init__(
        self, ledger: Ledger, relay: OutboxRelay, cycle: PollCycle, settings: MonitorSettings
    ) -> None:
        self._ledger = ledger
        self._relay = relay
        self._cycle = cycle
        self._settings = settings

    def routes(self) -> Mapping[str, Route]:
        routes = {
            "wave.requested": Route(self.on_wave_requested, Step.MOVE),
            "wave.completion_requested": Route(self.on_completion_requested, Step.COMPLETE),
            "wave.poll_due": Route(self.on_poll_due, Step.MOVE),
        }
        routes.update({name: Route(self.on_wave_event, Step.MOVE) for name in WAVE_EVENTS})
        routes.update({name: Route(self.on_mailbox_event, Step.MOVE) for name in MAILBOX_EVENTS})
        return routes

    # ------------------------------------------------------------------ waves

    def on_wave_requested(self, event: WaveRequested, context: Context) -> None:
        with self._ledger.db.transaction() as tx:
            if self._ledger.wave(tx, event.wave_id) is not None:
                log.info("wave.already_known")  # running the same wave again changes nothing
                return
            self._ledger.save_wave(
                tx,
                WaveRow(
                    wave_id=event.wave_id,
                    phase=W.REQUESTED,
                    readiness=frozenset(),
                    request=event.data,
                    correlation_id=str(event.correlation_id),
                ),
            )

    def on_wave_event(self, event: Event, context: Context) -> None:
        with self._ledger.db.transaction() as tx:
            wave = self._ledger.wave(tx, event.wave_id)
            if wave is None:
                # wave.requested is retried or still on its way: try again shortly
                raise _WaveNotYetKnown(event.wave_id)
            self._record_details(wave, event)
            if isinstance(event, WaveFailed):
                wave.blocked_step, wave.blocked_reason = event.data.step.value, event.data.reason[:2000]
                log.warning("wave.blocked", step=event.data.step.value, reason=event.data.reason[:300])
                self._ledger.save_wave(tx, wave)
                return
            wave.blocked_step = wave.blocked_reason = None  # progress after a replay unblocks it
            verdict = advance_wave(wave.status, event.type)
            if isinstance(verdict, Invalid):
                raise InvalidMessage(verdict.reason, kind="invalid-transition")
            if isinstance(verdict, WaveStatus):
                wave.apply(verdict)
                if wave.phase is W.READY:
                    self._start_polling(tx, wave, context)
            self._maybe_migrated(tx, wave, context)
            self._ledger.save_wave(tx, wave)
        self._relay.flush()

    @staticmethod
    def _record_details(wave: WaveRow, event: Event) -> None:
        if isinstance(event, WaveCloudReady):
            wave.endpoint = event.data.migration_endpoint
            wave.max_concurrent = event.data.max_concurrent_migrations
        elif isinstance(event, WaveOnpremReady) and event.data.max_mrs_connections:
            wave.mrs_limit = event.data.max_mrs_connections
        elif isinstance(event, WaveExported):
            wave.expected = event.data.count

    # ------------------------------------------------------------------ mailboxes

    def on_mailbox_event(self, event: Event, context: Context) -> None:
        assert event.mailbox_id is not None
        mailbox_id = str(event.mailbox_id)
        with self._ledger.db.transaction() as tx:
            row = self._ledger.mailbox(tx, event.wave_id, mailbox_id)
            verdict = advance_mailbox(
                row.state if row else None, event.type, failed_from=row.failed_from if row else None
            )
            if verdict is DUPLICATE:
                return
            if isinstance(verdict, Invalid):
                raise InvalidMessage(verdict.reason, kind="invalid-transition")
            assert isinstance(verdict, MailboxState)
            row = row or MailboxRow(wave_id=event.wave_id, mailbox_id=mailbox_id, state=verdict)
            row.state = verdict
            self._fold(row, event)
            self._ledger.save_mailbox(tx, row)
            wave = self._ledger.wave(tx, event.wave_id)
            if wave is not None:
                if isinstance(event, MailboxReplayed):
                    self._resume_wave(tx, wave, context)
                elif isinstance(event, MailboxMailEnabled) and wave.phase in _MOVING:
                    self._start_polling(tx, wave, context)
                self._maybe_migrated(tx, wave, context)
                self._ledger.save_wave(tx, wave)
        self._relay.flush()

    @staticmethod
    def _fold(row: MailboxRow, event: Event) -> None:
        """Copy what later steps need from the event into the mailbox's row."""
        data = event.data
        mailbox = getattr(data, "mailbox", data)
        address = getattr(mailbox, "primary_smtp_address", None) or getattr(
            data, "primary_smtp_address", None
        )
        if address:
            row.address = str(address)
        if isinstance(event, MailboxMailEnabled):
            row.enabled_event = event.model_dump_json()
            row.has_archive = event.data.mailbox.has_archive
        elif isinstance(event, MailboxFailed):
            row.failed_step, row.error_class = event.data.step.value, event.data.error_class.value
            row.reason = event.data.reason
            row.failed_from = RESUME_AFTER_FAILED_STEP.get(event.data.step.value, M.DISCOVERED)
        elif isinstance(event, MailboxReplayed):
            row.failed_step = row.error_class = row.reason = None
            row.batch, row.submitted, row.move_attempts, row.not_before = None, False, 0, None

    # ------------------------------------------------------------------ completion

    def on_completion_requested(self, event: WaveCompletionRequested, context: Context) -> None:
        wanted = {a.lower() for a in event.data.mailboxes} if event.data.mailboxes else None
        with self._ledger.db.transaction() as tx:
            wave = self._ledger.wave(tx, event.wave_id)
            if wave is None:
                raise InvalidMessage(f"no wave {event.wave_id} in the ledger", kind="invalid")
            marked = 0
            for row in self._ledger.mailboxes(tx, wave.wave_id, [*WATCHED_STATES, M.MAIL_ENABLED]):
                if wanted is None or str(row.address).lower() in wanted:
                    row.complete_requested = True
                    self._ledger.save_mailbox(tx, row)
                    marked += 1
            self._start_polling(tx, wave, context)
            self._ledger.save_wave(tx, wave)
        log.info("completion.requested", mailboxes=marked)

    # ------------------------------------------------------------------ polling

    def on_poll_due(self, event: WavePollDue, context: Context) -> None:
        with self._ledger.db.transaction() as tx:
            wave = self._ledger.wave(tx, event.wave_id)
            if wave is None or not wave.polling or wave.poll_seq != event.data.sequence:
                return  # a stale timer: another chain is the live one
        try:
            outcome = self._cycle.run(wave, context)
        except PublishError:
            raise  # the broker is away: retry this poll later
        except Exception as exc:  # noqa: BLE001 - Exchange trouble must not end the poll chain
            log.warning("poll.failed", error_type=type(exc).__name__, error=str(exc)[:500])
            outcome = PollOutcome(changed=False, watching=1, waiting=0)
        self._relay.flush()
        with self._ledger.db.transaction() as tx:
            wave = self._ledger.wave(tx, event.wave_id) or wave
            self._maybe_migrated(tx, wave, context)
            wave.idle_polls = 0 if outcome.changed else wave.idle_polls + 1
            wave.last_poll_at = time.time()
            expecting = wave.expected is None or self._accounted(tx, wave) < wave.expected
            if outcome.watching or outcome.waiting or expecting:
                # Scheduled before poll_seq is committed: if we stop in between, this poll is
                # redelivered and schedules the same next poll (same derived id) again.
                context.schedule(self._next_poll(wave, context), self._delay(tx, wave))
                wave.poll_seq += 1
            else:
                wave.polling = False
                log.info("wave.polling_stopped", phase=wave.phase.value)
            self._ledger.save_wave(tx, wave)
        self._relay.flush()

    def _delay(self, tx: Transaction, wave: WaveRow) -> float:
        """Fast while moves progress, slower when idle, slowest when only waiting to complete."""
        fast, idle, slow = self._settings.poll_delays
        if wave.idle_polls < 3:
            return fast
        watched = self._ledger.mailboxes(tx, wave.wave_id, WATCHED_STATES)
        only_synced = bool(watched) and all(r.state is M.SYNCED for r in watched)
        return slow if only_synced and wave.idle_polls > 10 else idle

    def _next_poll(self, wave: WaveRow, context: Context) -> WavePollDue:
        return context.follow(
            WavePollDue, WavePollDueData(sequence=wave.poll_seq + 1), key=f"poll-{wave.poll_seq + 1}"
        )

    def _start_polling(self, tx: Transaction, wave: WaveRow, context: Context) -> None:
        """Start the wave's poll chain, or restart it when it has gone quiet for too long
        (a poll lost to a dead letter must not leave a wave unwatched)."""
        stale_after = 5 * max(self._settings.poll_delays)
        if wave.polling and time.time() - (wave.last_poll_at or wave.created_at) < stale_after:
            return
        if wave.polling:
            log.warning("wave.polling_restarted", last_poll_at=wave.last_poll_at)
        wave.polling = True
        wave.poll_seq += 1
        wave.idle_polls = 0
        wave.last_poll_at = time.time()
        context.schedule(
            context.follow(WavePollDue, WavePollDueData(sequence=wave.poll_seq), key=f"poll-{wave.poll_seq}"),
            self._settings.poll_delays[0],
        )

    def _resume_wave(self, tx: Transaction, wave: WaveRow, context: Context) -> None:
        verdict = advance_wave(wave.status, "mailbox.replayed")
        if isinstance(verdict, WaveStatus):
            wave.apply(verdict)
        if wave.phase in _MOVING:
            self._start_polling(tx, wave, context)

    # ------------------------------------------------------------------ migrated?

    def _accounted(self, tx: Transaction, wave: WaveRow) -> int:
        counts = self._ledger.counts(tx, wave.wave_id)
        return counts.get(M.COMPLETED, 0) + counts.get(M.FAILED, 0)

    def _maybe_migrated(self, tx: Transaction, wave: WaveRow, context: Context) -> None:
        """Announce wave.migrated once every in-scope mailbox is completed or failed."""
        if wave.expected is None or wave.phase not in (W.READY, W.MIGRATING, W.MIGRATED):
            return
        counts = self._ledger.counts(tx, wave.wave_id)
        completed, failed = counts.get(M.COMPLETED, 0), counts.get(M.FAILED, 0)
        if completed + failed < wave.expected:
            return
        key = f"{completed}/{failed}"
        if wave.migrated_key == key:
            return
        verdict = advance_wave(wave.status, "wave.migrated")
        if isinstance(verdict, WaveStatus):
            wave.apply(verdict)
        wave.migrated_key = key
        announce(
            self._ledger,
            tx,
            context.follow(
                WaveMigrated,
                WaveMigratedData(completed=completed, failed=failed, partial=failed > 0),
                key=f"migrated-{key}",
            ),
        )
        log.info("wave.migrated", completed=completed, failed=failed)


_MOVING = (W.READY, W.MIGRATING, W.MIGRATED, W.CUTOVER, W.DONE)


class _WaveNotYetKnown(Exception):
    """Transient: a wave event overtook its wave.requested (retried by the runtime)."""

    def __init__(self, wave_id: str) -> None:
        super().__init__(f"wave {wave_id} is not in the ledger yet")
