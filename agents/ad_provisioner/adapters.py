"""The directory over LDAPS with ldap3: the only code in the agent that speaks LDAP.

Connections: one bound connection per worker thread (ldap3's Connection is
not thread-safe), opened on first use, reopened after a failure. Every value
that reaches a filter goes through `escape_filter_chars`, every CN through
`escape_rdn`; attributes are read from `raw_attributes`, so no schema has to
be downloaded and a directory without Exchange's schema extension still works.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import ldap3
import structlog
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from agents.ad_provisioner.ports import (
    AccountNameTaken,
    CommonNameTaken,
    DirectoryUser,
    Lookup,
    NewUser,
    UserPrincipalNameTaken,
)
from events.errors import PermanentError, TransientError

__all__ = ["DirectoryCounters", "LdapDirectory", "LdapSettings"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

USER_OBJECT_CLASSES = ["top", "person", "organizationalPerson", "user"]
ENABLED_USER = 512  # NORMAL_ACCOUNT, not disabled, password required
PAGED_RESULTS = "1.2.840.113556.1.4.319"
USER_ATTRIBUTES = [
    "objectGUID", "sAMAccountName", "objectClass", "userPrincipalName", "mail", "proxyAddresses",
    "msExchRecipientTypeDetails", "userAccountControl", "pwdLastSet", "info",
]

# The server is down, unreachable, or dropped us: worth another try later.
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ldap_errors.LDAPCommunicationError,
    ldap_errors.LDAPResponseTimeoutError,
    ldap_errors.LDAPMaximumRetriesError,
    OSError,
)
# The server answered but is busy or limiting us: also worth another try.
_TRANSIENT_RESULTS: tuple[type[Exception], ...] = (
    ldap_errors.LDAPBusyResult,
    ldap_errors.LDAPUnavailableResult,
    ldap_errors.LDAPTimeLimitExceededResult,
    ldap_errors.LDAPAdminLimitExceededResult,
    ldap_errors.LDAPOperationsErrorResult,
    ldap_errors.LDAPOtherResult,
)


@dataclass(frozen=True)
class LdapSettings:
    url: str
    bind_user: str
    password: str = field(repr=False)
    base_dn: str
    ca_file: Path | None = None
    verify_tls: bool = True
    page_size: int = 500
    connect_timeout: float = 5.0
    receive_timeout: float = 30.0
    # AD drops connections idle for MaxConnIdleTime (900 s by default); reopening ours
    # well before that keeps a write from meeting a dead socket it cannot safely retry
    max_idle_seconds: float = 240.0

    @property
    def host_and_port(self) -> tuple[str, int]:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "ldaps" or not parts.hostname:
            raise ValueError("the directory URL must be ldaps://host[:port]")
        return parts.hostname, parts.port or 636


@dataclass
class DirectoryCounters:
    """What the adapter asked of the directory: for the report, the tests and capacity planning."""

    directory_searches: int = 0  # subtree searches of base_dn (each may have several pages)
    search_pages: int = 0
    base_reads: int = 0  # reads of one known DN
    adds: int = 0
    modifies: int = 0
    connections_opened: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class LdapDirectory:
    """`ports.Directory` over LDAPS."""

    def __init__(self, settings: LdapSettings) -> None:
        self._settings = settings
        self._host, self._port = settings.host_and_port
        self._local = threading.local()
        self._open: set[ldap3.Connection] = set()
        self._open_lock = threading.Lock()
        self.counters = DirectoryCounters()
        if not settings.verify_tls:
            log.warning("ad.tls_verification_disabled", url=settings.url,
                        hint="active_directory.verify_tls = false: the DC's certificate is not checked")

    # ------------------------------------------------------------------ the port

    def find_users(self, lookups: Sequence[Lookup]) -> list[DirectoryUser]:
        search_filter = lookup_filter(lookups)
        if search_filter is None:
            return []
        entries = self._call("searching the directory", lambda c: self._paged_search(c, search_filter))
        return [user_from_entry(entry) for entry in entries]

    def account_names_in_use(self, names: Collection[str]) -> set[str]:
        if not names:
            return set()
        clauses = "".join(f"(sAMAccountName={escape_filter_chars(name)})" for name in names)
        entries = self._call("searching for account names",
                             lambda c: self._paged_search(c, f"(|{clauses})", ["sAMAccountName"]))
        return {_text(entry, "sAMAccountName").lower() for entry in entries}

    def create_user(self, ou: str, user: NewUser) -> str:
        dn = f"CN={escape_rdn(user.common_name)},{ou}"
        attributes: dict[str, Any] = {
            "sAMAccountName": user.sam_account_name,
            "userPrincipalName": user.user_principal_name,
            "displayName": user.display_name,
            "mail": user.mail,
            "info": user.note,
        }
        attributes |= {k: v for k, v in (("givenName", user.given_name), ("sn", user.surname)) if v}
        expected = (ldap_errors.LDAPEntryAlreadyExistsResult, ldap_errors.LDAPConstraintViolationResult)
        try:
            # Not retried on a lost connection: the add may have happened; the
            # redelivered event finds the account by its UPN instead.
            self._call("creating an account", lambda c: c.add(dn, USER_OBJECT_CLASSES, attributes),
                       retry=False, expected=expected)
        except ldap_errors.LDAPEntryAlreadyExistsResult:
            # AD answers "already exists" both for a CN used in the OU and for a
            # sAMAccountName used anywhere in the domain: look which one it was.
            if self._exists(dn):
                raise CommonNameTaken(dn) from None
            raise AccountNameTaken(user.sam_account_name) from None
        except ldap_errors.LDAPConstraintViolationResult as exc:
            if "userprincipalname" in _server_message(exc).lower():
                raise UserPrincipalNameTaken(user.user_principal_name) from None
            raise _permanent("creating an account", exc) from None
        finally:
            self.counters.count("adds")
        return dn

    def read_user(self, distinguished_name: str) -> DirectoryUser:
        entry = self._call("reading an account", lambda c: self._read(c, distinguished_name))
        if entry is None:
            raise TransientError(f"the account {distinguished_name} was not found right after its creation")
        return user_from_entry(entry)

    def set_password_and_enable(self, distinguished_name: str, password: str) -> None:
        changes = {
            "unicodePwd": [(ldap3.MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])],
            "userAccountControl": [(ldap3.MODIFY_REPLACE, [ENABLED_USER])],
        }
        try:
            self._call("setting the password", lambda c: c.modify(distinguished_name, changes),
                       expected=(ldap_errors.LDAPConstraintViolationResult,
                                 ldap_errors.LDAPUnwillingToPerformResult))
        except (ldap_errors.LDAPConstraintViolationResult, ldap_errors.LDAPUnwillingToPerformResult) as exc:
            # `from None`: nothing about the password travels further than this line
            raise PermanentError(
                f"the directory refused the generated password for {distinguished_name}: "
                f"{_server_message(exc)[:300]}",
                remediation="check the domain's password policy (length, history, fine-grained policies) "
                            "and raise active_directory.password_length; then replay the mailbox",
            ) from None
        finally:
            self.counters.count("modifies")

    # ------------------------------------------------------------------ for `config check --connect`

    def describe(self, users_ou: str) -> str:
        """Bind, read the base DN and the users OU; a one-line summary (raises when unusable)."""
        base = self._call("reading the base DN",
                          lambda c: self._read(c, self._settings.base_dn, ["objectClass"]))
        ou = self._call("reading the users OU", lambda c: self._read(c, users_ou, ["objectClass"]))
        if base is None or ou is None:
            missing = self._settings.base_dn if base is None else users_ou
            raise PermanentError(f"{missing} does not exist in the directory")
        verified = "certificate verified" if self._settings.verify_tls else "certificate NOT verified"
        return f"{self._host}:{self._port}, {verified}, bound as {self._settings.bind_user}, users OU found"

    def close(self) -> None:
        with self._open_lock:
            connections, self._open = self._open, set()
        for connection in connections:
            _unbind_quietly(connection)

    # ------------------------------------------------------------------ LDAP plumbing

    def _paged_search(
        self, connection: ldap3.Connection, search_filter: str, attributes: list[str] | None = None
    ) -> list[dict[str, Any]]:
        self.counters.count("directory_searches")
        entries: list[dict[str, Any]] = []
        cookie: Any = None
        while True:
            self.counters.count("search_pages")
            connection.search(self._settings.base_dn, search_filter, ldap3.SUBTREE,
                              attributes=attributes or USER_ATTRIBUTES,
                              paged_size=self._settings.page_size, paged_cookie=cookie)
            entries += _real_entries(connection.response)
            cookie = (connection.result.get("controls") or {}).get(PAGED_RESULTS, {}) \
                .get("value", {}).get("cookie")
            if not cookie:
                return entries

    def _read(
        self, connection: ldap3.Connection, dn: str, attributes: list[str] | None = None
    ) -> dict[str, Any] | None:
        self.counters.count("base_reads")
        try:
            connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes or USER_ATTRIBUTES)
        except ldap_errors.LDAPNoSuchObjectResult:
            return None
        found = _real_entries(connection.response)
        return found[0] if found else None

    def _exists(self, dn: str) -> bool:
        return self._call("reading an account", lambda c: self._read(c, dn, ["objectClass"])) is not None

    def _call(
        self, what: str, operation: Callable[[ldap3.Connection], T], *, retry: bool = True,
        expected: tuple[type[Exception], ...] = (),
    ) -> T:
        """Run *operation* on this thread's connection, classifying every failure.

        A dropped connection is reopened once for reads and idempotent writes;
        *expected* LDAP results are re-raised for the caller to interpret.
        """
        attempts = 2 if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return operation(self._connection())
            except expected:
                raise
            except (ldap_errors.LDAPBindError, ldap_errors.LDAPInvalidCredentialsResult) as exc:
                self._discard()
                raise _bind_failure(exc, self._settings) from None
            except ldap_errors.LDAPCertificateError as exc:
                self._discard()
                raise _certificate_failure(exc, self._settings) from None
            except _CONNECTION_ERRORS as exc:
                self._discard()
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise _certificate_failure(exc, self._settings) from None
                if attempt == attempts:
                    detail = _scrub(str(exc), self._settings)[:300]
                    raise TransientError(
                        f"{what}: the directory server {self._host}:{self._port} is unreachable "
                        f"or dropped the connection ({type(exc).__name__}: {detail})"
                    ) from None
            except _TRANSIENT_RESULTS as exc:
                self._discard()
                raise TransientError(f"{what}: the directory is busy or unavailable: "
                                     f"{_server_message(exc)[:300]}") from None
            except ldap_errors.LDAPOperationResult as exc:
                raise _permanent(what, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> ldap3.Connection:
        connection: ldap3.Connection | None = getattr(self._local, "connection", None)
        now = time.monotonic()
        if connection is not None and now - self._local.last_used > self._settings.max_idle_seconds:
            self._discard()
            connection = None
        if connection is None or connection.closed:
            connection = self._connect()
            self._local.connection = connection
            with self._open_lock:
                self._open.add(connection)
        self._local.last_used = now
        return connection

    def _connect(self) -> ldap3.Connection:
        settings = self._settings
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED if settings.verify_tls else ssl.CERT_NONE,
            ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
        )
        # A new Server each time: ldap3 remembers a refused address for a while.
        server = ldap3.Server(self._host, port=self._port, use_ssl=True, tls=tls,
                              get_info=ldap3.NONE, connect_timeout=settings.connect_timeout)
        connection = ldap3.Connection(
            server, user=settings.bind_user, password=settings.password,
            auto_bind=ldap3.AUTO_BIND_NO_TLS, raise_exceptions=True, auto_referrals=False,
            receive_timeout=int(settings.receive_timeout), read_only=False,
        )
        self.counters.count("connections_opened")
        log.debug("ad.connected", host=self._host, port=self._port)
        return connection

    def _discard(self) -> None:
        connection: ldap3.Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._open_lock:
                self._open.discard(connection)
            _unbind_quietly(connection)


# ---------------------------------------------------------------------- filters and entries


def lookup_filter(lookups: Iterable[Lookup]) -> str | None:
    """One filter answering every lookup: the people holding any address, and any
    object holding any candidate account name. None when there is nothing to ask."""
    addresses: set[str] = set()
    names: dict[str, str] = {}
    for lookup in lookups:
        addresses |= lookup.addresses
        names |= {name.lower(): name for name in lookup.account_names}
    clauses: list[str] = []
    if addresses:
        holders = "".join(
            f"(userPrincipalName={v})(mail={v})(proxyAddresses=smtp:{v})"
            for v in (escape_filter_chars(a) for a in sorted(addresses))
        )
        clauses.append(f"(&(objectCategory=person)(objectClass=user)(|{holders}))")
    clauses += [f"(sAMAccountName={escape_filter_chars(n)})" for n in sorted(names.values())]
    return f"(|{''.join(clauses)})" if clauses else None


def _real_entries(response: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Search entries without the referrals AD and Samba add for other partitions."""
    return [entry for entry in response or [] if entry.get("type") == "searchResEntry"]


