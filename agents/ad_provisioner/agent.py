"""The handler: `mailbox.discovered` in, an AD account found or made, `mailbox.provisioned` out.

Idempotent by looking before acting: every run starts with the look-up, so a
redelivered event finds the account an earlier run created (by its UPN) and
finishes it if that run stopped between creating it and setting its password.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

import structlog

from agents.ad_provisioner import matching, naming
from agents.ad_provisioner.batching import KeyedLock
from agents.ad_provisioner.ports import (
    AccountNameTaken,
    CommonNameTaken,
    Directory,
    DirectoryUser,
    Lookup,
    NewUser,
    UserPrincipalNameTaken,
)
from contracts.envelope import Event
from contracts.events import (
    AdAccount,
    CloudMailbox,
    MailboxDiscovered,
    MailboxProvisioned,
    MailboxProvisionedData,
    MailEnableMode,
)
from events.consumer import Context
from events.errors import PermanentError, TransientError

__all__ = ["AdProvisioner", "ProvisioningPolicy"]

log = structlog.get_logger(__name__)

NAMES_ASKED_WITH_LOOKUP = 5  # candidate sAMAccountNames checked by the batched look-up itself
NAMES_PER_EXTRA_SEARCH = 50
MAX_CREATE_ATTEMPTS = 50


@dataclass(frozen=True)
class ProvisioningPolicy:
    users_ou: str
    mail_enable_mode: MailEnableMode = MailEnableMode.MAIL_USER
    password_length: int = 24


class AdProvisioner:
    def __init__(
        self, directory: Directory, lookup: Callable[[Lookup], list[DirectoryUser]],
        policy: ProvisioningPolicy,
    ) -> None:
        self._directory = directory
        self._lookup = lookup  # batched in production: see batching.LookupBatcher
        self._policy = policy
        self._per_mailbox = KeyedLock()

    def on_mailbox_discovered(self, event: MailboxDiscovered, context: Context) -> list[Event]:
        mailbox = event.data
        with self._per_mailbox.hold(mailbox.exchange_guid):
            account = self.ensure_account(mailbox)
        log.info("ad.provisioned", dn=account.distinguished_name, created=account.created,
                 sam_account_name=account.sam_account_name)
        return [context.follow(MailboxProvisioned, MailboxProvisionedData(
            mailbox=mailbox, account=account, mail_enable_mode=self._policy.mail_enable_mode))]

    def ensure_account(self, mailbox: CloudMailbox) -> AdAccount:
        """The mailbox's account: the existing one, or a new one, enabled with a password."""
        base = naming.sam_account_name_base(mailbox.alias, mailbox.exchange_guid)
        first_names = tuple(islice(naming.sam_account_name_candidates(base), NAMES_ASKED_WITH_LOOKUP))
        found = self._lookup(Lookup(matching.mailbox_addresses(mailbox), first_names))
        user = matching.existing_account(found, mailbox)
        if user is None:
            return self._create(mailbox, self._free_account_names(base, matching.names_in_use(found)))
        ours = matching.created_for(user, mailbox)
        if ours and user.never_had_password:
            log.info("ad.finishing_half_made_account", dn=user.distinguished_name)
            self._enable(user, mailbox)
        return matching.account_of(user, created=ours)

    def _create(self, mailbox: CloudMailbox, account_names: Iterator[str]) -> AdAccount:
        cn_attempt, sam_account_name = 1, next(account_names)
        for _ in range(MAX_CREATE_ATTEMPTS):
            new_user = self._new_user(mailbox, cn_attempt, sam_account_name)
            try:
                dn = self._directory.create_user(self._policy.users_ou, new_user)
            except CommonNameTaken:
                cn_attempt += 1
                continue
            except AccountNameTaken:
                sam_account_name = next(account_names)
                continue
            except UserPrincipalNameTaken:
                raise TransientError(
                    f"an account with UPN {mailbox.user_principal_name} appeared while creating one; "
                    "the retry will match it") from None
            user = self._directory.read_user(dn)
            self._enable(user, mailbox)
            log.info("ad.account_created", dn=dn, sam_account_name=user.sam_account_name)
            return matching.account_of(user, created=True)
        raise PermanentError(
            f"no free name for {mailbox.primary_smtp_address} after {MAX_CREATE_ATTEMPTS} attempts",
            remediation="tidy up the users OU (many accounts with this display name?), then replay")

    def _new_user(self, mailbox: CloudMailbox, cn_attempt: int, sam_account_name: str) -> NewUser:
        given_name, surname = naming.person_name_parts(mailbox.display_name)
        return NewUser(
            common_name=naming.common_name(mailbox.display_name, mailbox.alias, cn_attempt),
            sam_account_name=sam_account_name, user_principal_name=mailbox.user_principal_name,
            display_name=mailbox.display_name, mail=mailbox.primary_smtp_address,
            note=matching.creation_note(mailbox), given_name=given_name, surname=surname,
        )

    def _free_account_names(self, base: str, taken: set[str]) -> Iterator[str]:
        """Candidate names not known to be taken: the look-up answered for the first few,
        one more search answers for each further chunk (rare: a very common alias)."""
        candidates = naming.sam_account_name_candidates(base)
        checked = list(islice(candidates, NAMES_ASKED_WITH_LOOKUP))
        yield from (name for name in checked if name.lower() not in taken)
        while chunk := list(islice(candidates, NAMES_PER_EXTRA_SEARCH)):
            in_use = self._directory.account_names_in_use(chunk)
            yield from (name for name in chunk if name.lower() not in in_use)
        raise PermanentError(f"every sAMAccountName derived from {base!r} is taken",
                             remediation="create the account by hand with a free name, then replay")

    def _enable(self, user: DirectoryUser, mailbox: CloudMailbox) -> None:
        avoid = naming.complexity_tokens(user.sam_account_name, mailbox.display_name, mailbox.alias)
        self._directory.set_password_and_enable(
            user.distinguished_name, naming.generate_password(self._policy.password_length, avoid=avoid))
