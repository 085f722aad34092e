"""What the agent needs from Active Directory, in its own words (no ldap3 here)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "AccountNameTaken",
    "CommonNameTaken",
    "Directory",
    "DirectoryUser",
    "Lookup",
    "NewUser",
    "UserPrincipalNameTaken",
]

ACCOUNT_DISABLED = 0x2
# msExchRecipientTypeDetails of on-prem mailboxes: user, linked, shared, legacy, room, equipment
ONPREM_MAILBOX_TYPES = frozenset({1, 2, 4, 8, 16, 32})


@dataclass(frozen=True)
class Lookup:
    """One mailbox's question to the directory.

    `addresses`: lower-case SMTP addresses and the UPN; a user holding any of
    them as userPrincipalName, mail or SMTP proxy is the person's account.
    `account_names`: sAMAccountNames we might give a new account; the answer
    says which are taken, so a creation rarely needs a search of its own.
    """

    addresses: frozenset[str]
    account_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirectoryUser:
    """An account as read from the directory; only what provisioning decides on."""

    distinguished_name: str
    object_guid: uuid.UUID
    sam_account_name: str
    object_classes: frozenset[str] = frozenset()
    user_principal_name: str | None = None
    mail: str | None = None
    proxy_addresses: tuple[str, ...] = ()
    recipient_type_details: int | None = None
    user_account_control: int | None = None
    password_last_set: int | None = None
    note: str | None = None  # the `info` attribute, where Homebound leaves its mark

    @property
    def is_person(self) -> bool:
        """A user account, not a computer (computers are users too, in AD's schema)."""
        return "user" in self.object_classes and "computer" not in self.object_classes

    @property
    def has_onprem_mailbox(self) -> bool:
        return self.recipient_type_details in ONPREM_MAILBOX_TYPES

    @property
    def never_had_password(self) -> bool:
        """Created but never finished: no password was ever set (pwdLastSet 0)."""
        return not self.password_last_set

    def smtp_addresses(self) -> set[str]:
        """Every address this user answers to: UPN, mail and SMTP proxies, lower case."""
        found = {a.lower() for a in (self.user_principal_name, self.mail) if a}
        found.update(p.split(":", 1)[1].lower() for p in self.proxy_addresses
                     if p.lower().startswith("smtp:"))
        return found


@dataclass(frozen=True)
class NewUser:
    """The attributes of an account to create (plain values: the adapter escapes them)."""

    common_name: str
    sam_account_name: str
    user_principal_name: str
    display_name: str
    mail: str
    note: str
    given_name: str | None = None
    surname: str | None = None


class AccountNameTaken(Exception):
    """The sAMAccountName is used by another security principal in the domain."""


class CommonNameTaken(Exception):
    """An object with that CN already exists in the OU."""


class UserPrincipalNameTaken(Exception):
    """Another account holds the userPrincipalName (perhaps created a moment ago)."""


class Directory(Protocol):
    """The directory operations provisioning needs; each call is one round trip or a paged search."""

    def find_users(self, lookups: Sequence[Lookup]) -> list[DirectoryUser]:
        """Every object answering any of the lookups: one search for all of them."""
        ...

    def account_names_in_use(self, names: Collection[str]) -> set[str]:
        """Which of *names* are taken (lower case); one search."""
        ...

    def create_user(self, ou: str, user: NewUser) -> str:
        """Add a disabled account to *ou*; returns its DN. Raises the *Taken exceptions."""
        ...

    def read_user(self, distinguished_name: str) -> DirectoryUser:
        """Read one account by DN (a base search, not a directory-wide one)."""
        ...

    def set_password_and_enable(self, distinguished_name: str, password: str) -> None:
        """Set the password and enable the account, in one modify."""
        ...
