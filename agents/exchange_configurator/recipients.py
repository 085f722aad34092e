"""From a cloud mailbox to the on-prem mail user it needs, and checking that it is there.

EXCHANGE.md step 5 and pre-flight checks 1 and 2: the on-prem object is a
MailUser (or a RemoteUserMailbox), its ExchangeGuid (and ArchiveGuid when an
archive moves) equals the cloud's, every cloud SMTP address and
X500:<cloud LegacyExchangeDN> are proxies, and the routing address is
alias@<tenant>.mail.onmicrosoft.com. `differences` is that check; it decides
whether a mailbox needs the mail-enable script at all and verifies the
read-back afterwards.
"""

from __future__ import annotations

from contracts.events import CloudMailbox, MailboxProvisionedData, MailEnableMode
from contracts.onprem import MailEnableItem, OnpremRecipient, RecipientType

__all__ = ["describe_changes", "differences", "mail_enable_item", "wanted_type"]

_SHOWN = 5  # addresses named in one message; the rest are counted


def wanted_type(mode: MailEnableMode) -> RecipientType:
    remote = mode is MailEnableMode.REMOTE_MAILBOX
    return RecipientType.REMOTE_USER_MAILBOX if remote else RecipientType.MAIL_USER


def _proxies(mailbox: CloudMailbox) -> list[str]:
    """Primary `SMTP:` first, the other SMTP proxies, the X500 of the cloud LegacyExchangeDN,
    then any X500 the cloud mailbox already carried (from earlier moves); no duplicates."""
    primary = f"SMTP:{mailbox.primary_smtp_address}"
    secondary = [f"smtp:{a.split(':', 1)[1]}" for a in mailbox.smtp_addresses]
    x500 = [a for a in mailbox.email_addresses if a.lower().startswith("x500:")]
    chosen: dict[str, str] = {}
    for address in [primary, *secondary, mailbox.x500_address, *x500]:
        chosen.setdefault(address.lower(), address)
    return list(chosen.values())


def mail_enable_item(data: MailboxProvisionedData) -> MailEnableItem:
    """The mail-enable request for one provisioned account (identity: its objectGUID)."""
    mailbox = data.mailbox
    return MailEnableItem(
        identity=data.account.object_guid,
        alias=mailbox.alias,
        display_name=mailbox.display_name,
        external_email_address=mailbox.routing_address,
        primary_smtp_address=mailbox.primary_smtp_address,
        exchange_guid=mailbox.exchange_guid,
        archive_guid=mailbox.archive_guid if mailbox.has_archive else None,
        email_addresses=_proxies(mailbox),
    )


def _bare(address: str | None) -> str:
    """`SMTP:a@b` -> `a@b`, lower case (Exchange compares addresses without case)."""
    text = address or ""
    return (text[5:] if text.lower().startswith("smtp:") else text).lower()


def _named(addresses: list[str]) -> str:
    more = len(addresses) - _SHOWN
    return ", ".join(addresses[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def differences(item: MailEnableItem, recipient: OnpremRecipient, mode: MailEnableMode) -> list[str]:
    """How *recipient* differs from what *item* asks for; empty when it is ready for the move."""
    found: list[str] = []
    want = wanted_type(mode)
    if recipient.recipient_type_details is not want:
        found.append(f"recipient type is {recipient.recipient_type_details}, not {want}")
    if recipient.exchange_guid != item.exchange_guid:
        found.append(f"ExchangeGuid is {recipient.exchange_guid or 'not set'}, not {item.exchange_guid}")
    if item.archive_guid is not None and recipient.archive_guid != item.archive_guid:
        found.append(f"ArchiveGuid is {recipient.archive_guid or 'not set'}, not {item.archive_guid}")
    have = {a.lower() for a in recipient.email_addresses}
    missing = [a for a in item.email_addresses if a.lower() not in have]
    if missing:
        found.append(f"missing proxy addresses: {_named(missing)}")
    if _bare(recipient.primary_smtp_address) != item.primary_smtp_address.lower():
        found.append(f"primary SMTP address is {recipient.primary_smtp_address or 'not set'}, "
                     f"not {item.primary_smtp_address}")
    if _bare(recipient.external_email_address) != item.external_email_address.lower():
        found.append(f"routing address is {recipient.external_email_address or 'not set'}, "
                     f"not SMTP:{item.external_email_address}")
    return found


def describe_changes(before: OnpremRecipient, after: OnpremRecipient) -> list[str]:
    """What mail-enable changed, in an administrator's words."""
    changes: list[str] = []
    if before.recipient_type_details is not after.recipient_type_details:
        changes.append(f"mail-enabled as {after.recipient_type_details} "
                       f"(routing address {after.external_email_address})")
    elif _bare(before.external_email_address) != _bare(after.external_email_address):
        changes.append(f"routing address set to {after.external_email_address}")
    if before.exchange_guid != after.exchange_guid:
        changes.append(f"stamped ExchangeGuid {after.exchange_guid}")
    if before.archive_guid != after.archive_guid and after.archive_guid is not None:
        changes.append(f"stamped ArchiveGuid {after.archive_guid}")
    if _bare(before.primary_smtp_address) != _bare(after.primary_smtp_address):
        changes.append(f"primary SMTP address set to {after.primary_smtp_address}")
    had = {a.lower() for a in before.email_addresses}
    added = [a for a in after.email_addresses if a.lower() not in had]
    smtp = [a for a in added if a.lower().startswith("smtp:")]
    if smtp:
        changes.append(f"added SMTP proxies: {_named(smtp)}"[:256])
    x500 = len(added) - len(smtp)
    if x500:
        changes.append(f"added {x500} X500 prox{'y' if x500 == 1 else 'ies'} (the cloud LegacyExchangeDN)")
    return changes
