"""mail-enable/1 and recipient-read/1 against the real directory.

mail-enable follows its template step by step, so partial outcomes match
what Exchange leaves behind:

1. Get-User: the object must exist (ManagementObjectNotFoundException) and
   be a plain user or already the wanted kind of mail user; a mailbox, or
   the other kind of mail user, is refused (InvalidOperationException
   "The user '…' is a UserMailbox, not a MailUser.").
2. Enable-MailUser / Enable-RemoteMailbox, only for a plain user: writes
   mailNickname, mail, targetAddress `SMTP:<external>`, the primary
   `SMTP:` proxy, msExchRecipientTypeDetails (128 or 2147483648) and a
   legacyExchangeDN when there is none. displayName is left alone.
3. Set-MailUser / Set-RemoteMailbox -ExchangeGuid -ArchiveGuid
   -EmailAddresses @{Add=…}: adds the missing proxies (an added `SMTP:`
   demotes the old primary), writes msExchMailboxGuid (bytes_le) and the
   routing address, records the ArchiveGuid in the organisation model (the
   lab schema has no msExchArchiveGUID).

Every proxy is checked for uniqueness across the domain before it is
written (ProxyAddressExistsException, Exchange's wording). When both steps
succeed their changes go out as one LDAP modify; when the primary address
is free but another proxy is taken, step 2 is not written, as after an
Enable-MailUser that worked and a Set-MailUser that failed. An unchanged
recipient reports changed=false and nothing is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.events import MailEnableMode
from contracts.fields import Alias, DisplayName, EmailAddress, ProxyAddress
from contracts.onprem import (
    MailEnableItem,
    MailEnableRequest,
    MailEnableResponse,
    MailEnableResult,
    OnpremRecipient,
    RecipientReadRequest,
    RecipientReadResponse,
    RecipientReadResult,
    RecipientType,
)
from lab.onprem.ad import (
    TYPE_MAIL_USER,
    TYPE_REMOTE_USER_MAILBOX,
    TYPE_SHARED_MAILBOX,
    TYPE_USER_MAILBOX,
    AdUser,
    DirectorySession,
)
from lab.onprem.backend import Backend, ExchangeError

__all__ = ["mail_enable", "recipient_read", "to_recipient"]

_TYPE_NAMES = {
    None: RecipientType.USER,
    TYPE_MAIL_USER: RecipientType.MAIL_USER,
    TYPE_REMOTE_USER_MAILBOX: RecipientType.REMOTE_USER_MAILBOX,
    TYPE_USER_MAILBOX: RecipientType.USER_MAILBOX,
    TYPE_SHARED_MAILBOX: RecipientType.SHARED_MAILBOX,
}
_ADMIN_GROUP = "ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"

_alias = TypeAdapter(Alias)
_display = TypeAdapter(DisplayName)
_email = TypeAdapter(EmailAddress)
_proxy = TypeAdapter(ProxyAddress)


def _valid(adapter: TypeAdapter[Any], value: str | None) -> Any:
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None  # AD may hold what the contract refuses; report it as absent


def to_recipient(user: AdUser, archive_guid: uuid.UUID | None) -> OnpremRecipient:
    """The recipient as Get-User / Get-MailUser / Get-RemoteMailbox would show it."""
    primary = next((p[5:] for p in user.proxy_addresses if p.startswith("SMTP:")), user.mail)
    return OnpremRecipient(
        identity=user.object_guid,
        distinguished_name=user.dn,
        recipient_type_details=_TYPE_NAMES.get(user.type_details, RecipientType.USER_MAILBOX),
        alias=_valid(_alias, user.alias),
        display_name=_valid(_display, user.display_name),
        primary_smtp_address=_valid(_email, primary),
        external_email_address=user.target_address,
        exchange_guid=user.mailbox_guid,
        archive_guid=archive_guid,
        email_addresses=[p for p in user.proxy_addresses if _valid(_proxy, p) is not None],
        legacy_exchange_dn=user.legacy_exchange_dn,
    )


def _first_conflict(session: DirectorySession, user: AdUser,
                    proxies: list[str]) -> tuple[str, ExchangeError] | None:
    """The first of *proxies* another object already holds, with Exchange's error for it."""
    if not proxies:
        return None
    x500 = [p.split(":", 1)[1] for p in proxies if p.upper().startswith("X500:")]
    owners = [o for o in session.proxy_owners(proxies, x500) if o.object_guid != user.object_guid]
    for proxy in proxies:
        kind, address = (part.lower() for part in proxy.split(":", 1))
        for owner in owners:
            held = {p.split(":", 1)[1].lower() for p in owner.proxy_addresses
                    if p.split(":", 1)[0].lower() == kind}
            if kind == "x500" and owner.legacy_exchange_dn:
                held.add(owner.legacy_exchange_dn.lower())
            if address in held:
                return proxy, ExchangeError(
                    "ProxyAddressExistsException",
                    f'The proxy address "{proxy}" is already being used by the proxy addresses or '
                    f'LegacyExchangeDN of "{owner.canonical_name}". Please choose another proxy address.',
                )
    return None


def _add_proxies(current: tuple[str, ...], added: list[str]) -> tuple[str, ...]:
    """EmailAddresses @{Add=…}: a new `SMTP:` entry makes the old primary a secondary."""
    result = list(current)
    if any(p.startswith("SMTP:") for p in added):
        result = ["smtp:" + p[5:] if p.startswith("SMTP:") else p for p in result]
    for proxy in added:
        # an address already present under another prefix case is replaced, not duplicated
        result = [p for p in result if p.lower() != proxy.lower()]
        result.append(proxy)
    return tuple(result)


