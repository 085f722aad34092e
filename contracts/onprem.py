"""The on-premises Exchange Management Shell operations Homebound runs.

Each operation is a fixed PowerShell template shipped with the
exchange-configurator (`agents/exchange_configurator/scripts/<op>.ps1`). Its
first line names it::

    # homebound-op: mail-enable/1

Data never travels inside the script: the request below is written as JSON
to the command's stdin, the script parses it (`ConvertFrom-Json`) and
answers with one JSON object on stdout (the response below). A failure of
the whole script comes back as CLIXML on stderr with a non-zero exit code;
per-recipient failures come back inside the response.

These models are the contract between the templates, the agent that runs
them and the lab's shell stand-in, which runs nothing but these operations.
"""

from __future__ import annotations

import enum
import re
import uuid
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import MailEnableMode
from contracts.fields import Alias, DisplayName, DomainName, EmailAddress, ProxyAddress, ShortText

__all__ = [
    "OP_HEADER",
    "AcceptedDomain",
    "DomainType",
    "EwsVirtualDirectory",
    "MailEnableMode",
    "MailEnableRequest",
    "MailEnableResponse",
    "MailEnableResult",
    "MailboxDatabase",
    "OnpremRecipient",
    "Operation",
    "OrgInspectRequest",
    "OrgInspectResponse",
    "OrgPrepareRequest",
    "OrgPrepareResponse",
    "RecipientReadRequest",
    "RecipientReadResponse",
    "RecipientReadResult",
    "SendConnector",
    "ShellError",
    "parse_op_header",
]

OP_HEADER: Final = re.compile(r"^# homebound-op: (?P<op>[a-z][a-z-]*)/(?P<version>[0-9]+)\s*$")


class Operation(enum.StrEnum):
    ORG_INSPECT = "org-inspect"
    ORG_PREPARE = "org-prepare"
    MAIL_ENABLE = "mail-enable"
    RECIPIENT_READ = "recipient-read"


OPERATION_VERSION: Final = 1


def parse_op_header(script: str) -> tuple[str, int] | None:
    """The (operation, version) a script declares on its first line, or None."""
    first_line = script.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    match = OP_HEADER.match(first_line)
    return (match.group("op"), int(match.group("version"))) if match else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShellError(_Model):
    """An Exchange error as the shell reports it: exception type and message."""

    type: ShortText  # e.g. ManagementObjectNotFoundException
    message: Annotated[str, Field(max_length=4000)]


class DomainType(enum.StrEnum):
    AUTHORITATIVE = "Authoritative"
    INTERNAL_RELAY = "InternalRelay"
    EXTERNAL_RELAY = "ExternalRelay"


class AcceptedDomain(_Model):
    name: ShortText
    domain_name: DomainName
    domain_type: DomainType
    default: bool = False


class SendConnector(_Model):
    name: ShortText
    # e.g. "SMTP:fabrikam.mail.onmicrosoft.com;1"
    address_spaces: Annotated[list[ShortText], Field(max_length=100)]
    smart_hosts: Annotated[list[ShortText], Field(max_length=20)] = []
    dns_routing_enabled: bool = True
    enabled: bool = True


class EwsVirtualDirectory(_Model):
    identity: ShortText  # "EX01\EWS (Default Web Site)"
    server: ShortText
    mrsproxy_enabled: bool
    mrsproxy_max_connections: int | None = None


class MailboxDatabase(_Model):
    name: ShortText
    server: ShortText
    mounted: bool
    available_new_mailbox_space_bytes: int | None = None


# --------------------------------------------------------------------------- org-inspect/1


class OrgInspectRequest(_Model):
    pass


class OrgInspectResponse(_Model):
    exchange_version: ShortText
    accepted_domains: list[AcceptedDomain]
    send_connectors: list[SendConnector]
    ews_virtual_directories: list[EwsVirtualDirectory]
    mailbox_databases: list[MailboxDatabase]
    recipient_validation_enabled: bool


# --------------------------------------------------------------------------- org-prepare/1


