"""New-MoveRequest -Outbound and friends: one mailbox pushed to on-prem without a batch."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from lab.exo import errors
from lab.exo.cmdlets.binding import Bound, Credential, Kind, Param
from lab.exo.cmdlets.common import (
    check_archive_choice,
    check_delivery_domain,
    ensure_movable,
    restart,
)
from lab.exo.cmdlets.registry import Context, Output, cmdlet, rows_of
from lab.exo.model import Move, Phase, utcnow
from lab.exo.sizes import format_size
from lab.exo.statuses import move_request_status

MRS_SERVER: Final = "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"
MOVE_STATUSES: Final = ("Queued", "InProgress", "AutoSuspended", "CompletionInProgress", "Synced",
                        "Completed", "CompletedWithWarning", "Suspended", "Failed", "None")


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "00:00:00"
    seconds = int(((end or utcnow()) - start).total_seconds())
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _request_record(ctx: Context, m: Move) -> dict[str, Any]:
    mailbox = ctx.tenant.mailboxes[m.mailbox_seq]
    return {
        "Identity": mailbox.name,
        "DisplayName": mailbox.display_name,
        "Alias": mailbox.alias,
        "ExchangeGuid": mailbox.exchange_guid,
        "Status": move_request_status(m),
        "StatusDetail": m.status_detail,
        "BatchName": m.batch_name or "",
        "RequestGuid": m.request_guid,
        "RemoteHostName": m.remote_host,
        "RemoteDatabaseName": m.target_database,
        "RemoteArchiveDatabaseName": m.target_archive_database,
        "TargetDeliveryDomain": m.target_delivery_domain,
        "SourceDatabase": mailbox.database,
        "Direction": "Push",
        "Flags": "CrossOrg, Push",
        "IsOffline": False,
        "Protect": False,
        "Suspend": False,
        "SuspendWhenReadyToComplete": m.suspend_when_ready,
        "PrimaryOnly": m.primary_only,
        "ArchiveDomain": m.archive_domain,
        "RecipientTypeDetails": mailbox.recipient_type_details,
    }


def _statistics_record(ctx: Context, m: Move) -> dict[str, Any]:
    record = _request_record(ctx, m)
    mailbox = ctx.tenant.mailboxes[m.mailbox_seq]
    archive = mailbox.has_archive and not m.primary_only
    record.update({
        "PercentComplete": m.percent,
        "BytesTransferred": format_size(m.bytes_transferred),
        "TotalMailboxSize": format_size(mailbox.size_bytes),
        "TotalMailboxItemCount": mailbox.item_count,
        "TotalArchiveSize": format_size(mailbox.archive_size_bytes) if archive else None,
        "TotalArchiveItemCount": mailbox.archive_item_count if archive else None,
        "ItemsTransferred": m.items_transferred,
        "BadItemLimit": "Unlimited" if m.bad_item_limit is None else str(m.bad_item_limit),
        "BadItemsEncountered": m.skipped_items,
        "LargeItemsEncountered": 0,
        "Message": m.message or "",
        "FailureType": m.failure_type,
        "FailureSide": "Target" if m.failure_type else None,
        "FailureTimestamp": m.failed_at,
        "QueuedTimestamp": m.queued_at,
        "StartTimestamp": m.started_at,
        "LastUpdateTimestamp": m.last_update,
        "InitialSeedingCompletedTimestamp": m.synced_at,
        "CompletionTimestamp": m.completed_at,
        "OverallDuration": _duration(m.queued_at, m.completed_at or m.failed_at),
        "MRSServerName": MRS_SERVER,
    })
    return record


_IGNORED: Final = (
    "LargeItemLimit", "AcceptLargeDataLoss", "StartAfter", "Priority", "CompletedRequestAgeLimit",
    "IncrementalSyncInterval", "WorkloadType", "RemoteGlobalCatalog", "RemoteOrganizationName",
    "Protect", "IgnoreTenantMigrationPolicies", "SkipMoving", "MoveOptions", "SkipMerging",
    "AllowLargeItems", "CheckInitialProvisioningSetting", "ForceOffline",
    "PreventCompletion", "ProxyToMailbox", "RequestExpiryInterval", "SuspendComment",
)


@cmdlet("New-MoveRequest", "MoveRequest",
        Param("Identity", required=True), Param("Outbound", Kind.SWITCH),
        Param("Remote", Kind.SWITCH), Param("RemoteHostName"), Param("RemoteTargetDatabase"),
        Param("RemoteArchiveTargetDatabase"), Param("TargetDeliveryDomain"),
        Param("RemoteCredential", Kind.CREDENTIAL), Param("PrimaryOnly", Kind.SWITCH),
        Param("ArchiveOnly", Kind.SWITCH), Param("ArchiveDomain"), Param("BatchName"),
        Param("SuspendWhenReadyToComplete", Kind.SWITCH), Param("Suspend", Kind.SWITCH),
        Param("BadItemLimit", Kind.UNLIMITED), Param("CompleteAfter", Kind.DATETIME),
        *(Param(n, Kind.ANY) for n in _IGNORED), what_if=True)
def new_move_request(ctx: Context, p: Bound) -> Output:
    if not p.switch("Outbound") or p.switch("Remote"):
        raise errors.bad_request("The lab supports offboarding move requests only: use "
                                 "-Outbound with -RemoteHostName.")
    for required in ("RemoteHostName", "TargetDeliveryDomain"):
        if required not in p:
            raise errors.parameter_binding(
                f"New-MoveRequest: the {required} parameter is required with -Outbound.")
    if p.switch("Suspend") or p.switch("ArchiveOnly"):
        raise errors.bad_request("The lab doesn't support -Suspend or -ArchiveOnly.")
    tenant = ctx.tenant
    identity = str(p.get("Identity"))
    primary_only, archive_domain = p.switch("PrimaryOnly"), p.get("ArchiveDomain")
    credential: Credential | None = p.get("RemoteCredential")
    with tenant.lock:
        mailbox = tenant.find_recipient(identity, mailboxes_only=True)
        ensure_movable(tenant, mailbox, identity)
        check_delivery_domain(tenant, p.get("TargetDeliveryDomain"))
        check_archive_choice(mailbox, primary_only, archive_domain, identity)
        move = Move(
            seq=tenant.next_seq(), request_guid=tenant.new_guid(), user_guid=tenant.new_guid(),
            mailbox_seq=mailbox.seq, mailbox_address=mailbox.primary_smtp_address,
            csv_address=identity, batch_name=p.get("BatchName"),
            remote_host=str(p.get("RemoteHostName")).strip(),
            username=credential.username if credential else None,
            password=credential.password if credential else None,
            target_database=p.get("RemoteTargetDatabase"),
            target_archive_database=p.get("RemoteArchiveTargetDatabase"),
            target_delivery_domain=p.get("TargetDeliveryDomain"),
            primary_only=primary_only, archive_domain=archive_domain,
            suspend_when_ready=p.switch("SuspendWhenReadyToComplete"),
            complete_after=p.get("CompleteAfter"), bad_item_limit=p.get("BadItemLimit", 0),
            bytes_total=mailbox.size_bytes + (0 if primary_only else mailbox.archive_size_bytes),
            items_total=mailbox.item_count + (0 if primary_only else mailbox.archive_item_count),
        )
        tenant.add_move(move)
        record = _request_record(ctx, move)
    return Output(rows=[(move.seq, record)], render=dict)


def _requests(ctx: Context) -> list[Move]:
    return sorted((m for m in ctx.tenant.moves.values() if m.phase is not Phase.CREATED),
                  key=lambda m: m.seq)


@cmdlet("Get-MoveRequest", "MoveRequest", Param("Identity"), Param("BatchName"),
        Param("MoveStatus", Kind.ENUM, choices=MOVE_STATUSES), Param("ResultSize", Kind.UNLIMITED),
        Param("RemoteHostName"), Param("Suspend", Kind.BOOL), Param("Offline", Kind.BOOL),
        Param("Protect", Kind.BOOL), Param("SortBy"), Param("Flags"), Param("TargetDatabase"),
        Param("SourceDatabase"), Param("MoveRequestQueue"))
def get_move_request(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        moves = [ctx.tenant.find_move(p.get("Identity"))] if "Identity" in p else _requests(ctx)
        if "BatchName" in p:
            moves = [m for m in moves if (m.batch_name or "").lower() == p.get("BatchName").lower()]
        if "MoveStatus" in p:
            moves = [m for m in moves if move_request_status(m) == p.get("MoveStatus")]
        if "RemoteHostName" in p:
            moves = [m for m in moves if m.remote_host.lower() == p.get("RemoteHostName").lower()]
    return Output(rows=rows_of(moves), render=lambda m: _request_record(ctx, m),
                  result_size=p.get("ResultSize", 1000))


@cmdlet("Get-MoveRequestStatistics", "MoveRequestStatistics", Param("Identity"),
        Param("MoveRequestQueue"), Param("MailboxGuid", Kind.GUID),
        Param("IncludeReport", Kind.SWITCH), Param("IncludeSkippedItems", Kind.SWITCH),
        Param("Diagnostic", Kind.SWITCH), Param("DiagnosticArgument"), Param("ReportOnly", Kind.SWITCH),
        Param("DiagnosticInfo"))
def get_move_request_statistics(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        if "Identity" in p:
            move = ctx.tenant.find_move(p.get("Identity"))
        elif "MailboxGuid" in p:
            move = ctx.tenant.find_move(str(p.get("MailboxGuid")))
        else:
            raise errors.parameter_binding("Get-MoveRequestStatistics: Cannot process command "
                                           "because of one or more missing mandatory "
                                           "parameters: Identity.")
        record = _statistics_record(ctx, move)
    return Output(rows=[(move.seq, record)], render=dict)


@cmdlet("Set-MoveRequest", "MoveRequest", Param("Identity", required=True),
        Param("BadItemLimit", Kind.UNLIMITED), Param("SkippedItemApprovalTime", Kind.DATETIME),
        Param("SuspendWhenReadyToComplete", Kind.BOOL), Param("CompleteAfter", Kind.DATETIME),
        Param("BatchName"), Param("RemoteCredential", Kind.CREDENTIAL), Param("RemoteHostName"),
        *(Param(n, Kind.ANY) for n in ("LargeItemLimit", "AcceptLargeDataLoss", "Priority",
                                       "CompletedRequestAgeLimit", "IncrementalSyncInterval",
                                       "StartAfter", "PreventCompletion", "Protect")),
        what_if=True)
def set_move_request(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        move = ctx.tenant.find_move(p.get("Identity"))
        if "BadItemLimit" in p:
            move.bad_item_limit = p.get("BadItemLimit")
        if "SkippedItemApprovalTime" in p:
            move.skipped_items_approved = True
        if "SuspendWhenReadyToComplete" in p:
            move.suspend_when_ready = p.get("SuspendWhenReadyToComplete")
        if "CompleteAfter" in p:
            move.complete_after = p.get("CompleteAfter")
        if "BatchName" in p and not move.in_batch:
            move.batch_name = p.get("BatchName")
        if "RemoteHostName" in p:
            move.remote_host = p.get("RemoteHostName")
        if "RemoteCredential" in p:
            move.username, move.password = p.get("RemoteCredential").username, \
                p.get("RemoteCredential").password
    return Output()


@cmdlet("Resume-MoveRequest", "MoveRequest", Param("Identity", required=True),
        Param("SuspendWhenReadyToComplete", Kind.SWITCH), what_if=True)
def resume_move_request(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        move = ctx.tenant.find_move(p.get("Identity"))
        if move.phase is Phase.FAILED:
            restart(move)
            move.suspend_when_ready = p.switch("SuspendWhenReadyToComplete")
        elif move.phase is Phase.SYNCED:
            move.resume_requested = True
    return Output()


@cmdlet("Remove-MoveRequest", "MoveRequest", Param("Identity"), Param("MoveRequestQueue"),
        Param("MailboxGuid", Kind.GUID), Param("Force", Kind.SWITCH), what_if=True)
def remove_move_request(ctx: Context, p: Bound) -> Output:
    identity = p.get("Identity") or (str(p.get("MailboxGuid")) if "MailboxGuid" in p else None)
    if identity is None:
        raise errors.parameter_binding("Remove-MoveRequest: Cannot process command because of "
                                       "one or more missing mandatory parameters: Identity.")
    with ctx.tenant.lock:
        move = ctx.tenant.find_move(identity)
        if move.in_batch:
            raise errors.bad_request(
                f"The move request for '{identity}' belongs to migration batch "
                f"'{move.migration_batch}'. Use Remove-MigrationUser or Remove-MigrationBatch.",
                "Microsoft.Exchange.Management.Migration.MigrationPermanentException")
        ctx.moves.release(move)
        ctx.tenant.remove_move(move)
    return Output()
