"""Exchange's status names, derived from a move's phase (one table per object kind).

A migration user and the move request under it are the same move seen through
two cmdlets, so they must never disagree; deriving both from `Phase` ensures
that. Batch status is derived from its users, as Exchange reports it.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from lab.exo.model import MigrationBatch, Move, Phase

__all__ = ["batch_counts", "batch_status", "migration_user_status", "move_request_status"]

_USER: Final = {
    Phase.CREATED: "Queued",
    Phase.QUEUED: "Queued",
    Phase.VALIDATING: "Validating",
    Phase.SYNCING: "Syncing",
    Phase.SYNCED: "Synced",
    Phase.COMPLETING: "Completing",
    Phase.COMPLETED: "Completed",
    Phase.FAILED: "Failed",
}
_REQUEST: Final = {
    Phase.CREATED: "Queued",
    Phase.QUEUED: "Queued",
    Phase.VALIDATING: "InProgress",
    Phase.SYNCING: "InProgress",
    Phase.SYNCED: "Synced",
    Phase.COMPLETING: "CompletionInProgress",
    Phase.COMPLETED: "Completed",
    Phase.FAILED: "Failed",
}


def migration_user_status(move: Move) -> str:
    if move.phase is Phase.COMPLETED and move.skipped_items:
        return "CompletedWithWarnings"
    return _USER[move.phase]


def move_request_status(move: Move) -> str:
    if move.phase is Phase.SYNCED and move.suspend_when_ready and not move.in_batch:
        return "AutoSuspended"
    if move.phase is Phase.COMPLETED and move.skipped_items:
        return "CompletedWithWarning"
    return _REQUEST[move.phase]


def batch_counts(moves: list[Move]) -> dict[str, int]:
    phases = Counter(m.phase for m in moves)
    return {
        "TotalCount": len(moves),
        "ActiveCount": sum(phases[p] for p in (Phase.QUEUED, Phase.VALIDATING, Phase.SYNCING,
                                               Phase.COMPLETING)),
        "StoppedCount": phases[Phase.CREATED],
        "SyncedCount": phases[Phase.SYNCED],
        "FinalizedCount": phases[Phase.COMPLETED],
        "FailedCount": phases[Phase.FAILED],
        "PendingCount": phases[Phase.CREATED] + phases[Phase.QUEUED],
    }


def batch_status(batch: MigrationBatch, moves: list[Move]) -> str:
    if not batch.started:
        return "Created"
    phases = Counter(m.phase for m in moves)
    failed = phases[Phase.FAILED]
    if moves and failed == len(moves):
        return "Failed"
    running = phases[Phase.QUEUED] + phases[Phase.VALIDATING] + phases[Phase.SYNCING]
    if phases[Phase.COMPLETING] or (batch.complete_requested and (running or phases[Phase.SYNCED])):
        return "Completing"
    if running:
        return "Syncing"
    if phases[Phase.SYNCED]:
        return "SyncedWithErrors" if failed else "Synced"
    if failed:
        return "CompletedWithErrors"
    return "Completed"
