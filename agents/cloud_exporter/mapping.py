"""A Get-Mailbox record (and its statistics) as the `CloudMailbox` every later step copies.

Pure functions: no I/O, so every oddity Exchange can return (a disabled
archive that kept its GUID, a routing proxy in upper case, a size written as
"1.2 GB (1,288,490,188 bytes)") is decided here and tested without a tenant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import pydantic

from agents.cloud_exporter.ports import MailboxRecord, MailboxSize
from contracts.events import ArchiveStatus, CloudMailbox, RecipientTypeDetails
from contracts.fields import NIL_GUID

__all__ = [
    "MAILBOX_PROPERTIES",
    "describe",
    "not_movable_reason",
    "parse_size",
    "skip_reason",
    "smtp_addresses",
    "to_cloud_mailbox",
]

# What the export asks for ($select): everything CloudMailbox needs, and nothing that
# would make a page of 1,000 records heavier than it must be.
MAILBOX_PROPERTIES: Final = (
    "Identity", "PrimarySmtpAddress", "Alias", "DisplayName", "UserPrincipalName",
    "ExchangeGuid", "ArchiveGuid", "ArchiveStatus", "LegacyExchangeDN", "EmailAddresses",
    "RecipientTypeDetails", "ExternalDirectoryObjectId",
)
MOVABLE: Final = {t.value.lower(): t for t in RecipientTypeDetails}
_BYTES_RE: Final = re.compile(r"\(([\d,.\s\u00a0\u202f']+)\s*bytes\)", re.IGNORECASE)


def _text(record: MailboxRecord, name: str) -> str:
    value = record.get(name)
    return "" if value is None else str(value).strip()


def _proxies(record: MailboxRecord) -> list[str]:
    value = record.get("EmailAddresses")
    if value is None:
        return []
    if isinstance(value, str):  # a single-valued answer, seen from older endpoints
        return [value]
    return [str(v) for v in value]


def smtp_addresses(record: MailboxRecord) -> set[str]:
    """Every SMTP address of the mailbox (and its UPN), lower case: what an explicit scope may name."""
    found = {p.split(":", 1)[1].lower() for p in _proxies(record) if p.lower().startswith("smtp:")}
    for name in ("PrimarySmtpAddress", "UserPrincipalName"):
        if value := _text(record, name):
            found.add(value.lower())
    return found


def describe(record: MailboxRecord) -> str:
    """How an operator recognises the mailbox in a report: its address, else alias or identity."""
    for name in ("PrimarySmtpAddress", "Alias", "Identity", "ExchangeGuid"):
        if value := _text(record, name):
            return value[:120]
    return "(a mailbox without address, alias or identity)"


def not_movable_reason(record: MailboxRecord) -> str | None:
    """Why this recipient is not moved (None when it is a user, shared, room or equipment mailbox)."""
    kind = _text(record, "RecipientTypeDetails")
    if kind.lower() in MOVABLE:
        return None
    return f"{describe(record)}: RecipientTypeDetails {kind[:60] or '(none)'} is not moved by Homebound"


def parse_size(value: Any) -> int | None:
    """Bytes from an Exchange size: an int, or a string like "1.2 GB (1,288,490,188 bytes)"."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value)
    match = _BYTES_RE.search(text)
    digits = re.sub(r"\D", "", match.group(1) if match else text)
    return int(digits) if digits and (match or text.strip().isdigit()) else None


def _routing_address(proxies: Iterable[str], alias: str, routing_domain: str) -> str:
    """The `smtp:...@<tenant>.mail.onmicrosoft.com` proxy; else alias@routing domain."""
    suffix = "@" + routing_domain.lower()
    for proxy in proxies:
        prefix, _, address = proxy.partition(":")
        if prefix.lower() == "smtp" and address.lower().endswith(suffix):
            return address
    return f"{alias}@{routing_domain}"


def to_cloud_mailbox(record: MailboxRecord, size: MailboxSize | None, routing_domain: str) -> CloudMailbox:
    """The contract's mailbox; raises pydantic.ValidationError when the record cannot be one."""
    proxies = _proxies(record)
    alias = _text(record, "Alias")
    archive_active = _text(record, "ArchiveStatus").lower() == "active"
    # A disabled archive keeps its ArchiveGuid in Exchange Online: copying it on-prem would
    # make the move expect an archive that will not come, so only an active one counts.
    archive_guid = _text(record, "ArchiveGuid") if archive_active else str(NIL_GUID)
    return CloudMailbox.model_validate({
        "primary_smtp_address": _text(record, "PrimarySmtpAddress"),
        "alias": alias,
        "display_name": str(record.get("DisplayName") or ""),
        "user_principal_name": _text(record, "UserPrincipalName"),
        "exchange_guid": _text(record, "ExchangeGuid"),
        "archive_guid": archive_guid or str(NIL_GUID),
        "archive_status": ArchiveStatus.ACTIVE if archive_active else ArchiveStatus.NONE,
        "legacy_exchange_dn": _text(record, "LegacyExchangeDN"),
        "email_addresses": proxies,
        "recipient_type_details": MOVABLE.get(_text(record, "RecipientTypeDetails").lower(),
                                              _text(record, "RecipientTypeDetails")),
        "routing_address": _routing_address(proxies, alias, routing_domain),
        "external_directory_object_id": _text(record, "ExternalDirectoryObjectId") or None,
        "size_bytes": size.size_bytes if size else None,
        "item_count": size.item_count if size else None,
    })


def skip_reason(record: MailboxRecord, error: pydantic.ValidationError) -> str:
    """`<mailbox>: <field>: <problem>`, at most 256 characters, without echoing the bad value."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:2]:
        where = ".".join(str(p) for p in item["loc"]) or "mailbox"
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    text = f"{describe(record)}: " + "; ".join(problems)
    return text if len(text) <= 256 else text[:253] + "..."
