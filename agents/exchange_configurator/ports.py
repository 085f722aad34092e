"""What the exchange-configurator needs from on-prem Exchange, as a Protocol.

The handlers talk only to this port; `adapters.ShellExchange` implements it
with the fixed templates over WinRM. Each method is one shell operation of
`contracts.onprem`, so a test double answers in the contract's own models.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from contracts.events import MailEnableMode
from contracts.onprem import (
    MailEnableItem,
    MailEnableResult,
    OrgInspectResponse,
    OrgPrepareRequest,
    OrgPrepareResponse,
    RecipientReadResult,
)

__all__ = ["OnpremExchange"]


class OnpremExchange(Protocol):
    def inspect_org(self) -> OrgInspectResponse:
        """Accepted domains, send connectors, EWS virtual directories, databases; changes nothing."""
        ...

    def prepare_org(self, request: OrgPrepareRequest) -> OrgPrepareResponse:
        """Apply only what *request* lists; the script checks each item again before changing it."""
        ...

    def mail_enable(self, mode: MailEnableMode, items: Sequence[MailEnableItem]) -> list[MailEnableResult]:
        """Mail-enable many accounts; one result per item, in order, each read back after the change."""
        ...

    def read_recipients(self, identities: Sequence[uuid.UUID]) -> list[RecipientReadResult]:
        """The recipients behind these objectGUIDs, one result per identity, in order."""
        ...
