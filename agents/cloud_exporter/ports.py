"""What the cloud-exporter needs from Exchange Online, in its own words (no httpx, no msal).

Records are small frozen values; a mailbox travels as the Get-Mailbox record
Exchange returned (`MailboxRecord`), because which of its properties matter
is decided in one place, `mapping.py`, not spread over the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

__all__ = [
    "AcceptedDomain",
    "CloudOrganisation",
    "EndpointTest",
    "MailboxRecord",
    "MailboxSize",
    "MailboxSource",
    "MigrationEndpoint",
    "NewMigrationEndpoint",
    "OutboundConnector",
]

MailboxRecord = Mapping[str, Any]
"""One Get-Mailbox row as Exchange returned it (property name -> value)."""


@dataclass(frozen=True)
class AcceptedDomain:
    identity: str
    domain_name: str
    domain_type: str  # Authoritative | InternalRelay | ExternalRelay


@dataclass(frozen=True)
class OutboundConnector:
    name: str
    connector_type: str = "OnPremises"
    smart_hosts: tuple[str, ...] = ()
    recipient_domains: tuple[str, ...] = ()
    use_mx_record: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class MigrationEndpoint:
    name: str
    remote_server: str
    max_concurrent_migrations: int | None
    max_concurrent_incremental_syncs: int | None


@dataclass(frozen=True)
class NewMigrationEndpoint:
    """What New-MigrationEndpoint -ExchangeRemoteMove needs; the password never leaves as text."""

    name: str
    remote_server: str
    username: str
    password: SecretStr
    max_concurrent_migrations: int


@dataclass(frozen=True)
class EndpointTest:
    """Test-MigrationServerAvailability's answer."""

    ok: bool
    message: str = ""


@dataclass(frozen=True)
class MailboxSize:
    size_bytes: int | None
    item_count: int | None


class CloudOrganisation(Protocol):
    """The tenant-wide settings a wave needs before anything moves."""

    def accepted_domains(self) -> list[AcceptedDomain]: ...

    def set_domain_type(self, identity: str, domain_type: str) -> None: ...

    def outbound_connector(self, name: str) -> OutboundConnector | None: ...

    def create_outbound_connector(self, connector: OutboundConnector) -> None: ...

    def update_outbound_connector(self, connector: OutboundConnector) -> None: ...

    def migration_endpoint(self, name: str) -> MigrationEndpoint | None: ...

    def create_migration_endpoint(self, endpoint: NewMigrationEndpoint) -> None:
        """Created without verification: MRSProxy may not be enabled yet; the test comes after."""

    def point_migration_endpoint(self, endpoint: NewMigrationEndpoint) -> None:
        """Set RemoteServer and Credentials of an existing endpoint (limits are left alone)."""

    def test_migration_endpoint(self, name: str) -> EndpointTest: ...


class MailboxSource(Protocol):
    """The mailboxes, a page at a time, and their sizes."""

    def mailbox_page(
        self, domains: Sequence[str], cursor: str | None, number: int
    ) -> tuple[Sequence[MailboxRecord], str | None]:
        """One page of the recipients with an address in *domains*: the first (no cursor) or
        the one *cursor* names; and the cursor of the next (None after the last)."""

    def mailbox_pages(self, domains: Sequence[str]) -> Iterator[Sequence[MailboxRecord]]:
        """Every recipient with an address in *domains*, one page of records at a time."""

    def sizes(self, mailboxes: Sequence[MailboxRecord]) -> list[MailboxSize | None]:
        """Each mailbox's size (None where Exchange could not say), in the same order."""
