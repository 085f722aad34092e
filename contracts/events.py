"""One model per event: what each step tells the next.

Mailbox events carry the cloud mailbox record forward (`mailbox`), so every
agent has what it needs from the event alone and no agent reads another's
store. Names follow ARCHITECTURE.md; four additions are documented where they
are defined (`mailbox.completing`, `wave.cutover_started`, and the operator
commands `wave.completion_requested`, `wave.rollback_requested` with their
answer `wave.rolled_back`), plus the migration monitor's private timer
`wave.poll_due`.
"""

from __future__ import annotations

import enum
import json
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, TypeAdapter, model_validator

from contracts.envelope import Event, Payload
from contracts.fields import (
    NIL_GUID,
    Alias,
    DisplayName,
    DomainName,
    EmailAddress,
    ErrorText,
    ExchangeGuid,
    LegacyExchangeDN,
    ProxyAddress,
    ShortText,
)

# --------------------------------------------------------------------------- vocabularies


class ErrorClass(enum.StrEnum):
    """How a failure is handled (EXCHANGE.md, failure classification)."""

    TRANSIENT = "transient"  # retried with backoff
    PERMANENT = "permanent"  # dead-lettered; fix the cause, then replay
    NEEDS_HUMAN = "needs-human"  # dead-lettered; a decision is needed first


class RecipientTypeDetails(enum.StrEnum):
    USER_MAILBOX = "UserMailbox"
    SHARED_MAILBOX = "SharedMailbox"
    ROOM_MAILBOX = "RoomMailbox"
    EQUIPMENT_MAILBOX = "EquipmentMailbox"


class ArchiveStatus(enum.StrEnum):
    NONE = "None"
    ACTIVE = "Active"


