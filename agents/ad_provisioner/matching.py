"""Deciding which directory account, if any, already belongs to a cloud mailbox (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from agents.ad_provisioner.ports import DirectoryUser
from contracts.events import AdAccount, CloudMailbox
from events.errors import NeedsHumanError

__all__ = [
    "account_of", "created_for", "creation_note", "existing_account", "mailbox_addresses", "names_in_use",
]


def mailbox_addresses(mailbox: CloudMailbox) -> frozenset[str]:
    """The cloud UPN and every SMTP address, lower case: what an existing account may hold."""
    smtp = (address.split(":", 1)[1] for address in mailbox.smtp_addresses)
    return frozenset(a.lower() for a in (mailbox.user_principal_name, *smtp))


def creation_note(mailbox: CloudMailbox) -> str:
    """What an account Homebound created says in `info`: how a rerun knows it made it."""
    return f"Created by Homebound for ExchangeGuid {mailbox.exchange_guid}"


def created_for(user: DirectoryUser, mailbox: CloudMailbox) -> bool:
    return creation_note(mailbox) in (user.note or "")


def existing_account(found: Iterable[DirectoryUser], mailbox: CloudMailbox) -> DirectoryUser | None:
    """The one person account holding any of the mailbox's addresses, or None.

    Two different accounts, or one that already has an on-prem mailbox, need a
    decision by a person: the move would land on the wrong account or fail.
    """
    addresses = mailbox_addresses(mailbox)
    holders = {u.distinguished_name: u for u in found if u.is_person and u.smtp_addresses() & addresses}
    if len(holders) > 1:
        names = "; ".join(sorted(holders)[:5])
        raise NeedsHumanError(
            f"{mailbox.primary_smtp_address} matches {len(holders)} different accounts: {names}",
            remediation="keep the address on one account only (UPN, mail, proxyAddresses), then replay",
        )
    user = next(iter(holders.values()), None)
    if user is not None and user.has_onprem_mailbox:
        raise NeedsHumanError(
            f"{user.distinguished_name} already has a primary mailbox on-premises "
            f"(msExchRecipientTypeDetails {user.recipient_type_details})",
            remediation="the on-prem object must be a mail user: export and disable the on-prem "
                        "mailbox (Disable-Mailbox) or pick another account, then replay",
        )
    return user


def names_in_use(found: Iterable[DirectoryUser]) -> set[str]:
    """The sAMAccountNames among the search results, lower case (they are case-insensitive)."""
    return {u.sam_account_name.lower() for u in found if u.sam_account_name}


def account_of(user: DirectoryUser, *, created: bool) -> AdAccount:
    return AdAccount(distinguished_name=user.distinguished_name, object_guid=user.object_guid,
                     sam_account_name=user.sam_account_name, created=created)