def _values(entry: dict[str, Any], name: str) -> list[bytes]:
    raw = entry.get("raw_attributes") or {}
    for key, values in raw.items():
        if key.lower() == name.lower():
            return list(values)
    return []


def _text(entry: dict[str, Any], name: str) -> str:
    values = _values(entry, name)
    return values[0].decode("utf-8") if values else ""


def _number(entry: dict[str, Any], name: str) -> int | None:
    text = _text(entry, name)
    return int(text) if text.lstrip("-").isdigit() else None


def user_from_entry(entry: dict[str, Any]) -> DirectoryUser:
    """A DirectoryUser from a search entry's raw attributes."""
    guid = _values(entry, "objectGUID")
    return DirectoryUser(
        distinguished_name=str(entry["dn"]),
        object_guid=uuid.UUID(bytes_le=bytes(guid[0])) if guid else uuid.UUID(int=0),
        sam_account_name=_text(entry, "sAMAccountName"),
        object_classes=frozenset(v.decode("utf-8").lower() for v in _values(entry, "objectClass")),
        user_principal_name=_text(entry, "userPrincipalName") or None,
        mail=_text(entry, "mail") or None,
        proxy_addresses=tuple(v.decode("utf-8") for v in _values(entry, "proxyAddresses")),
        recipient_type_details=_number(entry, "msExchRecipientTypeDetails"),
        user_account_control=_number(entry, "userAccountControl"),
        password_last_set=_number(entry, "pwdLastSet"),
        note=_text(entry, "info") or None,
    )