class AcceptedDomainChange(_Model):
    domain_name: DomainName
    domain_type: DomainType


class SendConnectorChange(_Model):
    name: ShortText
    address_spaces: Annotated[list[ShortText], Field(min_length=1, max_length=100)]
    smart_hosts: Annotated[list[ShortText], Field(max_length=20)] = []


class OrgPrepareRequest(_Model):
    """Only what inspection found missing; the script checks each again before changing it."""

    accepted_domains: list[AcceptedDomainChange] = []
    send_connectors: list[SendConnectorChange] = []
    enable_mrsproxy: Annotated[list[ShortText], Field(max_length=100)] = []  # EWS vdir identities
    mount_databases: Annotated[list[ShortText], Field(max_length=100)] = []


class OrgPrepareResponse(_Model):
    changes: list[ShortText]  # what was actually changed, in plain words
    errors: list[ShellError] = []


# --------------------------------------------------------------------------- recipients


class RecipientType(enum.StrEnum):
    USER = "User"  # plain AD user, not mail-enabled
    MAIL_USER = "MailUser"
    REMOTE_USER_MAILBOX = "RemoteUserMailbox"
    USER_MAILBOX = "UserMailbox"
    SHARED_MAILBOX = "SharedMailbox"


class OnpremRecipient(_Model):
    """An on-prem recipient as Get-User/Get-MailUser/Get-RemoteMailbox show it."""

    identity: uuid.UUID  # objectGUID
    distinguished_name: Annotated[str, Field(max_length=2048)]
    recipient_type_details: RecipientType
    alias: Alias | None = None
    display_name: DisplayName | None = None
    primary_smtp_address: EmailAddress | None = None
    external_email_address: ShortText | None = None  # "SMTP:alias@tenant.mail.onmicrosoft.com"
    exchange_guid: uuid.UUID | None = None
    archive_guid: uuid.UUID | None = None
    email_addresses: list[ProxyAddress] = []
    legacy_exchange_dn: Annotated[str | None, Field(max_length=1024)] = None


class MailEnableItem(_Model):
    identity: uuid.UUID  # the AD account's objectGUID
    alias: Alias
    display_name: DisplayName
    external_email_address: EmailAddress  # alias@tenant.mail.onmicrosoft.com
    primary_smtp_address: EmailAddress
    exchange_guid: uuid.UUID
    archive_guid: uuid.UUID | None = None
    email_addresses: Annotated[list[ProxyAddress], Field(min_length=1, max_length=500)]  # SMTP and X500


class MailEnableRequest(_Model):
    mode: MailEnableMode = MailEnableMode.MAIL_USER
    recipients: Annotated[list[MailEnableItem], Field(min_length=1, max_length=1000)]


class MailEnableResult(_Model):
    identity: uuid.UUID
    ok: bool
    changed: bool = False
    error: ShellError | None = None
    recipient: OnpremRecipient | None = None  # read back after the change


class MailEnableResponse(_Model):
    results: list[MailEnableResult]


class RecipientReadRequest(_Model):
    identities: Annotated[list[uuid.UUID], Field(min_length=1, max_length=5000)]


class RecipientReadResult(_Model):
    identity: uuid.UUID
    found: bool
    recipient: OnpremRecipient | None = None


class RecipientReadResponse(_Model):
    results: list[RecipientReadResult]


REQUEST_MODELS: Final[dict[Operation, type[_Model]]] = {
    Operation.ORG_INSPECT: OrgInspectRequest,
    Operation.ORG_PREPARE: OrgPrepareRequest,
    Operation.MAIL_ENABLE: MailEnableRequest,
    Operation.RECIPIENT_READ: RecipientReadRequest,
}
RESPONSE_MODELS: Final[dict[Operation, type[_Model]]] = {
    Operation.ORG_INSPECT: OrgInspectResponse,
    Operation.ORG_PREPARE: OrgPrepareResponse,
    Operation.MAIL_ENABLE: MailEnableResponse,
    Operation.RECIPIENT_READ: RecipientReadResponse,
}
