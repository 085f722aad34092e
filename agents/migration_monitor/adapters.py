"""MoveService over the Exchange Online admin API (the only Exchange code in this agent)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agents.migration_monitor.ports import EndpointLimits, MoveReport, MoveService, MoveSpec
from agents.migration_monitor.statuses import parse_size
from agents.shared.exo_client import ExchangeOnlineClient, ExoError

__all__ = ["ExoMoveService"]


def _csv(moves: Sequence[MoveSpec]) -> str:
    """CSVData for New-MigrationBatch: one EmailAddress column, base64 (Byte[] over JSON)."""
    text = "EmailAddress\r\n" + "".join(f"{m.address}\r\n" for m in moves)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _report(row: dict[str, Any], *, percent_key: str, bytes_key: str, total_key: str) -> MoveReport:
    return MoveReport(
        address=str(row.get("Identity") or row.get("MailboxEmailAddress") or ""),
        status=str(row.get("Status") or row.get("StatusSummary") or ""),
        percent=_int(row.get(percent_key)),
        bytes_transferred=parse_size(row.get(bytes_key)),
        bytes_total=parse_size(row.get(total_key)),
        items_transferred=_int(row.get("SyncedItemCount") or row.get("ItemsTransferred")),
        items_skipped=_int(row.get("SkippedItemCount") or row.get("BadItemsEncountered")),
        error=str(row.get("Error") or row.get("ErrorSummary") or row.get("Message") or "")[:2000],
        status_detail=str(row.get("StatusDetail") or ""),
    )


class ExoMoveService(MoveService):
    def __init__(self, client: ExchangeOnlineClient, *, remote_username: str, remote_password: str) -> None:
        self._client = client
        self._remote_credential = {"UserName": remote_username, "Password": remote_password}

    def endpoint_limits(self, endpoint: str) -> EndpointLimits:
        [row] = self._client.invoke("Get-MigrationEndpoint", {"Identity": endpoint})
        return EndpointLimits(
            name=str(row.get("Identity", endpoint)),
            max_concurrent_migrations=int(row.get("MaxConcurrentMigrations") or 20),
            max_concurrent_incremental_syncs=_int(row.get("MaxConcurrentIncrementalSyncs")),
        )

    # ------------------------------------------------------------------ batches

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
    ) -> None:
        parameters: dict[str, Any] = {
            "Name": name,
            "TargetEndpoint": endpoint,
            "TargetDeliveryDomain": delivery_domain,
            "CSVData": _csv(moves),
            "AutoStart": True,
        }
        if target_databases:
            parameters["TargetDatabases"] = list(target_databases)
        if any(m.has_archive for m in moves) and (target_archive_databases or target_databases):
            parameters["TargetArchiveDatabases"] = list(target_archive_databases or target_databases)
        if auto_complete:
            parameters["AutoComplete"] = True
        elif complete_after is not None:
            parameters["CompleteAfter"] = complete_after.isoformat()
        self._client.invoke("New-MigrationBatch", parameters)

    def batch_exists(self, name: str) -> bool:
        return self._client.find("Get-MigrationBatch", {"Identity": name}) is not None

    def batch_users(self, name: str) -> list[MoveReport]:
        rows = self._client.invoke("Get-MigrationUser", {"BatchId": name, "ResultSize": "Unlimited"})
        return [
            _report(
                r,
                percent_key="PercentageComplete",
                bytes_key="BytesTransferred",
                total_key="EstimatedTotalTransferSize",
            )
            for r in rows
        ]

    def user_statistics(self, address: str) -> MoveReport:
        [row] = self._client.invoke("Get-MigrationUserStatistics", {"Identity": address})
        return _report(
            row,
            percent_key="PercentageComplete",
            bytes_key="BytesTransferred",
            total_key="EstimatedTotalTransferSize",
        )

    def complete_batch(self, name: str) -> None:
        self._client.invoke("Complete-MigrationBatch", {"Identity": name, "Confirm": False})

    def complete_user(self, address: str) -> None:
        # completing one user of a batch: a completion time that has already passed
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._client.invoke("Set-MigrationUser", {"Identity": address, "CompleteAfter": now})

    def remove_user(self, address: str) -> None:
        try:
            self._client.invoke("Remove-MigrationUser", {"Identity": address, "Confirm": False})
        except ExoError as exc:
            if not exc.not_found:
                raise

    # ------------------------------------------------------------------ move requests

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
    ) -> None:
        parameters: dict[str, Any] = {
            "Identity": move.address,
            "Outbound": True,
            "RemoteHostName": remote_host,
            "RemoteTargetDatabase": target_database,
            "TargetDeliveryDomain": delivery_domain,
            "RemoteCredential": self._remote_credential,
            "BatchName": batch_name,
        }
        if move.has_archive and target_archive_database:
            parameters["RemoteArchiveTargetDatabase"] = target_archive_database
        if suspend_when_ready:
            parameters["SuspendWhenReadyToComplete"] = True
        elif complete_after is not None:
            parameters["CompleteAfter"] = complete_after.isoformat()
        self._client.invoke("New-MoveRequest", parameters)

    def move_request_status(self, address: str) -> MoveReport | None:
        row = self._client.find("Get-MoveRequestStatistics", {"Identity": address})
        if row is None:
            return None
        report = _report(
            row, percent_key="PercentComplete", bytes_key="BytesTransferred", total_key="TotalMailboxSize"
        )
        return MoveReport(**{**report.__dict__, "address": address})

    def resume_move_request(self, address: str) -> None:
        self._client.invoke("Resume-MoveRequest", {"Identity": address})

    def remove_move_request(self, address: str) -> None:
        try:
            self._client.invoke("Remove-MoveRequest", {"Identity": address, "Confirm": False})
        except ExoError as exc:
            if not exc.not_found:
                raise