# ---------------------------------------------------------------------- errors


def _server_message(exc: Exception) -> str:
    description = getattr(exc, "description", None) or type(exc).__name__
    message = getattr(exc, "message", None) or ""
    return f"{description}: {message}".strip(": ")


def _scrub(text: str, settings: LdapSettings) -> str:
    return text.replace(settings.password, "***") if settings.password else text


def _permanent(what: str, exc: Exception) -> PermanentError:
    message = _server_message(exc)
    remediation = "see the directory's message; fix the cause, then replay the mailbox"
    if isinstance(exc, ldap_errors.LDAPInsufficientAccessRightsResult):
        remediation = ("grant the bind account the rights to create users in users_ou, "
                       "reset their passwords and write userAccountControl")
    elif isinstance(exc, ldap_errors.LDAPNoSuchObjectResult):
        remediation = "check active_directory.users_ou and base_dn: the container does not exist"
    return PermanentError(f"{what}: {message[:500]}", remediation=remediation)


def _bind_failure(exc: Exception, settings: LdapSettings) -> Exception:
    text = _scrub(str(exc), settings)
    if isinstance(exc, ldap_errors.LDAPInvalidCredentialsResult) or "invalidCredentials" in text:
        return PermanentError(
            f"the directory refused the bind as {settings.bind_user}: invalid credentials",
            remediation="check active_directory.bind_user and the password file, then replay",
        )
    return TransientError(f"binding to the directory as {settings.bind_user} failed: {text[:300]}")


def _certificate_failure(exc: Exception, settings: LdapSettings) -> PermanentError:
    return PermanentError(
        f"the directory server's TLS certificate was not accepted: {_scrub(str(exc), settings)[:300]}",
        remediation="set active_directory.ca_file to the CA that issued the DC's LDAPS certificate "
                    "(and make sure the certificate names the host in active_directory.url)",
    )


def _unbind_quietly(connection: ldap3.Connection) -> None:
    with contextlib.suppress(Exception):  # it is being thrown away; nothing to save
        connection.unbind()
