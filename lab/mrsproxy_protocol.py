"""How the Exchange Online stand-in reaches the on-prem stand-in's MRSProxy.

In Exchange, the cloud's Mailbox Replication Service pushes a move to the
on-prem server named by the migration endpoint (RemoteServer) through
`https://<fqdn>/EWS/mrsproxy.svc`, authenticated with the endpoint's
credentials. MRSProxy must be enabled on the EWS virtual directory, and each
server admits at most MaxMRSConnections concurrent connections.

The lab keeps that shape but not WCF's SOAP: the on-prem stand-in serves
`POST /EWS/mrsproxy.svc` with HTTP Basic authentication (the endpoint's
credentials) and these JSON requests. Lab-internal; the product never calls it.

Status codes: 401 bad credentials ("Access is denied"); 404 when MRSProxy is
disabled on every EWS virtual directory (what a real server answers);
200 with {"ok": false, "error": {...}} for refusals Exchange reports as
exceptions (the `type` is the Exchange exception class, `message` its text).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

PATH: Final = "/EWS/mrsproxy.svc"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ping(_Model):
    """Test-MigrationServerAvailability: is MRSProxy reachable, enabled, are credentials good?"""

    op: Literal["ping"] = "ping"


class OpenMove(_Model):
    """Take one MRSProxy connection for a move; refused beyond MaxMRSConnections."""

    op: Literal["open"] = "open"
    move_id: uuid.UUID


class CloseMove(_Model):
    op: Literal["close"] = "close"
    move_id: uuid.UUID


class ValidateTarget(_Model):
    """The checks MRS makes on the target before copying (see EXCHANGE.md)."""

    op: Literal["validate-target"] = "validate-target"
    exchange_guid: uuid.UUID
    archive_guid: uuid.UUID | None = None  # the cloud archive, when it moves too
    primary_only: bool = False
    legacy_exchange_dn: str
    primary_smtp_address: str
    target_delivery_domain: str
    target_database: str
    target_archive_database: str | None = None


class CompleteMove(_Model):
    """Finalisation: the on-prem mail user becomes a mailbox in the target database."""

    op: Literal["complete"] = "complete"
    exchange_guid: uuid.UUID
    target_database: str
    archive_moved: bool = False


MrsRequest = Annotated[Ping | OpenMove | CloseMove | ValidateTarget | CompleteMove,
                       Field(discriminator="op")]


class MrsError(_Model):
    type: str  # e.g. MRSProxyConnectionLimitReachedTransientException
    message: str


class MrsResponse(_Model):
    ok: bool
    error: MrsError | None = None
    server: str | None = None  # which on-prem server answered
    target_identity: uuid.UUID | None = None  # objectGUID of the validated target


# The on-prem stand-in's messages, matching what Exchange reports, so the
# product's classifier (EXCHANGE.md) sees the real strings.
MESSAGES: Final = {
    "no-target": "Cannot find a recipient that has mailbox GUID '{guid}'.",
    "smtp-proxy": "The target mailbox doesn't have an SMTP proxy matching '{domain}'.",
    "x500-proxy": "The target mail user '{identity}' doesn't have an X500 proxy matching the "
                  "source mailbox's LegacyExchangeDN '{legacy_dn}'.",
    "primary-mailbox": "The target user '{identity}' already has a primary mailbox.",
    "archive": "The source mailbox has an archive. You must specify the ArchiveDomain "
               "parameter or the PrimaryOnly parameter, or set ArchiveGuid on the target.",
    "database": "Couldn't find database '{database}' or it isn't mounted.",
    "connection-limit": "MRSProxyConnectionLimitReachedTransientException: The call was rejected "
                        "because the number of concurrent connections ({limit}) to MRS Proxy on "
                        "server '{server}' has reached the limit.",
    "disabled": "The remote server returned an error: (404) Not Found. MRSProxy isn't enabled "
                "on '{server}'.",
    "access-denied": "Access is denied.",
}
