"""Migration batches and their users: the offboarding path Exchange Online offers.

An offboarding batch (``-TargetEndpoint``) pushes mailboxes to the on-prem
server named by the endpoint's RemoteServer; each user in it is a move that
the simulator (moves.py) drives. Get-MigrationUser and Get-MoveRequest show
the same move, so their statuses never disagree (statuses.py).
"""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any, Final

from lab.exo import errors
from lab.exo.cmdlets.binding import Bound, Kind, Param
from lab.exo.cmdlets.common import (
    check_archive_choice,
    check_delivery_domain,
    ensure_movable,
    restart,
)
from lab.exo.cmdlets.registry import Context, Output, cmdlet, rows_of
from lab.exo.model import MigrationBatch, Move, Phase, utcnow
from lab.exo.sizes import format_size
from lab.exo.statuses import batch_counts, batch_status, migration_user_status

MIGRATION: Final = "Microsoft.Exchange.Migration"


def _batch_record(ctx: Context, b: MigrationBatch) -> dict[str, Any]:
    moves = ctx.tenant.batch_moves(b)
    return {
        "Identity": b.name,
        "Name": b.name,
        "Guid": b.guid,
        "Status": batch_status(b, moves),
        "Type": "ExchangeRemoteMove",
        "BatchDirection": "Offboarding",
        **batch_counts(moves),
        "TargetEndpoint": b.endpoint,
        "SourceEndpoint": None,
        "TargetDeliveryDomain": b.target_delivery_domain,
        "TargetDatabases": b.target_databases,
        "TargetArchiveDatabases": b.target_archive_databases,
        "PrimaryOnly": b.primary_only,
        "ArchiveDomain": b.archive_domain,
        "AutoComplete": b.auto_complete,
        "BadItemLimit": "Unlimited" if b.bad_item_limit is None else str(b.bad_item_limit),
        "CompleteAfter": b.complete_after,
        "CompleteAfterUTC": b.complete_after,
        "CreationDateTime": b.created_at,
        "CreationDateTimeUTC": b.created_at,
        "StartDateTime": b.started_at,
        "LastSyncedDateTime": b.last_synced_at,
        "FinalizedDateTime": b.finalized_at,
        "SkippedItemsApprovalTime": b.skipped_items_approved_at,
        "NotificationEmails": b.notification_emails,
        "SubmittedByUser": "app",
    }


