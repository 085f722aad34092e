"""Get-Mailbox, Get-MailUser, Get-MailboxStatistics: what the exporter reads."""

from __future__ import annotations

from typing import Any, Final

from lab.exo import errors
from lab.exo.cmdlets.binding import Bound, Kind, Param
from lab.exo.cmdlets.registry import Context, Output, cmdlet
from lab.exo.model import NIL_GUID, Mailbox
from lab.exo.opath import compile_filter
from lab.exo.sizes import format_size
from lab.exo.statuses import move_request_status
from lab.exo.tenant import Tenant

DEFAULT_RESULT_SIZE: Final = 1000
_QUOTAS: Final = {name: format_size(size) for name, size in (
    ("IssueWarningQuota", 98 * 1024**3),
    ("ProhibitSendQuota", 99 * 1024**3),
    ("ProhibitSendReceiveQuota", 100 * 1024**3),
)}
_FORWARDER: Final = "EURPR01A001.PROD.OUTLOOK.COM"


def _common(tenant: Tenant, m: Mailbox) -> dict[str, Any]:
    initial = tenant.config.initial_domain
    return {
        "Identity": m.name,
        "Id": m.name,
        "Name": m.name,
        "Alias": m.alias,
        "DisplayName": m.display_name,
        "DistinguishedName": (f"CN={m.name},OU={initial},OU=Microsoft Exchange Hosted "
                              "Organizations,DC=EURPR01A001,DC=PROD,DC=OUTLOOK,DC=COM"),
        "OrganizationalUnit": f"{_FORWARDER}/Microsoft Exchange Hosted Organizations/{initial}",
        "Guid": m.guid,
        "ExchangeGuid": m.exchange_guid,
        "ArchiveGuid": m.archive_guid,
        "ArchiveStatus": m.archive_status,
        "PrimarySmtpAddress": m.primary_smtp_address,
        "WindowsEmailAddress": m.primary_smtp_address,
        "UserPrincipalName": m.user_principal_name,
        "MicrosoftOnlineServicesID": m.user_principal_name,
        "EmailAddresses": list(m.email_addresses),
        "LegacyExchangeDN": m.legacy_exchange_dn,
        "ExternalDirectoryObjectId": str(m.external_directory_object_id),
        "HiddenFromAddressListsEnabled": False,
        "IsDirSynced": False,
        "WhenCreated": m.when_created,
        "WhenChanged": m.when_changed,
        "WhenCreatedUTC": m.when_created,
        "WhenChangedUTC": m.when_changed,
    }


def mailbox_record(tenant: Tenant, m: Mailbox) -> dict[str, Any]:
    record = _common(tenant, m)
    move = tenant.move_for(m)
    record.update({
        "RecipientType": "UserMailbox",
        "RecipientTypeDetails": m.recipient_type_details,
        "ArchiveName": [f"In-Place Archive -{m.display_name}"] if m.has_archive else [],
        "ArchiveDatabase": m.database if m.has_archive else None,
        "Database": m.database,
        "ServerName": m.database.split("-", 1)[0].lower(),
        "IsMailboxEnabled": True,
        "IsInactiveMailbox": False,
        "IsShared": m.recipient_type_details == "SharedMailbox",
        "LitigationHoldEnabled": False,
        "RetainDeletedItemsFor": "14.00:00:00",
        "MailboxMoveStatus": move_request_status(move) if move else "None",
        "MailboxMoveBatchName": move.batch_name if move else None,
        "MailboxMoveRemoteHostName": move.remote_host if move else None,
        **_QUOTAS,
    })
    return record


def mail_user_record(tenant: Tenant, m: Mailbox) -> dict[str, Any]:
    record = _common(tenant, m)
    record.update({
        "RecipientType": "MailUser",
        "RecipientTypeDetails": "MailUser",
        "ExternalEmailAddress": m.external_email_address,
    })
    return record


def _filtered(ctx: Context, p: Bound, *, mailboxes: bool) -> Output:
    tenant = ctx.tenant
    render = mailbox_record if mailboxes else mail_user_record
    with tenant.lock:
        if "Identity" in p:
            found = tenant.find_recipient(p.get("Identity"))
            if found.is_mailbox != mailboxes:
                raise errors.not_found(p.get("Identity"))
            rows = [(found.seq, found)]
        else:
            rows = tenant.recipient_rows(mailboxes=mailboxes)  # creation order: paging needs it
        kinds = {k.lower() for k in p.get("RecipientTypeDetails", [])}
        if kinds:
            rows = [r for r in rows if r[1].recipient_type_details.lower() in kinds]
        if p.switch("Archive"):
            rows = [r for r in rows if r[1].has_archive]
        if any(p.switch(s) for s in ("SoftDeletedMailbox", "InactiveMailboxOnly", "PublicFolder",
                                     "GroupMailbox", "Migration", "RemoteArchive")):
            rows = []  # the lab tenant has none of these
        if "Filter" in p:
            properties = {k.lower(): k for k in render(tenant, _PROBE)}
            predicate = compile_filter(p.get("Filter"), properties)
            matched = [(seq, r) for seq, m in rows if predicate(r := render(tenant, m))]
            return Output(rows=matched, render=dict, result_size=_result_size(p))
    return Output(rows=rows, render=lambda m: render(tenant, m), result_size=_result_size(p))