class CompletionPolicy(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    AFTER = "after"


class MoveMode(enum.StrEnum):
    BATCH = "batch"  # New-MigrationBatch against the migration endpoint
    MOVE_REQUEST = "move-request"  # New-MoveRequest -Outbound per mailbox


class MailEnableMode(enum.StrEnum):
    MAIL_USER = "mail-user"  # Enable-MailUser + Set-MailUser (no hybrid; the default)
    REMOTE_MAILBOX = "remote-mailbox"  # Enable-RemoteMailbox (hybrid / directory sync shops)


class Step(enum.StrEnum):
    """Where in the procedure something failed."""

    EXPORT = "export"
    PROVISION = "provision"
    MAIL_ENABLE = "mail-enable"
    MOVE = "move"
    COMPLETE = "complete"
    CLOUD_PREPARATION = "cloud-preparation"
    ONPREM_PREPARATION = "onprem-preparation"
    DNS_PREPARATION = "dns-preparation"
    CUTOVER = "cutover"


# --------------------------------------------------------------------------- shared records

Addresses = Annotated[list[ProxyAddress], Field(max_length=500)]
Changes = Annotated[
    list[ShortText],
    Field(max_length=200, description="What was changed, in plain words; empty when nothing needed changing"),
]


class CloudMailbox(Payload):
    """A mailbox as exported from Exchange Online: what the later steps copy."""

    primary_smtp_address: EmailAddress
    alias: Alias
    display_name: DisplayName
    user_principal_name: EmailAddress
    exchange_guid: ExchangeGuid
    archive_guid: ExchangeGuid = NIL_GUID
    archive_status: ArchiveStatus = ArchiveStatus.NONE
    legacy_exchange_dn: LegacyExchangeDN
    email_addresses: Addresses
    recipient_type_details: RecipientTypeDetails
    routing_address: EmailAddress = Field(
        description="alias@<tenant>.mail.onmicrosoft.com: the on-prem object's ExternalEmailAddress"
    )
    external_directory_object_id: uuid.UUID | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    item_count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> CloudMailbox:
        if self.exchange_guid == NIL_GUID:
            raise ValueError("exchange_guid is all zeros: not a mailbox")
        if self.archive_status is ArchiveStatus.ACTIVE and self.archive_guid == NIL_GUID:
            raise ValueError("archive_status is Active but archive_guid is all zeros")
        smtp = {a.split(":", 1)[1].lower() for a in self.smtp_addresses}
        if self.primary_smtp_address.lower() not in smtp:
            raise ValueError("primary_smtp_address is not among email_addresses")
        return self

    @property
    def has_archive(self) -> bool:
        return self.archive_guid != NIL_GUID

    @property
    def x500_address(self) -> str:
        return f"X500:{self.legacy_exchange_dn}"

    @property
    def smtp_addresses(self) -> list[str]:
        """Every SMTP proxy, primary first, as `SMTP:`/`smtp:` strings."""
        return [a for a in self.email_addresses if a.lower().startswith("smtp:")]


class AdAccount(Payload):
    """The on-prem Active Directory account that will receive the mailbox."""

    distinguished_name: Annotated[str, Field(min_length=3, max_length=2048)]
    object_guid: uuid.UUID
    sam_account_name: Annotated[str, Field(min_length=1, max_length=20)]
    created: bool = Field(
        description="True when Homebound created it, False when it matched an existing user"
    )


class DnsRecordSet(Payload):
    """The records of one name that the cutover touches, as they were or are."""

    mx: Annotated[list[tuple[int, DomainName]], Field(max_length=50)]
    mx_ttl: int = Field(ge=0)
    spf: Annotated[str | None, Field(max_length=2048)] = None
    spf_ttl: int | None = Field(default=None, ge=0)
    autodiscover: DomainName | None = None
    autodiscover_ttl: int | None = Field(default=None, ge=0)


# --------------------------------------------------------------------------- wave events


class Completion(Payload):
    policy: CompletionPolicy = CompletionPolicy.AUTO
    after: AwareDatetime | None = None

    @model_validator(mode="after")
    def _after_needs_time(self) -> Completion:
        if (self.policy is CompletionPolicy.AFTER) != (self.after is not None):
            raise ValueError("completion policy 'after' needs a time, and only it takes one")
        return self


class WaveRequestedData(Payload):
    domains: Annotated[list[DomainName], Field(min_length=1, max_length=50)]
    mailboxes: Annotated[list[EmailAddress] | None, Field(max_length=50_000)] = Field(
        default=None, description="The in-scope mailboxes; null means every mailbox in the domains"
    )
    target_databases: Annotated[list[ShortText], Field(max_length=100)] = []
    target_archive_databases: Annotated[list[ShortText], Field(max_length=100)] = []
    completion: Completion = Completion()
    move_mode: MoveMode = MoveMode.BATCH
    mail_enable_mode: MailEnableMode = MailEnableMode.MAIL_USER
    allow_partial_cutover: bool = False
    requested_by: ShortText = ""


class WaveCloudReadyData(Payload):
    migration_endpoint: ShortText
    max_concurrent_migrations: int = Field(ge=1)
    max_concurrent_incremental_syncs: int | None = Field(default=None, ge=1)
    changes: Changes = []


class WaveOnpremReadyData(Payload):
    mrsproxy_servers: Annotated[list[ShortText], Field(max_length=100)]
    mounted_databases: Annotated[list[ShortText], Field(max_length=100)]
    max_mrs_connections: int | None = Field(default=None, ge=1)
    changes: Changes = []
    warnings: Changes = []


class WaveDnsPreparedData(Payload):
    domain: DomainName
    before: DnsRecordSet
    after: DnsRecordSet
    changes: Changes = []


class WaveExportedData(Payload):
    count: int = Field(ge=0, description="Mailboxes published as mailbox.discovered")
    not_found: Annotated[list[EmailAddress], Field(max_length=50_000)] = []
    skipped: Annotated[list[ShortText], Field(max_length=50_000)] = []


class WaveMigratedData(Payload):
    completed: int = Field(ge=0)
    failed: int = Field(ge=0)
    partial: bool = False


class WaveCutoverStartedData(Payload):
    domain: DomainName
    mx_target: DomainName


class WaveCutoverDoneData(Payload):
    domain: DomainName
    before: DnsRecordSet
    after: DnsRecordSet
    partial: bool = False


class WaveFailedData(Payload):
    step: Step
    error_class: ErrorClass
    reason: ErrorText
    remediation: ErrorText = ""


class WaveCompletionRequestedData(Payload):
    mailboxes: Annotated[list[EmailAddress] | None, Field(max_length=50_000)] = None
    requested_by: ShortText = ""


class WaveRollbackRequestedData(Payload):
    requested_by: ShortText = ""


class WaveRolledBackData(Payload):
    domain: DomainName
    restored: DnsRecordSet
    changes: Changes = []


class WavePollDueData(Payload):
    sequence: int = Field(ge=0)


class WaveExportPageDueData(Payload):
    """Where the export of a wave stands between two pages (the cloud-exporter's continuation).

    One page per message keeps every handler short, however large the tenant,
    and lets an interrupted export resume at the page it was on.
    """

    request: WaveRequestedData  # the scope: domains and the explicit list, if any
    page: int = Field(ge=1)
    cursor: Annotated[str | None, Field(max_length=8192)] = None  # @odata.nextLink; None: first page
    count: int = Field(default=0, ge=0)  # mailboxes published so far
    skipped: Annotated[list[ShortText], Field(max_length=1000)] = []
    skipped_unlisted: int = Field(default=0, ge=0)
    # which addresses of the explicit list were found so far: one bit per address, in
    # the list's sorted lower-case order, base64 (6 KiB for 50,000 addresses)
    matched: Annotated[str, Field(max_length=70_000)] = ""


# --------------------------------------------------------------------------- mailbox events


class MailboxProvisionedData(Payload):
    mailbox: CloudMailbox
    account: AdAccount
    mail_enable_mode: MailEnableMode = MailEnableMode.MAIL_USER


class MailboxMailEnabledData(Payload):
    mailbox: CloudMailbox
    account: AdAccount
    mail_enable_mode: MailEnableMode
    changes: Changes = []


class MailboxMoveRequestedData(Payload):
    primary_smtp_address: EmailAddress
    move_mode: MoveMode
    batch_name: ShortText | None = None
    target_database: ShortText | None = None
    primary_only: bool = False


class MoveProgress(Payload):
    primary_smtp_address: EmailAddress
    status: ShortText = Field(description="The Exchange status as reported (Syncing, InProgress, ...)")
    percent: int = Field(ge=0, le=100)
    bytes_transferred: int | None = Field(default=None, ge=0)
    bytes_total: int | None = Field(default=None, ge=0)
    items_transferred: int | None = Field(default=None, ge=0)
    items_skipped: int | None = Field(default=None, ge=0)


class MailboxCompletingData(Payload):
    primary_smtp_address: EmailAddress
    requested_by: ShortText = ""


class MailboxFailedData(Payload):
    step: Step
    error_class: ErrorClass
    reason: ErrorText
    error_type: ShortText = ""
    remediation: ErrorText = ""
    attempts: int = Field(default=1, ge=0)
    primary_smtp_address: EmailAddress | None = None


class MailboxReplayedData(Payload):
    step: Step
    replay_count: int = Field(ge=1)
    requested_by: ShortText = ""
    primary_smtp_address: EmailAddress | None = None


# --------------------------------------------------------------------------- the events


class _MailboxEvent(Event):
    about_mailbox: ClassVar[bool] = True


class WaveRequested(Event):
    type: Literal["wave.requested"] = "wave.requested"
    data: WaveRequestedData


class WaveCloudReady(Event):
    type: Literal["wave.cloud_ready"] = "wave.cloud_ready"
    data: WaveCloudReadyData


class WaveOnpremReady(Event):
    type: Literal["wave.onprem_ready"] = "wave.onprem_ready"
    data: WaveOnpremReadyData


class WaveDnsPrepared(Event):
    type: Literal["wave.dns_prepared"] = "wave.dns_prepared"
    data: WaveDnsPreparedData


class WaveExported(Event):
    type: Literal["wave.exported"] = "wave.exported"
    data: WaveExportedData


class WaveMigrated(Event):
    type: Literal["wave.migrated"] = "wave.migrated"
    data: WaveMigratedData


class WaveCutoverStarted(Event):
    """Added to ARCHITECTURE's list: marks the wave's `cutover` state (MX being switched)."""

    type: Literal["wave.cutover_started"] = "wave.cutover_started"
    data: WaveCutoverStartedData


class WaveCutoverDone(Event):
    type: Literal["wave.cutover_done"] = "wave.cutover_done"
    data: WaveCutoverDoneData


class WaveFailed(Event):
    type: Literal["wave.failed"] = "wave.failed"
    data: WaveFailedData


class WaveCompletionRequested(Event):
    """Operator command (`homebound complete`): complete the wave's synced moves."""

    type: Literal["wave.completion_requested"] = "wave.completion_requested"
    data: WaveCompletionRequestedData


class WaveRollbackRequested(Event):
    """Operator command (`homebound dns rollback`): restore the records from before."""

    type: Literal["wave.rollback_requested"] = "wave.rollback_requested"
    data: WaveRollbackRequestedData


class WaveRolledBack(Event):
    type: Literal["wave.rolled_back"] = "wave.rolled_back"
    data: WaveRolledBackData


class WavePollDue(Event):
    """The migration monitor's own timer; travels only through its poll queue."""

    type: Literal["wave.poll_due"] = "wave.poll_due"
    data: WavePollDueData


class WaveExportPageDue(Event):
    """The cloud-exporter's own continuation; travels only through its work queue."""

    type: Literal["wave.export_page_due"] = "wave.export_page_due"
    data: WaveExportPageDueData


class MailboxDiscovered(_MailboxEvent):
    type: Literal["mailbox.discovered"] = "mailbox.discovered"
    data: CloudMailbox


class MailboxProvisioned(_MailboxEvent):
    type: Literal["mailbox.provisioned"] = "mailbox.provisioned"
    data: MailboxProvisionedData


class MailboxMailEnabled(_MailboxEvent):
    type: Literal["mailbox.mail_enabled"] = "mailbox.mail_enabled"
    data: MailboxMailEnabledData


class MailboxMoveRequested(_MailboxEvent):
    type: Literal["mailbox.move_requested"] = "mailbox.move_requested"
    data: MailboxMoveRequestedData


class MailboxSyncing(_MailboxEvent):
    type: Literal["mailbox.syncing"] = "mailbox.syncing"
    data: MoveProgress


class MailboxSynced(_MailboxEvent):
    type: Literal["mailbox.synced"] = "mailbox.synced"
    data: MoveProgress


class MailboxCompleting(_MailboxEvent):
    """Added to ARCHITECTURE's list: completion was requested (the `completing` state)."""

    type: Literal["mailbox.completing"] = "mailbox.completing"
    data: MailboxCompletingData


class MailboxCompleted(_MailboxEvent):
    type: Literal["mailbox.completed"] = "mailbox.completed"
    data: MoveProgress


class MailboxFailed(_MailboxEvent):
    type: Literal["mailbox.failed"] = "mailbox.failed"
    data: MailboxFailedData


class MailboxReplayed(_MailboxEvent):
    type: Literal["mailbox.replayed"] = "mailbox.replayed"
    data: MailboxReplayedData


EVENT_MODELS: dict[str, type[Event]] = {
    model.model_fields["type"].default: model
    for model in (
        WaveRequested, WaveCloudReady, WaveOnpremReady, WaveDnsPrepared, WaveExported,
        WaveMigrated, WaveCutoverStarted, WaveCutoverDone, WaveFailed,
        WaveCompletionRequested, WaveRollbackRequested, WaveRolledBack, WavePollDue,
        WaveExportPageDue, MailboxDiscovered, MailboxProvisioned, MailboxMailEnabled, MailboxMoveRequested,
        MailboxSyncing, MailboxSynced, MailboxCompleting, MailboxCompleted, MailboxFailed,
        MailboxReplayed,
    )
}

AnyEvent = Annotated[
    WaveRequested | WaveCloudReady | WaveOnpremReady | WaveDnsPrepared | WaveExported
    | WaveMigrated | WaveCutoverStarted | WaveCutoverDone | WaveFailed
    | WaveCompletionRequested | WaveRollbackRequested | WaveRolledBack | WavePollDue
    | WaveExportPageDue | MailboxDiscovered | MailboxProvisioned | MailboxMailEnabled | MailboxMoveRequested
    | MailboxSyncing | MailboxSynced | MailboxCompleting | MailboxCompleted | MailboxFailed
    | MailboxReplayed,
    Field(discriminator="type"),
]

_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)