_Values = dict[str, list[str | bytes | int]]


class _MailEnabler:
    def __init__(self, backend: Backend, session: DirectorySession, mode: MailEnableMode) -> None:
        self.backend = backend
        self.session = session
        self.remote = mode == MailEnableMode.REMOTE_MAILBOX
        self.wanted_type = TYPE_REMOTE_USER_MAILBOX if self.remote else TYPE_MAIL_USER

    def run(self, item: MailEnableItem) -> MailEnableResult:
        fault = self.backend.control.take_fault("mail-enable", item.alias)
        if fault is not None:
            return MailEnableResult(identity=item.identity, ok=False, error=fault)
        try:
            with self.backend.recipient_lock:
                changed, user = self._apply(item)
            if changed:  # read back what was written, as the template does with Get-MailUser
                user = self.session.by_guid(item.identity) or user
        except ExchangeError as error:
            return MailEnableResult(identity=item.identity, ok=False, error=error.as_shell_error())
        archive = self.backend.org.archive_guid(user.object_guid)
        return MailEnableResult(identity=item.identity, ok=True, changed=changed,
                                recipient=to_recipient(user, archive))

    def _apply(self, item: MailEnableItem) -> tuple[bool, AdUser]:
        user = self.session.by_guid(item.identity)
        if user is None:
            raise self.backend.not_found(item.identity)
        kind = user.type_details
        if kind is not None and kind != self.wanted_type:  # a mailbox, or the other kind of mail user
            actual = _TYPE_NAMES.get(kind, RecipientType.USER_MAILBOX)
            raise ExchangeError(
                "InvalidOperationException",
                f"The user '{user.canonical_name}' is a {actual}, not a {_TYPE_NAMES[self.wanted_type]}.",
            )
        enable = self._enable_values(user, item) if kind is None else {}
        # the proxies once Enable-MailUser has stamped the primary address
        proxies = (_add_proxies(user.proxy_addresses, [f"SMTP:{item.primary_smtp_address}"])
                   if enable else user.proxy_addresses)
        have = {p.lower() for p in proxies}
        # present in any prefix case counts as present, except an `SMTP:` that promotes a secondary
        added = [p for p in item.email_addresses
                 if p.lower() not in have or (p.startswith("SMTP:") and p not in proxies)]
        primary = [f"SMTP:{item.primary_smtp_address}"] if enable else []
        conflict = _first_conflict(self.session, user, primary + added)
        if conflict is not None:
            proxy, error = conflict
            if enable and proxy not in primary:
                self.session.replace(user.dn, enable)  # Enable-MailUser succeeded, Set-MailUser failed
            raise error
        values = {**enable, **self._set_values(user, item, proxies, added)}
        self.session.replace(user.dn, values)
        return bool(values) | self._set_archive(user, item), user

    def _enable_values(self, user: AdUser, item: MailEnableItem) -> _Values:
        """What Enable-MailUser / Enable-RemoteMailbox writes on a plain user."""
        values: _Values = {
            "mailNickname": [item.alias],
            "mail": [item.primary_smtp_address],
            "targetAddress": [f"SMTP:{item.external_email_address}"],
            "proxyAddresses": list(_add_proxies(user.proxy_addresses, [f"SMTP:{item.primary_smtp_address}"])),
            "msExchRecipientTypeDetails": [self.wanted_type],
        }
        if not user.legacy_exchange_dn:
            values["legacyExchangeDN"] = [
                f"/o={self.backend.org.organization}/{_ADMIN_GROUP}/cn=Recipients/cn={uuid.uuid4().hex}-{item.alias}"
            ]
        return values

    def _set_values(self, user: AdUser, item: MailEnableItem, proxies: tuple[str, ...],
                    added: list[str]) -> _Values:
        """What Set-MailUser / Set-RemoteMailbox changes: only what differs."""
        values: _Values = {}
        if added:
            updated = _add_proxies(proxies, added)
            values["proxyAddresses"] = list(updated)
            primary = next((p[5:] for p in updated if p.startswith("SMTP:")), None)
            if primary and primary != user.mail:
                values["mail"] = [primary]
        if user.mailbox_guid != item.exchange_guid:
            values["msExchMailboxGuid"] = [item.exchange_guid.bytes_le]
        routing = f"SMTP:{item.external_email_address}"
        if (user.target_address or "").lower() != routing.lower():
            values["targetAddress"] = [routing]
        return values

    def _set_archive(self, user: AdUser, item: MailEnableItem) -> bool:
        if item.archive_guid is None:
            return False
        if self.backend.org.archive_guid(user.object_guid) == item.archive_guid:
            return False
        with self.backend.org.change() as state:
            state.archive_guids[str(user.object_guid)] = item.archive_guid
        return True


def mail_enable(backend: Backend, request: MailEnableRequest) -> MailEnableResponse:
    with backend.directory.session() as session:
        enabler = _MailEnabler(backend, session, request.mode)
        return MailEnableResponse(results=[enabler.run(item) for item in request.recipients])


def recipient_read(backend: Backend, request: RecipientReadRequest) -> RecipientReadResponse:
    with backend.directory.session() as session:
        found = session.by_guids(request.identities)
    archives = backend.org.snapshot().archive_guids
    return RecipientReadResponse(results=[
        RecipientReadResult(identity=identity, found=True,
                            recipient=to_recipient(found[identity], archives.get(str(identity))))
        if identity in found else RecipientReadResult(identity=identity, found=False)
        for identity in request.identities
    ])