def _result_size(p: Bound) -> int | None:
    return p.get("ResultSize") if "ResultSize" in p else DEFAULT_RESULT_SIZE


# a recipient with every property, to learn the names -Filter may use
_PROBE = Mailbox(
    seq=0, guid=NIL_GUID, name="probe", alias="probe", display_name="probe",
    primary_smtp_address="probe@probe.example", user_principal_name="probe@probe.example",
    exchange_guid=NIL_GUID, legacy_exchange_dn="/o=probe", email_addresses=[],
    external_directory_object_id=NIL_GUID, size_bytes=0, item_count=0, database="probe-db",
)

_RECIPIENT_PARAMS = (
    Param("Identity"), Param("Filter"), Param("ResultSize", Kind.UNLIMITED),
    Param("RecipientTypeDetails", Kind.STRINGS), Param("SortBy"), Param("OrganizationalUnit"),
    Param("Anr"), Param("IncludeInactiveMailbox", Kind.SWITCH),
    Param("SoftDeletedMailbox", Kind.SWITCH), Param("InactiveMailboxOnly", Kind.SWITCH),
)


@cmdlet("Get-Mailbox", "Mailbox", *_RECIPIENT_PARAMS,
        Param("Archive", Kind.SWITCH), Param("PublicFolder", Kind.SWITCH),
        Param("GroupMailbox", Kind.SWITCH), Param("Migration", Kind.SWITCH),
        Param("RemoteArchive", Kind.SWITCH), Param("MailboxPlan"))
def get_mailbox(ctx: Context, p: Bound) -> Output:
    if "Anr" in p:
        return _anr(ctx, p, mailboxes=True)
    return _filtered(ctx, p, mailboxes=True)


@cmdlet("Get-MailUser", "MailUser", *_RECIPIENT_PARAMS)
def get_mail_user(ctx: Context, p: Bound) -> Output:
    if "Anr" in p:
        return _anr(ctx, p, mailboxes=False)
    return _filtered(ctx, p, mailboxes=False)


def _anr(ctx: Context, p: Bound, *, mailboxes: bool) -> Output:
    """Ambiguous name resolution: a prefix of name, alias, display name or address."""
    text = str(p.get("Anr")).lower()
    tenant = ctx.tenant
    render = mailbox_record if mailboxes else mail_user_record
    with tenant.lock:
        rows = [(m.seq, m) for m in tenant.mailboxes.values() if m.is_mailbox == mailboxes and any(
            v.lower().startswith(text)
            for v in (m.name, m.alias, m.display_name, m.primary_smtp_address))]
    return Output(rows=rows, render=lambda m: render(tenant, m), result_size=_result_size(p))


@cmdlet("Get-MailboxStatistics", "MailboxStatistics",
        Param("Identity", required=True), Param("Archive", Kind.SWITCH),
        Param("IncludeMoveReport", Kind.SWITCH), Param("IncludeMoveHistory", Kind.SWITCH),
        Param("IncludeSoftDeletedRecipients", Kind.SWITCH))
def get_mailbox_statistics(ctx: Context, p: Bound) -> Output:
    tenant = ctx.tenant
    with tenant.lock:
        m = tenant.find_recipient(p.get("Identity"), mailboxes_only=True)
        archive = p.switch("Archive")
        if archive and not m.has_archive:
            raise errors.bad_request(
                f"The mailbox '{m.name}' doesn't have an archive.",
                "Microsoft.Exchange.Management.Tasks.MailboxStatisticsNotFoundException")
        size = m.archive_size_bytes if archive else m.size_bytes
        items = m.archive_item_count if archive else m.item_count
        deleted = size // 20
        record = {
            "DisplayName": m.display_name,
            "MailboxGuid": m.archive_guid if archive else m.exchange_guid,
            "Identity": str(m.archive_guid if archive else m.exchange_guid),
            "ItemCount": items,
            "TotalItemSize": format_size(size),
            "DeletedItemCount": items // 25,
            "TotalDeletedItemSize": format_size(deleted),
            "MailboxTypeDetail": m.recipient_type_details,
            "IsArchiveMailbox": archive,
            "Database": m.database,
            "SystemMessageSize": format_size(size // 200),
            "LastLogonTime": None,
            "OwnerADGuid": m.guid,
        }
    return Output(rows=[(m.seq, record)], render=dict)
