"""The records the tenant keeps: mailboxes, org settings, migration objects, moves.

Plain pydantic models so the whole tenant can be written to and read from the
state file as JSON. They are mutable on purpose: the tenant changes them in
place under its lock. Output shapes (what a cmdlet returns) live with the
cmdlets, not here.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

NIL_GUID = uuid.UUID(int=0)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(validate_assignment=False, extra="ignore")

    seq: int  # creation order: stable paging order and skip-token position


class Mailbox(Record):
    """A cloud recipient; a mailbox until its move completes, then a MailUser."""

    guid: uuid.UUID
    name: str
    alias: str
    display_name: str
    primary_smtp_address: str
    user_principal_name: str
    exchange_guid: uuid.UUID
    archive_guid: uuid.UUID = NIL_GUID
    archive_status: str = "None"
    legacy_exchange_dn: str
    email_addresses: list[str]
    recipient_type_details: str = "UserMailbox"
    external_directory_object_id: uuid.UUID
    external_email_address: str | None = None  # set when it becomes a MailUser
    size_bytes: int
    item_count: int
    archive_size_bytes: int = 0
    archive_item_count: int = 0
    database: str
    when_created: datetime = Field(default_factory=utcnow)
    when_changed: datetime = Field(default_factory=utcnow)

    @property
    def is_mailbox(self) -> bool:
        return self.recipient_type_details != "MailUser"

    @property
    def has_archive(self) -> bool:
        return self.archive_guid != NIL_GUID


class AcceptedDomain(Record):
    guid: uuid.UUID
    name: str
    domain_name: str
    domain_type: str = "Authoritative"
    default: bool = False
    initial_domain: bool = False
    when_changed: datetime = Field(default_factory=utcnow)


class OutboundConnector(Record):
    guid: uuid.UUID
    name: str
    enabled: bool = True
    connector_type: str = "Partner"
    connector_source: str = "Default"
    comment: str | None = None
    use_mx_record: bool = True
    smart_hosts: list[str] = Field(default_factory=list)
    recipient_domains: list[str] = Field(default_factory=list)
    tls_settings: str | None = None
    tls_domain: str | None = None
    route_all_messages_via_on_premises: bool = False
    all_accepted_domains: bool = False
    cloud_services_mail_enabled: bool = False
    is_transport_rule_scoped: bool = False
    test_mode: bool = False
    when_created: datetime = Field(default_factory=utcnow)


class MigrationEndpoint(Record):
    guid: uuid.UUID
    name: str
    endpoint_type: str = "ExchangeRemoteMove"
    remote_server: str
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # never returned by a cmdlet
    max_concurrent_migrations: int = 20
    max_concurrent_incremental_syncs: int = 20
    when_created: datetime = Field(default_factory=utcnow)


class MigrationBatch(Record):
    guid: uuid.UUID
    name: str
    endpoint: str
    target_delivery_domain: str
    target_databases: list[str] = Field(default_factory=list)
    target_archive_databases: list[str] = Field(default_factory=list)
    primary_only: bool = False
    archive_domain: str | None = None
    auto_complete: bool = False
    complete_after: datetime | None = None
    bad_item_limit: int | None = 0  # None = Unlimited
    notification_emails: list[str] = Field(default_factory=list)
    started: bool = False
    complete_requested: bool = False
    skipped_items_approved_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    last_synced_at: datetime | None = None
    finalized_at: datetime | None = None


class Phase(enum.StrEnum):
    """Where one move stands; Exchange's status names are derived from it (statuses.py)."""

    CREATED = "created"  # in a batch that has not started
    QUEUED = "queued"
    VALIDATING = "validating"
    SYNCING = "syncing"
    SYNCED = "synced"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"


ACTIVE_PHASES = frozenset({Phase.VALIDATING, Phase.SYNCING, Phase.COMPLETING})


class Move(Record):
    """One mailbox move (the MRS request); a migration batch's users are moves too."""

    request_guid: uuid.UUID
    user_guid: uuid.UUID  # the migration user's Guid when in a batch
    mailbox_seq: int
    mailbox_address: str  # primary SMTP address when the move was made
    csv_address: str  # the address as given (CSV EmailAddress or Identity)
    migration_batch: str | None = None
    batch_name: str | None = None  # Get-MoveRequest BatchName ("MigrationService:<batch>")
    endpoint: str | None = None  # migration endpoint whose limits apply
    remote_host: str
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    target_database: str | None = None
    target_archive_database: str | None = None
    target_delivery_domain: str
    primary_only: bool = False
    archive_domain: str | None = None
    suspend_when_ready: bool = False
    complete_after: datetime | None = None
    bad_item_limit: int | None = 0
    skipped_items_approved: bool = False
    resume_requested: bool = False  # Resume-MoveRequest on an AutoSuspended move
    phase: Phase = Phase.QUEUED
    status_detail: str = "Queued"
    message: str | None = None  # error text (Error / Message)
    failure_type: str | None = None
    percent: int = 0
    bytes_total: int
    bytes_transferred: int = 0
    items_total: int
    items_transferred: int = 0
    skipped_items: int = 0
    mrs_open: bool = False
    next_attempt_at: float = 0.0
    stall_until: float | None = None
    complete_due: float | None = None
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    last_update: datetime = Field(default_factory=utcnow)
    synced_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None

    @property
    def in_batch(self) -> bool:
        return self.migration_batch is not None


class Fault(BaseModel):
    """An injected failure for one mailbox (CSV `Fault` column or POST /lab/faults)."""

    kind: str
    count: int | None = None  # transient faults: how many attempts it still hits
    seconds: float | None = None  # stall length
    spec: str  # as given, for /lab/state