def _csv_addresses(data: bytes) -> list[tuple[int, str]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise errors.bad_request("The CSV file isn't UTF-8 or UTF-16 text.",
                                     f"{MIGRATION}.MigrationCSVParsingException") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise errors.bad_request("The CSV file is empty.", f"{MIGRATION}.MigrationCSVParsingException")
    columns = [h.strip().lower() for h in header]
    if "emailaddress" not in columns:
        raise errors.bad_request("The CSV file is missing the required column 'EmailAddress'.",
                                 f"{MIGRATION}.MigrationCSVParsingException")
    column = columns.index("emailaddress")
    found: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        address = row[column].strip() if len(row) > column else ""
        if not address:
            continue
        if address.lower() in seen:
            raise errors.bad_request(
                f"Line {line}: the email address '{address}' is already listed on line "
                f"{seen[address.lower()]}.", f"{MIGRATION}.MigrationCSVParsingException")
        seen[address.lower()] = line
        found.append((line, address))
    if not found:
        raise errors.bad_request("The CSV file has no users.",
                                 f"{MIGRATION}.MigrationCSVParsingException")
    return found


_BATCH_IGNORED: Final = (
    "NotificationEmails", "AllowIncrementalSyncs", "AllowUnknownColumnsInCsv", "AutoRetryCount",
    "DisallowExistingUsers", "LargeItemLimit", "ReportInterval", "SkipReports", "StartAfter",
    "TimeZone", "MoveOptions", "SkipMoving", "SkipMerging", "Partition", "Locale",
    "WorkflowControlFlags", "ExcludeFolders", "IncludeFolders", "ContentFilter",
)


@cmdlet("New-MigrationBatch", "MigrationBatch",
        Param("Name", required=True), Param("CSVData", Kind.BYTES),
        Param("TargetEndpoint"), Param("SourceEndpoint"), Param("Local", Kind.SWITCH),
        Param("TargetDeliveryDomain"), Param("TargetDatabases", Kind.STRINGS),
        Param("TargetArchiveDatabases", Kind.STRINGS), Param("PrimaryOnly", Kind.SWITCH),
        Param("ArchiveOnly", Kind.SWITCH), Param("ArchiveDomain"),
        Param("AutoStart", Kind.SWITCH), Param("AutoComplete", Kind.SWITCH),
        Param("CompleteAfter", Kind.DATETIME), Param("BadItemLimit", Kind.UNLIMITED),
        *(Param(n, Kind.ANY) for n in _BATCH_IGNORED), what_if=True)
def new_migration_batch(ctx: Context, p: Bound) -> Output:
    tenant = ctx.tenant
    name = str(p.get("Name")).strip()
    if "SourceEndpoint" in p or p.switch("Local") or "TargetEndpoint" not in p:
        raise errors.bad_request("The lab supports offboarding batches only: specify "
                                 "-TargetEndpoint (and not -SourceEndpoint or -Local).")
    if "TargetDeliveryDomain" not in p:
        raise errors.bad_request("The TargetDeliveryDomain parameter is required for a remote "
                                 "move migration batch.", f"{MIGRATION}.MigrationPermanentException")
    if "CSVData" not in p:
        raise errors.parameter_binding("New-MigrationBatch: Cannot process command because of "
                                       "one or more missing mandatory parameters: CSVData.")
    if p.switch("ArchiveOnly"):
        raise errors.bad_request("The lab doesn't support ArchiveOnly batches.")
    addresses = _csv_addresses(p.get("CSVData"))
    primary_only, archive_domain = p.switch("PrimaryOnly"), p.get("ArchiveDomain")
    with tenant.lock:
        if name.lower() in tenant.batches:
            raise errors.already_exists(f"A migration batch named '{name}' already exists.")
        endpoint = tenant.find_endpoint(p.get("TargetEndpoint"))
        check_delivery_domain(tenant, p.get("TargetDeliveryDomain"))
        problems, mailboxes = [], []
        for line, address in addresses:
            try:
                mailbox = tenant.find_recipient(address, mailboxes_only=True)
            except errors.CmdletError:
                problems.append(f"Line {line}: a mailbox couldn't be found for '{address}'.")
                continue
            ensure_movable(tenant, mailbox, address)
            check_archive_choice(mailbox, primary_only, archive_domain, address)
            mailboxes.append((address, mailbox))
        if problems:
            raise errors.bad_request("The CSV file has errors. " + " ".join(problems[:10]),
                                     f"{MIGRATION}.MigrationCSVValidationException")
        batch = MigrationBatch(
            seq=tenant.next_seq(), guid=tenant.new_guid(), name=name, endpoint=endpoint.name,
            target_delivery_domain=p.get("TargetDeliveryDomain"),
            target_databases=p.get("TargetDatabases", []),
            target_archive_databases=p.get("TargetArchiveDatabases", []),
            primary_only=primary_only, archive_domain=archive_domain,
            auto_complete=p.switch("AutoComplete"), complete_after=p.get("CompleteAfter"),
            bad_item_limit=p.get("BadItemLimit", 0),
            notification_emails=p.get("NotificationEmails") or [],
        )
        databases = itertools.cycle(batch.target_databases or [None])
        archives = itertools.cycle(batch.target_archive_databases or [None])
        for address, mailbox in mailboxes:
            tenant.add_move(Move(
                seq=tenant.next_seq(), request_guid=tenant.new_guid(), user_guid=tenant.new_guid(),
                mailbox_seq=mailbox.seq, mailbox_address=mailbox.primary_smtp_address,
                csv_address=address, migration_batch=name, batch_name=f"MigrationService:{name}",
                endpoint=endpoint.name, remote_host=endpoint.remote_server,
                username=endpoint.username, password=endpoint.password,
                target_database=next(databases), target_archive_database=next(archives),
                target_delivery_domain=batch.target_delivery_domain, primary_only=primary_only,
                archive_domain=archive_domain, bad_item_limit=batch.bad_item_limit,
                phase=Phase.CREATED, status_detail="Queued",
                bytes_total=mailbox.size_bytes + (0 if primary_only else mailbox.archive_size_bytes),
                items_total=mailbox.item_count + (0 if primary_only else mailbox.archive_item_count),
            ))
        tenant.batches[name.lower()] = batch
        if p.switch("AutoStart"):
            _start(ctx, batch)
        record = _batch_record(ctx, batch)
    return Output(rows=[(batch.seq, record)], render=dict)


def _start(ctx: Context, batch: MigrationBatch) -> None:
    batch.started = True
    batch.started_at = batch.started_at or utcnow()
    for move in ctx.tenant.batch_moves(batch):
        if move.phase is Phase.CREATED:
            move.phase = Phase.QUEUED
            move.queued_at = utcnow()


@cmdlet("Get-MigrationBatch", "MigrationBatch", Param("Identity"), Param("Status"),
        Param("Endpoint"), Param("IncludeReport", Kind.SWITCH), Param("Diagnostic", Kind.SWITCH),
        Param("DiagnosticInfo"), Param("DiagnosticArgument"), Param("Partition"))
def get_migration_batch(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        if "Identity" in p:
            batches = [ctx.tenant.find_batch(p.get("Identity"))]
        else:
            batches = list(ctx.tenant.batches.values())
        if "Endpoint" in p:
            batches = [b for b in batches if b.endpoint.lower() == str(p.get("Endpoint")).lower()]
        records = [(b.seq, _batch_record(ctx, b)) for b in batches]
    if "Status" in p:
        records = [r for r in records if r[1]["Status"].lower() == str(p.get("Status")).lower()]
    return Output(rows=records, render=dict)


@cmdlet("Start-MigrationBatch", "MigrationBatch", Param("Identity", required=True),
        Param("Validate", Kind.SWITCH), Param("Partition"), what_if=True)
def start_migration_batch(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        batch = ctx.tenant.find_batch(p.get("Identity"))
        moves = ctx.tenant.batch_moves(batch)
        failed = [m for m in moves if m.phase is Phase.FAILED]
        if batch.started and not failed:
            raise errors.bad_request(
                f"The migration batch '{batch.name}' can't be started because its status is "
                f"{batch_status(batch, moves)}.", f"{MIGRATION}.MigrationBatchCannotBeStartedException")
        _start(ctx, batch)
        for move in failed:  # Start-MigrationBatch retries the batch's failed users
            restart(move)
    return Output()


@cmdlet("Complete-MigrationBatch", "MigrationBatch", Param("Identity", required=True),
        Param("SyncAndComplete", Kind.SWITCH), Param("NotificationEmails", Kind.STRINGS),
        Param("Partition"), what_if=True)
def complete_migration_batch(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        batch = ctx.tenant.find_batch(p.get("Identity"))
        status = batch_status(batch, ctx.tenant.batch_moves(batch))
        if status not in ("Synced", "SyncedWithErrors", "Syncing", "Completing"):
            raise errors.bad_request(
                f"The migration batch '{batch.name}' can't be completed because its status is "
                f"{status}.", f"{MIGRATION}.MigrationBatchCannotBeCompletedException")
        batch.complete_requested = True
    return Output()


@cmdlet("Set-MigrationBatch", "MigrationBatch", Param("Identity", required=True),
        Param("ApproveSkippedItems", Kind.SWITCH), Param("BadItemLimit", Kind.UNLIMITED),
        Param("CompleteAfter", Kind.DATETIME), Param("NotificationEmails", Kind.STRINGS),
        *(Param(n, Kind.ANY) for n in ("LargeItemLimit", "ReportInterval", "AllowIncrementalSyncs",
                                       "AllowUnknownColumnsInCsv", "AutoRetryCount", "StartAfter",
                                       "MoveOptions", "SkipMoving", "SkipMerging", "Partition")),
        what_if=True)
def set_migration_batch(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        batch = ctx.tenant.find_batch(p.get("Identity"))
        if p.switch("ApproveSkippedItems"):
            batch.skipped_items_approved_at = utcnow()
        if "BadItemLimit" in p:
            batch.bad_item_limit = p.get("BadItemLimit")
            for move in ctx.tenant.batch_moves(batch):
                move.bad_item_limit = batch.bad_item_limit
        if "CompleteAfter" in p:
            batch.complete_after = p.get("CompleteAfter")
        if "NotificationEmails" in p:
            batch.notification_emails = p.get("NotificationEmails")
    return Output()


@cmdlet("Remove-MigrationBatch", "MigrationBatch", Param("Identity", required=True),
        Param("Force", Kind.SWITCH), Param("Partition"), what_if=True)
def remove_migration_batch(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        batch = ctx.tenant.find_batch(p.get("Identity"))
        for move in ctx.tenant.batch_moves(batch):
            ctx.moves.release(move)
            ctx.tenant.remove_move(move)
        del ctx.tenant.batches[batch.name.lower()]
    return Output()


# ---------------------------------------------------------------------------- users

def _user_record(ctx: Context, m: Move) -> dict[str, Any]:
    mailbox = ctx.tenant.mailboxes[m.mailbox_seq]
    unapproved = m.failure_type == "TooManyBadItemsPermanentException"
    return {
        "Identity": m.csv_address,
        "BatchId": m.migration_batch,
        "Status": migration_user_status(m),
        "StatusSummary": migration_user_status(m),
        "RecipientType": "Mailbox",
        "MailboxEmailAddress": m.csv_address,
        "MailboxIdentifier": mailbox.name,
        "MailboxGuid": mailbox.exchange_guid,
        "RequestGuid": m.request_guid,
        "Guid": m.user_guid,
        "LastSyncTime": m.synced_at,
        "ErrorSummary": m.message or "",
        "HasUnapprovedSkippedItems": unapproved,
        "SkippedItemCount": m.skipped_items,
    }


def _statistics_record(ctx: Context, m: Move) -> dict[str, Any]:
    record = _user_record(ctx, m)
    consistency = "Perfect" if not m.skipped_items else (
        "Investigate" if m.failure_type == "TooManyBadItemsPermanentException" else "Good")
    record.update({
        "MigrationType": "ExchangeRemoteMove",
        "PercentageComplete": m.percent,
        "BytesTransferred": format_size(m.bytes_transferred),
        "EstimatedTotalTransferSize": format_size(m.bytes_total),
        "EstimatedTotalTransferCount": m.items_total,
        "SyncedItemCount": m.items_transferred,
        "TotalItemsInSourceMailboxCount": m.items_total,
        "Error": m.message,
        "StatusDetail": m.status_detail,
        "DataConsistencyScore": consistency,
        "LastSuccessfulSyncTimestamp": m.synced_at,
        "QueuedTime": m.queued_at,
        "StartTime": m.started_at,
        "LastUpdatedTime": m.last_update,
        "CompletedTime": m.completed_at,
    })
    return record


def _find_user(ctx: Context, identity: str) -> Move:
    """A migration user by its address (any of the mailbox's) or by its GUIDs."""
    try:
        move = ctx.tenant.move_for(ctx.tenant.find_recipient(identity))
    except errors.CmdletError:
        move = None
    if move is not None and move.in_batch:
        return move
    key = str(identity).strip().strip("{}").lower()
    for candidate in ctx.tenant.moves.values():
        if candidate.in_batch and key in (str(candidate.user_guid), str(candidate.request_guid),
                                          candidate.csv_address.lower()):
            return candidate
    raise errors.not_found(identity)


@cmdlet("Get-MigrationUser", "MigrationUser", Param("Identity"), Param("BatchId"),
        Param("Status"), Param("MailboxGuid", Kind.GUID), Param("StatusSummary"),
        Param("ResultSize", Kind.UNLIMITED), Param("Partition"))
def get_migration_user(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        if "Identity" in p:
            users = [_find_user(ctx, p.get("Identity"))]
        elif "BatchId" in p:
            users = ctx.tenant.batch_moves(ctx.tenant.find_batch(p.get("BatchId")))
        else:
            users = [m for m in ctx.tenant.moves.values() if m.in_batch]
        if "MailboxGuid" in p:
            users = [m for m in users
                     if ctx.tenant.mailboxes[m.mailbox_seq].exchange_guid == p.get("MailboxGuid")]
        wanted = (p.get("Status") or p.get("StatusSummary") or "").lower()
        if wanted:
            users = [m for m in users if migration_user_status(m).lower() == wanted]
        users.sort(key=lambda m: m.seq)
    return Output(rows=rows_of(users), render=lambda m: _user_record(ctx, m),
                  result_size=p.get("ResultSize"))


@cmdlet("Get-MigrationUserStatistics", "MigrationUserStatistics",
        Param("Identity", required=True), Param("IncludeReport", Kind.SWITCH),
        Param("IncludeSkippedItems", Kind.SWITCH), Param("Diagnostic", Kind.SWITCH),
        Param("DiagnosticInfo"), Param("DiagnosticArgument"), Param("LimitSkippedItemsTo", Kind.INT),
        Param("SkipSubscription", Kind.SWITCH), Param("Partition"))
def get_migration_user_statistics(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        move = _find_user(ctx, p.get("Identity"))
        record = _statistics_record(ctx, move)
    return Output(rows=[(move.seq, record)], render=dict)


@cmdlet("Set-MigrationUser", "MigrationUser", Param("Identity", required=True),
        Param("CompleteAfter", Kind.DATETIME), Param("ApproveSkippedItems", Kind.SWITCH),
        Param("BadItemLimit", Kind.UNLIMITED), Param("Partition"), what_if=True)
def set_migration_user(ctx: Context, p: Bound) -> Output:
    """Per-user settings inside a batch: completing one user early, approving its skipped items."""
    with ctx.tenant.lock:
        move = _find_user(ctx, p.get("Identity"))
        if "CompleteAfter" in p:
            move.complete_after = p.get("CompleteAfter")
        if p.get("ApproveSkippedItems"):
            move.skipped_items_approved = True
    return Output()


@cmdlet("Remove-MigrationUser", "MigrationUser", Param("Identity", required=True),
        Param("Force", Kind.SWITCH), Param("Partition"), what_if=True)
def remove_migration_user(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        move = _find_user(ctx, p.get("Identity"))
        ctx.moves.release(move)
        ctx.tenant.remove_move(move)
    return Output()
