"""What the monitor needs from Exchange Online to run moves (adapters.py implements it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["EndpointLimits", "MoveReport", "MoveService", "MoveSpec"]


@dataclass(frozen=True)
class EndpointLimits:
    name: str
    max_concurrent_migrations: int
    max_concurrent_incremental_syncs: int | None


@dataclass(frozen=True)
class MoveSpec:
    """One mailbox to move: who, and whether its archive goes too."""

    address: str
    exchange_guid: uuid.UUID
    has_archive: bool


@dataclass(frozen=True)
class MoveReport:
    """What Exchange says about one mailbox's move, status names as Exchange spells them."""

    address: str
    status: str
    percent: int | None = None
    bytes_transferred: int | None = None
    bytes_total: int | None = None
    items_transferred: int | None = None
    items_skipped: int | None = None
    error: str = ""
    status_detail: str = ""


class MoveService(Protocol):
    def endpoint_limits(self, endpoint: str) -> EndpointLimits: ...

    # migration batches (New-MigrationBatch against the on-prem endpoint)
    def submit_batch(
        self,
        name: str,
        moves: Sequence[MoveSpec],
        *,
        endpoint: str,
        delivery_domain: str,
        target_databases: Sequence[str],
        target_archive_databases: Sequence[str],
        auto_complete: bool,
        complete_after: datetime | None,
    ) -> None: ...

    def batch_exists(self, name: str) -> bool: ...

    def batch_users(self, name: str) -> list[MoveReport]: ...

    def user_statistics(self, address: str) -> MoveReport: ...

    def complete_batch(self, name: str) -> None: ...

    def complete_user(self, address: str) -> None: ...

    def remove_user(self, address: str) -> None: ...

    # move requests (New-MoveRequest -Outbound per mailbox)
    def submit_move_request(
        self,
        move: MoveSpec,
        *,
        batch_name: str,
        remote_host: str,
        delivery_domain: str,
        target_database: str,
        target_archive_database: str | None,
        suspend_when_ready: bool,
        complete_after: datetime | None,
    ) -> None: ...

    def move_request_status(self, address: str) -> MoveReport | None: ...

    def resume_move_request(self, address: str) -> None: ...

    def remove_move_request(self, address: str) -> None: ...
