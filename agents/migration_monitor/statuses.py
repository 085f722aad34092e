"""Exchange's status names (EXCHANGE.md) mapped to the mailbox states we publish.

Both migration-user statuses (batches) and move-request statuses are
accepted, by name or by the integer enum Exchange sometimes serialises.
"""

from __future__ import annotations

import enum
import re
from typing import Final

from contracts.states import MailboxState

__all__ = ["Phase", "parse_size", "phase_of"]


class Phase(enum.Enum):
    WAITING = "waiting"  # queued, validating, provisioning: no data moving yet
    SYNCING = "syncing"
    SYNCED = "synced"  # initial copy done; waits for completion
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped or suspended by someone: needs a human decision

    @property
    def state(self) -> MailboxState | None:
        return _STATE[self]


_STATE: Final = {
    Phase.WAITING: None,
    Phase.SYNCING: MailboxState.SYNCING,
    Phase.SYNCED: MailboxState.SYNCED,
    Phase.COMPLETING: MailboxState.COMPLETING,
    Phase.COMPLETED: MailboxState.COMPLETED,
    Phase.FAILED: MailboxState.FAILED,
    Phase.STOPPED: None,
}

_BY_NAME: Final = {
    # migration users
    "queued": Phase.WAITING,
    "validating": Phase.WAITING,
    "provisioning": Phase.WAITING,
    "provisionupdating": Phase.WAITING,
    "starting": Phase.WAITING,
    "removing": Phase.WAITING,
    "syncing": Phase.SYNCING,
    "incrementalsyncing": Phase.SYNCING,
    "synced": Phase.SYNCED,
    "incrementalsynced": Phase.SYNCED,
    "completionsynced": Phase.SYNCED,
    "completing": Phase.COMPLETING,
    "completed": Phase.COMPLETED,
    "completedwithwarnings": Phase.COMPLETED,
    "completedwithwarning": Phase.COMPLETED,
    "failed": Phase.FAILED,
    "completionfailed": Phase.FAILED,
    "incrementalfailed": Phase.FAILED,
    "corrupted": Phase.FAILED,
    "stopped": Phase.STOPPED,
    "incrementalstopped": Phase.STOPPED,
    "stopping": Phase.STOPPED,
    # move requests
    "none": Phase.WAITING,
    "inprogress": Phase.SYNCING,
    "autosuspended": Phase.SYNCED,
    "completioninprogress": Phase.COMPLETING,
    "retrying": Phase.SYNCING,
    "suspended": Phase.STOPPED,
}
# MigrationUserStatus as integers (Microsoft.Exchange.Data.Storage.Management.MigrationUserStatus)
_BY_NUMBER: Final = {
    0: "Queued",
    1: "Syncing",
    2: "Failed",
    3: "Synced",
    4: "IncrementalFailed",
    5: "Completing",
    6: "CompletionSynced",
    7: "Completed",
    8: "CompletionFailed",
    9: "Corrupted",
    10: "Provisioning",
    11: "ProvisionUpdating",
    12: "Stopped",
    13: "IncrementalSyncing",
    14: "IncrementalStopped",
    15: "Starting",
    16: "Stopping",
    17: "Removing",
    18: "CompletedWithWarnings",
    19: "Validating",
    20: "IncrementalSynced",
}


def phase_of(status: str | int) -> Phase:
    """The phase of an Exchange status; an unknown one counts as waiting (reported, not acted on)."""
    if isinstance(status, int) or (isinstance(status, str) and status.isdigit()):
        status = _BY_NUMBER.get(int(status), "Queued")
    return _BY_NAME.get(str(status).replace(" ", "").lower(), Phase.WAITING)


_SIZE: Final = re.compile(r"\(([\d,.\s]+) bytes\)")


def parse_size(text: object) -> int | None:
    """Exchange sizes come as "1.2 GB (1,288,490,188 bytes)" or as a plain number."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return int(text)
    match = _SIZE.search(str(text))
    if match:
        return int(re.sub(r"[^\d]", "", match.group(1)))
    digits = str(text).replace(",", "").strip()
    return int(digits) if digits.isdigit() else None
