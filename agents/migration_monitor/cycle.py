"""One poll of a wave: see what Exchange reports, complete what may complete, admit more moves.

Called for each `wave.poll_due`. Everything it learns goes into the ledger
together with the events that announce it (outbox), one transaction per step,
so a crash between two steps loses nothing and repeats nothing visible.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from agents.migration_monitor.announce import announce, dead_letter
from agents.migration_monitor.database import Transaction
from agents.migration_monitor.ledger import ACTIVE_STATES, WATCHED_STATES, Ledger, MailboxRow, WaveRow
from agents.migration_monitor.ports import MoveReport, MoveService, MoveSpec
from agents.migration_monitor.settings import MonitorSettings
from agents.migration_monitor.statuses import Phase, phase_of
from agents.shared.exchange_errors import classify, is_stall
from agents.shared.exo_client import ExoError, ExoThrottled, ExoUnavailable
from contracts.envelope import Event
from contracts.events import (
    CompletionPolicy,
    ErrorClass,
    MailboxCompleted,
    MailboxCompleting,
    MailboxCompletingData,
    MailboxFailed,
    MailboxFailedData,
    MailboxMoveRequested,
    MailboxMoveRequestedData,
    MailboxSynced,
    MailboxSyncing,
    MoveMode,
    MoveProgress,
    Step,
    parse_event,
)
from contracts.states import MailboxState, WavePhase, WaveStatus, advance_wave
from events.consumer import Context

__all__ = ["PollCycle", "PollOutcome"]

log = structlog.get_logger(__name__)
M = MailboxState
_TRANSIENT_EXO = (ExoThrottled, ExoUnavailable)


@dataclass(frozen=True)
class PollOutcome:
    changed: bool  # something moved: poll again soon
    watching: int  # moves Exchange still runs for this wave
    waiting: int  # mailboxes mail-enabled but not yet submitted


class PollCycle:
    def __init__(self, ledger: Ledger, moves: MoveService, settings: MonitorSettings) -> None:
        self._ledger = ledger
        self._moves = moves
        self._settings = settings

    def run(self, wave: WaveRow, context: Context) -> PollOutcome:
        changed = self._recover_submissions(wave, context)
        changed |= self._refresh(wave, context)
        changed |= self._complete_requested(wave, context)
        changed |= self._admit(wave, context)
        with self._ledger.db.transaction() as tx:
            watching = len(self._ledger.mailboxes(tx, wave.wave_id, WATCHED_STATES))
            waiting = len(self._candidates(self._ledger.mailboxes(tx, wave.wave_id, _ADMISSIBLE), now=None))
        return PollOutcome(changed, watching, waiting)

    # ------------------------------------------------------------------ 1. interrupted submissions

    def _recover_submissions(self, wave: WaveRow, context: Context) -> bool:
        """A batch name recorded but never confirmed: did Exchange get it before we stopped?"""
        with self._ledger.db.transaction() as tx:
            pending = [
                r
                for r in self._ledger.mailboxes(tx, wave.wave_id, _ADMISSIBLE)
                if r.batch and not r.submitted
            ]
        if not pending:
            return False
        by_batch: dict[str, list[MailboxRow]] = {}
        for row in pending:
            by_batch.setdefault(str(row.batch), []).append(row)
        for batch, rows in by_batch.items():
            exists = self._submission_exists(wave, batch, rows)
            with self._ledger.db.transaction() as tx:
                if exists:
                    self._mark_submitted(tx, wave, rows, batch, context)
                else:
                    for row in rows:
                        row.batch = None
                        self._ledger.save_mailbox(tx, row)
        return True

    def _submission_exists(self, wave: WaveRow, batch: str, rows: Sequence[MailboxRow]) -> bool:
        if self._mode(wave) is MoveMode.BATCH:
            return self._moves.batch_exists(batch)
        return all(self._moves.move_request_status(str(r.address)) is not None for r in rows)

    # ------------------------------------------------------------------ 2. what Exchange reports

    def _refresh(self, wave: WaveRow, context: Context) -> bool:
        with self._ledger.db.transaction() as tx:
            watched = [r for r in self._ledger.mailboxes(tx, wave.wave_id, WATCHED_STATES) if r.submitted]
        if not watched:
            return False
        reports = self._reports(wave, watched)
        changed = False
        with self._ledger.db.transaction() as tx:
            current = self._ledger.wave(tx, wave.wave_id) or wave
            for row in watched:
                report = reports.get(str(row.address).lower())
                if report is None:
                    continue  # not visible yet (Exchange creates users asynchronously)
                changed |= self._apply(tx, current, row, report, context)
            self._ledger.save_wave(tx, current)
        return changed

    def _reports(self, wave: WaveRow, watched: Sequence[MailboxRow]) -> dict[str, MoveReport]:
        reports: dict[str, MoveReport] = {}
        if self._mode(wave) is MoveMode.BATCH:
            for batch in sorted({str(r.batch) for r in watched}):
                for report in self._moves.batch_users(batch):
                    reports[report.address.lower()] = report
            # Progress needs per-user statistics: a few per poll, the stalest first.
            syncing = sorted(
                (r for r in watched if r.state in (M.MOVE_REQUESTED, M.SYNCING)),
                key=lambda r: r.stats_at or 0.0,
            )
            for row in syncing[: self._settings.statistics_per_poll]:
                address = str(row.address).lower()
                if address in reports and phase_of(reports[address].status) is Phase.SYNCING:
                    reports[address] = self._moves.user_statistics(str(row.address))
                    row.stats_at = time.time()
        else:
            for row in watched:
                found = self._moves.move_request_status(str(row.address))
                if found is not None:
                    reports[str(row.address).lower()] = found
        return reports

    def _apply(
        self, tx: Transaction, wave: WaveRow, row: MailboxRow, report: MoveReport, context: Context
    ) -> bool:
        """Fold one report into the mailbox's row; announce what changed. True if anything did."""
        phase = phase_of(report.status)
        previous_percent = row.percent
        row.exchange_status = (
            report.status + (f" ({report.status_detail})" if report.status_detail else "")
        )[:256]
        row.percent = report.percent if report.percent is not None else row.percent
        row.bytes_transferred = report.bytes_transferred or row.bytes_transferred
        row.bytes_total = report.bytes_total or row.bytes_total
        if "MRSProxyConnectionLimitReached" in f"{report.error} {report.status_detail}":
            self._lower_concurrency(wave)
        if is_stall(report.status_detail):
            log.info("move.stalled", mailbox=row.address, detail=report.status_detail)
        if phase is Phase.FAILED:
            self._move_failed(tx, wave, row, report.error or report.status, context)
            return True
        if phase is Phase.STOPPED:
            self._move_failed(
                tx,
                wave,
                row,
                f"the move was {report.status.lower()} outside Homebound",
                context,
                error_class=ErrorClass.NEEDS_HUMAN,
            )
            return True
        target = phase.state
        progress = MoveProgress(
            primary_smtp_address=str(row.address),
            status=report.status[:256],
            percent=max(0, min(100, report.percent if report.percent is not None else _implied(phase))),
            bytes_transferred=report.bytes_transferred,
            bytes_total=report.bytes_total,
            items_transferred=report.items_transferred,
            items_skipped=report.items_skipped,
        )
        mailbox_id = uuid.UUID(row.mailbox_id)
        event: Event | None = None
        if target is M.SYNCING and row.state in (M.MOVE_REQUESTED, M.SYNCING):
            if row.state is M.MOVE_REQUESTED or progress.percent != previous_percent:
                event = context.follow(
                    MailboxSyncing,
                    progress,
                    mailbox_id=mailbox_id,
                    key=f"{row.mailbox_id}/syncing/{progress.percent}/{row.move_attempts}",
                )
        elif target is M.COMPLETING and _rank(target) > _rank(row.state):
            event = context.follow(
                MailboxCompleting,
                MailboxCompletingData(primary_smtp_address=str(row.address)),
                mailbox_id=mailbox_id,
                key=f"{row.mailbox_id}/completing",
            )
        elif target in (M.SYNCED, M.COMPLETED) and _rank(target) > _rank(row.state):
            model = MailboxSynced if target is M.SYNCED else MailboxCompleted
            event = context.follow(
                model, progress, mailbox_id=mailbox_id, key=f"{row.mailbox_id}/{target.value}"
            )
        if event is not None and target is not None:
            announce(self._ledger, tx, event)
            row.state = target
            if target is M.COMPLETED:
                row.percent = 100
        self._ledger.save_mailbox(tx, row)
        return event is not None

    def _move_failed(
        self,
        tx: Transaction,
        wave: WaveRow,
        row: MailboxRow,
        message: str,
        context: Context,
        error_class: ErrorClass | None = None,
    ) -> None:
        verdict = classify(message)
        error_class = error_class or verdict.error_class
        if error_class is ErrorClass.TRANSIENT and row.move_attempts < self._settings.max_move_attempts:
            log.info(
                "move.failed_transiently", mailbox=row.address, error=message[:300], attempt=row.move_attempts
            )
            self._withdraw(wave, row)
            row.batch, row.submitted = None, False
            row.not_before = time.time() + 30.0 * row.move_attempts
            self._ledger.save_mailbox(tx, row)
            return
        if error_class is ErrorClass.TRANSIENT:
            message = f"gave up after {row.move_attempts} move attempts: {message}"
        self._withdraw(wave, row)  # so a replay can submit the mailbox again
        final = ErrorClass.PERMANENT if error_class is ErrorClass.TRANSIENT else error_class
        self.fail(
            tx,
            row,
            context,
            step=Step.MOVE,
            error_class=final,
            reason=message,
            remediation=verdict.remediation,
        )

    def fail(
        self,
        tx: Transaction,
        row: MailboxRow,
        context: Context,
        *,
        step: Step,
        error_class: ErrorClass,
        reason: str,
        remediation: str,
    ) -> None:
        """Record the failure, dead-letter the mailbox's `mailbox.mail_enabled` (what a replay
        brings back) and announce `mailbox.failed`; all in the caller's transaction."""
        subject = parse_event(str(row.enabled_event)) if row.enabled_event else None
        row.state, row.failed_from = M.FAILED, M.MAIL_ENABLED
        row.failed_step, row.error_class, row.reason = step.value, error_class.value, reason[:4000]
        row.batch, row.submitted = None, False
        self._ledger.save_mailbox(tx, row)
        if subject is None:
            return
        dead_letter(
            self._ledger,
            tx,
            subject,
            step=step,
            error_class=error_class,
            reason=reason,
            error_type="MoveFailed",
        )
        failure = MailboxFailedData(
            step=step,
            error_class=error_class,
            reason=reason[:4000],
            error_type="MoveFailed",
            remediation=remediation[:4000],
            attempts=max(1, row.move_attempts),
            primary_smtp_address=row.address,
        )
        announce(
            self._ledger,
            tx,
            context.follow(
                MailboxFailed,
                failure,
                mailbox_id=subject.mailbox_id,
                key=f"{row.mailbox_id}/failed/{row.move_attempts}",
            ),
        )
        log.warning("move.failed", mailbox=row.address, error_class=error_class.value, reason=reason[:300])

    def _withdraw(self, wave: WaveRow, row: MailboxRow) -> None:
        """Remove the failed user from Exchange's batch (or its move request), best effort."""
        try:
            if self._mode(wave) is MoveMode.BATCH:
                self._moves.remove_user(str(row.address))
            else:
                self._moves.remove_move_request(str(row.address))
        except (ExoError, *_TRANSIENT_EXO) as exc:
            log.warning("move.withdraw_failed", mailbox=row.address, error=str(exc)[:300])

    def _lower_concurrency(self, wave: WaveRow) -> None:
        limit = self._limit(wave)
        wave.concurrency_cap = max(1, int(limit * 0.75))
        wave.cap_until = time.time() + self._settings.cap_cooldown_seconds
        log.warning("mrsproxy.limit_reached", new_cap=wave.concurrency_cap)

    # ------------------------------------------------------------------ 3. completion on request

    def _complete_requested(self, wave: WaveRow, context: Context) -> bool:
        with self._ledger.db.transaction() as tx:
            ready = [r for r in self._ledger.mailboxes(tx, wave.wave_id, [M.SYNCED]) if r.complete_requested]
        if not ready:
            return False
        if self._mode(wave) is MoveMode.BATCH:
            by_batch: dict[str, list[MailboxRow]] = {}
            for row in ready:
                by_batch.setdefault(str(row.batch), []).append(row)
            with self._ledger.db.transaction() as tx:
                everyone = {str(r.batch): 0 for r in ready}
                for row in self._ledger.mailboxes(tx, wave.wave_id, WATCHED_STATES):
                    if str(row.batch) in everyone:
                        everyone[str(row.batch)] += 1
            for batch, rows in by_batch.items():
                if len(rows) == everyone[batch]:
                    self._moves.complete_batch(batch)
                else:
                    for row in rows:
                        self._moves.complete_user(str(row.address))
        else:
            for row in ready:
                self._moves.resume_move_request(str(row.address))
        with self._ledger.db.transaction() as tx:
            for row in ready:
                row.state, row.complete_requested = M.COMPLETING, False
                self._ledger.save_mailbox(tx, row)
                announce(
                    self._ledger,
                    tx,
                    context.follow(
                        MailboxCompleting,
                        MailboxCompletingData(primary_smtp_address=str(row.address)),
                        mailbox_id=uuid.UUID(row.mailbox_id),
                        key=f"{row.mailbox_id}/completing",
                    ),
                )
        return True

    # ------------------------------------------------------------------ 4. admission

    def _limit(self, wave: WaveRow) -> int:
        limits = [
            wave.max_concurrent or self._settings.max_concurrent_migrations,
            wave.mrs_limit or self._settings.mrsproxy_max_connections,
        ]
        if wave.concurrency_cap and (wave.cap_until or 0) > time.time():
            limits.append(wave.concurrency_cap)
        return max(1, min(limits))

    @staticmethod
    def _candidates(rows: Sequence[MailboxRow], now: float | None) -> list[MailboxRow]:
        moment = time.time() if now is None else now
        return [r for r in rows if not r.batch and r.enabled_event and (r.not_before or 0) <= moment]

    def _admit(self, wave: WaveRow, context: Context) -> bool:
        if wave.phase not in (WavePhase.READY, WavePhase.MIGRATING, WavePhase.MIGRATED):
            return False
        with self._ledger.db.transaction() as tx:
            candidates = self._candidates(self._ledger.mailboxes(tx, wave.wave_id, _ADMISSIBLE), None)
            room = self._limit(wave) - self._ledger.moves_in_flight(tx)
        if not candidates or room <= 0:
            return False
        chosen = candidates[:room]
        size = self._settings.batch_size if self._mode(wave) is MoveMode.BATCH else len(chosen)
        for start in range(0, len(chosen), size):
            self._submit(wave, chosen[start : start + size], context)
        return True

    def _submit(self, wave: WaveRow, rows: list[MailboxRow], context: Context) -> None:
        with self._ledger.db.transaction() as tx:
            current = self._ledger.wave(tx, wave.wave_id) or wave
            current.batch_seq += 1
            name = f"{self._settings.batch_prefix}-{wave.wave_id}-{current.batch_seq:03d}"
            for row in rows:  # record the intent first: a crash now is recovered next poll
                row.batch, row.submitted = name, False
                row.move_attempts += 1
                self._ledger.save_mailbox(tx, row)
            self._ledger.save_wave(tx, current)
            wave.batch_seq = current.batch_seq
        specs = [MoveSpec(str(r.address), uuid.UUID(r.mailbox_id), r.has_archive) for r in rows]
        try:
            self._send(wave, name, specs)
        except _TRANSIENT_EXO as exc:
            log.warning("move.submit_deferred", batch=name, error=str(exc)[:300])
            with self._ledger.db.transaction() as tx:
                for row in rows:
                    row.batch, row.not_before = None, time.time() + 15
                    row.move_attempts -= 1
                    self._ledger.save_mailbox(tx, row)
            return
        except ExoError as exc:
            verdict = classify(exc.message, exc.exception_type)
            final = (
                ErrorClass.PERMANENT if verdict.error_class is ErrorClass.TRANSIENT else verdict.error_class
            )
            with self._ledger.db.transaction() as tx:
                for row in rows:
                    self.fail(
                        tx,
                        row,
                        context,
                        step=Step.MOVE,
                        error_class=final,
                        reason=f"{exc.exception_type}: {exc.message}",
                        remediation=verdict.remediation,
                    )
            return
        with self._ledger.db.transaction() as tx:
            self._mark_submitted(tx, wave, rows, name, context)
        log.info("moves.submitted", batch=name, count=len(rows))

    def _send(self, wave: WaveRow, name: str, specs: list[MoveSpec]) -> None:
        request = wave.request
        databases = tuple(request.target_databases) or self._settings.target_databases
        archives = tuple(request.target_archive_databases) or self._settings.target_archive_databases
        policy = request.completion.policy
        if self._mode(wave) is MoveMode.BATCH:
            self._moves.submit_batch(
                name,
                specs,
                endpoint=wave.endpoint or self._settings.endpoint_name,
                delivery_domain=self._settings.delivery_domain,
                target_databases=databases,
                target_archive_databases=archives,
                auto_complete=policy is CompletionPolicy.AUTO,
                complete_after=request.completion.after,
            )
            return
        if not databases:
            raise ExoError(
                "New-MoveRequest",
                400,
                "BadRequest",
                "ArgumentException",
                "a move request needs a target database: set --target-database",
            )
        for index, spec in enumerate(specs):
            database = databases[(wave.batch_seq + index) % len(databases)]
            self._moves.submit_move_request(
                spec,
                batch_name=name,
                remote_host=self._settings.remote_host,
                delivery_domain=self._settings.delivery_domain,
                target_database=database,
                target_archive_database=(archives or databases)[index % len(archives or databases)],
                suspend_when_ready=policy is CompletionPolicy.MANUAL,
                complete_after=request.completion.after,
            )

    def _mark_submitted(
        self, tx: Transaction, wave: WaveRow, rows: Sequence[MailboxRow], name: str, context: Context
    ) -> None:
        current = self._ledger.wave(tx, wave.wave_id) or wave
        for row in rows:
            row.batch, row.submitted, row.not_before = name, True, None
            if row.state is M.MAIL_ENABLED:
                row.state = M.MOVE_REQUESTED
                announce(
                    self._ledger,
                    tx,
                    context.follow(
                        MailboxMoveRequested,
                        MailboxMoveRequestedData(
                            primary_smtp_address=str(row.address),
                            move_mode=self._mode(wave),
                            batch_name=name,
                            primary_only=False,
                        ),
                        mailbox_id=uuid.UUID(row.mailbox_id),
                        key=f"{row.mailbox_id}/{name}",
                    ),
                )
            self._ledger.save_mailbox(tx, row)
        status = advance_wave(current.status, "mailbox.move_requested")
        if isinstance(status, WaveStatus):
            current.apply(status)
            self._ledger.save_wave(tx, current)

    @staticmethod
    def _mode(wave: WaveRow) -> MoveMode:
        return wave.request.move_mode


# Mailboxes the admission may pick: mail-enabled, or moved before and withdrawn after a
# transient failure (their state stays move_requested; they only lost their batch).
_ADMISSIBLE = (M.MAIL_ENABLED, *ACTIVE_STATES)
_ORDER = (
    M.DISCOVERED,
    M.PROVISIONED,
    M.MAIL_ENABLED,
    M.MOVE_REQUESTED,
    M.SYNCING,
    M.SYNCED,
    M.COMPLETING,
    M.COMPLETED,
)


def _rank(state: MailboxState) -> int:
    return _ORDER.index(state) if state in _ORDER else -1


def _implied(phase: Phase) -> int:
    return {Phase.SYNCED: 95, Phase.COMPLETING: 99, Phase.COMPLETED: 100}.get(phase, 0)
