"""The Mailbox Replication Service of the stand-in: moves advance on a clock.

Every ``move_tick_seconds`` the simulator admits queued moves (never more per
migration endpoint than its MaxConcurrentMigrations), advances syncing ones at
``move_bytes_per_second`` (at least ``move_min_seconds`` each), and completes
the ones whose batch or request says so. Calls to the on-prem MRSProxy
(`open`, `validate-target`, `complete`, `close`) run in a small worker pool,
outside the tenant lock, and their outcome is applied when they return; a move
with a call in flight is left alone until then.

Phases: queued -> validating -> syncing -> synced -> completing -> completed,
or failed with Exchange's error text. Transient refusals (MRSProxy connection
limit, communication errors) send a move back to wait, visibly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from lab.exo.config import ExoConfig
from lab.exo.model import ACTIVE_PHASES, NIL_GUID, Move, Phase, utcnow
from lab.exo.mrsproxy_client import COMMUNICATION_ERROR, MrsOutcome, MrsProxyClient
from lab.exo.tenant import Tenant
from lab.mrsproxy_protocol import MESSAGES, CloseMove, CompleteMove, OpenMove, ValidateTarget

__all__ = ["MoveSimulator"]

log = logging.getLogger("lab.exo.moves")

LIMIT_TYPE: Final = "MRSProxyConnectionLimitReachedTransientException"
BAD_ITEMS_TYPE: Final = "TooManyBadItemsPermanentException"
STALL_DETAIL: Final = "StalledDueToTarget_MdbAvailability"


@dataclass(frozen=True)
class _Job:
    """What a worker needs from a move, copied under the lock."""

    request_guid: uuid.UUID
    remote_host: str
    username: str | None
    password: str | None
    open_first: bool
    validate: ValidateTarget | None = None
    complete: CompleteMove | None = None
    fault: str | None = None


@dataclass(frozen=True)
class _Result:
    opened: bool
    outcome: MrsOutcome


class MoveSimulator:
    """Advances every move of one tenant; start() runs it on a background thread."""

    def __init__(self, tenant: Tenant, mrs: MrsProxyClient, config: ExoConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.tenant = tenant
        self.mrs = mrs
        self.config = config
        self.clock = clock
        self._busy: set[uuid.UUID] = set()
        self._progress_stamp: dict[uuid.UUID, float] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="exo-mrs")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="exo-moves", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.config.move_tick_seconds):
            try:
                self.tick()
            except Exception:
                log.exception("move tick failed")

    # ------------------------------------------------------------------ the clock

    def tick(self) -> None:
        now = self.clock()
        with self.tenant.lock:
            moves = sorted(self.tenant.moves.values(), key=lambda m: m.seq)
            active = Counter(m.endpoint for m in moves if m.phase in ACTIVE_PHASES)
            for move in moves:
                if move.request_guid in self._busy:
                    continue
                if move.phase is Phase.QUEUED:
                    self._admit(move, now, active)
                elif move.phase is Phase.SYNCING:
                    self._sync(move, now)
                elif move.phase is Phase.SYNCED and self._should_complete(move):
                    self._begin_completion(move, now)
                elif move.phase is Phase.COMPLETING and (move.complete_due or 0) <= now:
                    self._submit(move, self._complete_job(move), self._apply_completion)

    def _admit(self, move: Move, now: float, active: Counter[str | None]) -> None:
        if move.next_attempt_at > now:
            return
        endpoint = self.tenant.endpoints.get((move.endpoint or "").lower())
        if endpoint is not None and active[move.endpoint] >= endpoint.max_concurrent_migrations:
            return  # beyond MaxConcurrentMigrations: stays Queued
        mailbox = self.tenant.mailboxes[move.mailbox_seq]
        fault = self.tenant.fault_for(mailbox)
        if fault is not None and fault.kind == "mrsproxy-limit" and (fault.count or 0) > 0:
            fault.count = (fault.count or 0) - 1
            self._transient(move, now, MESSAGES["connection-limit"].format(
                limit=100, server=move.remote_host))
            return
        active[move.endpoint] += 1
        move.phase = Phase.VALIDATING
        move.status_detail = "Validating"
        move.started_at = move.started_at or utcnow()
        move.last_update = utcnow()
        archive = mailbox.has_archive and not move.primary_only
        job = _Job(
            request_guid=move.request_guid, remote_host=move.remote_host,
            username=move.username, password=move.password, open_first=True,
            validate=ValidateTarget(
                exchange_guid=mailbox.exchange_guid,
                archive_guid=mailbox.archive_guid if archive else None,
                primary_only=move.primary_only,
                legacy_exchange_dn=mailbox.legacy_exchange_dn,
                primary_smtp_address=mailbox.primary_smtp_address,
                target_delivery_domain=move.target_delivery_domain,
                target_database=move.target_database or "",
                target_archive_database=move.target_archive_database if archive else None,
            ),
            fault=fault.kind if fault is not None else None,
        )
        self._submit(move, job, self._apply_validation)

    def _sync(self, move: Move, now: float) -> None:
        mailbox = self.tenant.mailboxes[move.mailbox_seq]
        fault = self.tenant.fault_for(mailbox)
        if move.next_attempt_at > now:
            return  # waiting out a transient error
        if move.status_detail == "TransientFailure":
            move.status_detail, move.message = "CopyingMessages", None
        last = self._progress_stamp.get(move.request_guid)
        self._progress_stamp[move.request_guid] = now
        if last is None:
            return
        if fault is not None and fault.kind == "stall" and move.stall_until is None:
            move.stall_until = now + (fault.seconds or 0)
        if move.stall_until is not None and now < move.stall_until:
            if fault is None or fault.kind != "stall":
                move.stall_until = now  # the fault was lifted
            else:
                move.status_detail = STALL_DETAIL
                move.last_update = utcnow()
                return
        if move.status_detail == STALL_DETAIL:
            move.status_detail = "CopyingMessages"
        total = max(move.bytes_total, 1)
        fraction = move.bytes_transferred / total
        if (fault is not None and fault.kind == "communication-error" and (fault.count or 0) > 0
                and fraction >= 0.3):
            fault.count = (fault.count or 0) - 1
            move.status_detail = "TransientFailure"
            move.message = (f"{COMMUNICATION_ERROR}: The call to "
                            f"'https://{move.remote_host}/EWS/mrsproxy.svc' failed. Error details: "
                            "The underlying connection was closed: An unexpected error occurred "
                            "on a receive.")
            move.next_attempt_at = now + self.config.move_retry_seconds
            move.last_update = utcnow()
            self._progress_stamp.pop(move.request_guid, None)
            return
        rate = min(float(self.config.move_bytes_per_second), total / self.config.move_min_seconds)
        move.bytes_transferred = min(total, int(move.bytes_transferred + rate * (now - last)))
        fraction = move.bytes_transferred / total
        move.items_transferred = int(move.items_total * fraction)
        move.percent = 10 + int(85 * fraction)
        move.last_update = utcnow()
        if move.bytes_transferred >= total:
            move.bytes_transferred = move.bytes_total
            bad_items = (fault.count or 0) if fault and fault.kind == "bad-items" else 0
            self._sync_finished(move, now, bad_items)

    def _sync_finished(self, move: Move, now: float, bad_items: int) -> None:
        self._progress_stamp.pop(move.request_guid, None)
        move.skipped_items = bad_items
        limit = move.bad_item_limit
        if bad_items and limit is not None and bad_items > limit and not self._approved(move):
            self._fail(move, BAD_ITEMS_TYPE,
                       f"{BAD_ITEMS_TYPE}: The job encountered too many bad items ({bad_items}); "
                       f"the limit is {limit}. Approve the skipped items "
                       "(Set-MigrationBatch -ApproveSkippedItems or Set-MoveRequest "
                       "-SkippedItemApprovalTime) or raise BadItemLimit, then resume.")
            return
        move.synced_at = utcnow()
        batch = self.tenant.batches.get((move.migration_batch or "").lower())
        if batch is not None:
            batch.last_synced_at = move.synced_at
        if self._should_complete(move):
            self._begin_completion(move, now)
            return
        move.phase = Phase.SYNCED
        move.percent = 95
        move.status_detail = "AutoSuspended" if move.suspend_when_ready else "IncrementalSync"
        self._close(move)

    def _approved(self, move: Move) -> bool:
        if move.skipped_items_approved:
            return True
        batch = self.tenant.batches.get((move.migration_batch or "").lower())
        return batch is not None and batch.skipped_items_approved_at is not None

    def _should_complete(self, move: Move) -> bool:
        now = utcnow()
        if move.in_batch:
            batch = self.tenant.batches.get((move.migration_batch or "").lower())
            if batch is None:
                return False
            due = batch.complete_after is not None and batch.complete_after <= now
            # Set-MigrationUser -CompleteAfter completes one user of a batch
            user_due = move.complete_after is not None and move.complete_after <= now
            return batch.complete_requested or batch.auto_complete or due or user_due
        if move.resume_requested:
            return True
        if move.complete_after is not None:
            return move.complete_after <= now
        return not move.suspend_when_ready

    def _begin_completion(self, move: Move, now: float) -> None:
        move.phase = Phase.COMPLETING
        move.percent = max(move.percent, 95)
        move.status_detail = "CompletionInProgress"
        move.complete_due = now + self.config.move_complete_seconds
        move.last_update = utcnow()

    def _complete_job(self, move: Move) -> _Job:
        mailbox = self.tenant.mailboxes[move.mailbox_seq]
        return _Job(
            request_guid=move.request_guid, remote_host=move.remote_host,
            username=move.username, password=move.password, open_first=not move.mrs_open,
            complete=CompleteMove(
                exchange_guid=mailbox.exchange_guid, target_database=move.target_database or "",
                archive_moved=mailbox.archive_guid != NIL_GUID and not move.primary_only,
            ),
        )

    # ------------------------------------------------------------------ workers

    def _submit(self, move: Move, job: _Job, apply: Callable[[_Job, _Result], None]) -> None:
        self._busy.add(move.request_guid)
        try:
            self._pool.submit(self._work, job, apply)
        except RuntimeError:  # shutting down
            self._busy.discard(move.request_guid)

    def _work(self, job: _Job, apply: Callable[[_Job, _Result], None]) -> None:
        try:
            result = self._call(job)
        except Exception as exc:
            log.exception("MRSProxy call failed")
            result = _Result(False, MrsOutcome(False, True, COMMUNICATION_ERROR,
                                               f"The call failed: {type(exc).__name__}."))
        with self.tenant.lock:
            self._busy.discard(job.request_guid)
            still_there = job.request_guid in self.tenant.moves
            if still_there:
                apply(job, result)
        if not still_there and result.opened:  # removed meanwhile: give the connection back
            self._close_quietly(job)

    def _call(self, job: _Job) -> _Result:
        opened = False
        if job.open_first:
            outcome = self.mrs.call(job.remote_host, job.username, job.password,
                                    OpenMove(move_id=job.request_guid))
            if not outcome.ok:
                return _Result(False, outcome)
            opened = True
        if job.validate is not None:
            if job.fault == "missing-guid":
                outcome = MrsOutcome(False, False, "RecipientNotFoundPermanentException",
                                     MESSAGES["no-target"].format(guid=job.validate.exchange_guid))
            elif job.fault == "missing-smtp-proxy":
                outcome = MrsOutcome(False, False, "TargetMailboxProxyNotFoundPermanentException",
                                     MESSAGES["smtp-proxy"].format(
                                         domain=job.validate.target_delivery_domain))
            else:
                outcome = self.mrs.call(job.remote_host, job.username, job.password, job.validate)
        elif job.complete is not None:
            outcome = self.mrs.call(job.remote_host, job.username, job.password, job.complete)
        else:
            outcome = MrsOutcome(True)
        if not outcome.ok or job.complete is not None:
            self._close_quietly(job)
            opened = False
        return _Result(opened, outcome)

    def _close_quietly(self, job: _Job) -> None:
        self.mrs.call(job.remote_host, job.username, job.password,
                      CloseMove(move_id=job.request_guid))

    def _close(self, move: Move) -> None:
        """Give the move's MRSProxy connection back (synced, failed or removed moves)."""
        if not move.mrs_open:
            return
        move.mrs_open = False
        job = _Job(request_guid=move.request_guid, remote_host=move.remote_host,
                   username=move.username, password=move.password, open_first=False)
        with contextlib.suppress(RuntimeError):  # the pool is shutting down
            self._pool.submit(self._close_quietly, job)

    def release(self, move: Move) -> None:
        """Called (under the tenant lock) when a move is removed."""
        self._close(move)
        self._progress_stamp.pop(move.request_guid, None)

    # ------------------------------------------------------------------ outcomes

    def _apply_validation(self, job: _Job, result: _Result) -> None:
        move = self.tenant.moves[job.request_guid]
        now = self.clock()
        if result.outcome.ok:
            move.phase = Phase.SYNCING
            move.mrs_open = result.opened
            move.status_detail = "CopyingMessages"
            move.message = move.failure_type = None
            move.percent = max(move.percent, 10)
            move.last_update = utcnow()
        elif result.outcome.transient:
            self._transient(move, now, result.outcome.error_text)
        else:
            self._fail(move, result.outcome.error_type, result.outcome.error_text)

    def _apply_completion(self, job: _Job, result: _Result) -> None:
        move = self.tenant.moves[job.request_guid]
        now = self.clock()
        move.mrs_open = False
        if result.outcome.transient:
            move.message = result.outcome.error_text
            move.complete_due = now + self.config.move_retry_seconds
            move.last_update = utcnow()
            return
        if not result.outcome.ok:
            self._fail(move, result.outcome.error_type, result.outcome.error_text)
            return
        move.phase = Phase.COMPLETED
        move.percent = 100
        move.items_transferred = move.items_total
        move.status_detail = "Completed"
        move.message = None
        move.completed_at = move.last_update = utcnow()
        self.tenant.convert_to_mail_user(self.tenant.mailboxes[move.mailbox_seq],
                                         move.target_delivery_domain)
        batch = self.tenant.batches.get((move.migration_batch or "").lower())
        if batch is not None and all(m.phase in (Phase.COMPLETED, Phase.FAILED)
                                     for m in self.tenant.batch_moves(batch)):
            batch.finalized_at = utcnow()

    def _transient(self, move: Move, now: float, text: str) -> None:
        move.phase = Phase.QUEUED
        move.status_detail = "TransientFailure"
        move.message = text
        move.next_attempt_at = now + self.config.move_retry_seconds
        move.last_update = utcnow()

    def _fail(self, move: Move, error_type: str | None, text: str) -> None:
        move.phase = Phase.FAILED
        move.status_detail = "FailedOther"
        move.failure_type = error_type
        move.message = text
        move.failed_at = move.last_update = utcnow()
        self._progress_stamp.pop(move.request_guid, None)
        self._close(move)