class UnknownEventType(ValueError):
    """The message names a type this release does not know."""


def parse_event(body: bytes | str | dict[str, Any]) -> Event:
    """Decode and validate one event; raises UnknownEventType or pydantic.ValidationError."""
    if isinstance(body, dict):
        type_name = body.get("type")
        if type_name not in EVENT_MODELS:
            raise UnknownEventType(f"unknown event type {str(type_name)[:80]!r}")
        return EVENT_MODELS[str(type_name)].model_validate(body)
    decoded = json.loads(body)
    if not isinstance(decoded, dict):
        raise ValueError("an event is a JSON object")
    return parse_event(decoded)


def event_type_of(model: type[Event]) -> str:
    return str(model.model_fields["type"].default)

__all__ = [
    "EVENT_MODELS",
    "AdAccount",
    "Addresses",
    "AnyEvent",
    "ArchiveStatus",
    "Changes",
    "CloudMailbox",
    "Completion",
    "CompletionPolicy",
    "DnsRecordSet",
    "ErrorClass",
    "MailEnableMode",
    "MailboxCompleted",
    "MailboxCompleting",
    "MailboxCompletingData",
    "MailboxDiscovered",
    "MailboxFailed",
    "MailboxFailedData",
    "MailboxMailEnabled",
    "MailboxMailEnabledData",
    "MailboxMoveRequested",
    "MailboxMoveRequestedData",
    "MailboxProvisioned",
    "MailboxProvisionedData",
    "MailboxReplayed",
    "MailboxReplayedData",
    "MailboxSynced",
    "MailboxSyncing",
    "MoveMode",
    "MoveProgress",
    "RecipientTypeDetails",
    "Step",
    "UnknownEventType",
    "WaveCloudReady",
    "WaveCloudReadyData",
    "WaveCompletionRequested",
    "WaveCompletionRequestedData",
    "WaveCutoverDone",
    "WaveCutoverDoneData",
    "WaveCutoverStarted",
    "WaveCutoverStartedData",
    "WaveDnsPrepared",
    "WaveDnsPreparedData",
    "WaveExported",
    "WaveExportedData",
    "WaveFailed",
    "WaveFailedData",
    "WaveMigrated",
    "WaveMigratedData",
    "WaveOnpremReady",
    "WaveOnpremReadyData",
    "WavePollDue",
    "WavePollDueData",
    "WaveRequested",
    "WaveRequestedData",
    "WaveRollbackRequested",
    "WaveRollbackRequestedData",
    "WaveRolledBack",
    "WaveRolledBackData",
    "event_type_of",
    "parse_event",
]
