"""The stand-in's view of Active Directory: the real Samba DC over verified LDAPS.

Exchange keeps recipients in AD, so the stand-in does too: what mail-enable
writes is what any LDAP client (and the product's AD agent) reads back.
Every filter value goes through ldap3's escaping (`escape_bytes` for GUIDs,
`escape_filter_chars` for strings); nothing from a request is ever placed
in a filter unescaped.

Connections are pooled (one per concurrent operation) and bound without
schema download, so binding costs a few milliseconds; values are read from
`raw_attributes` and decoded here, so results do not depend on ldap3's
schema-driven formatting.
"""

from __future__ import annotations

import queue
import ssl
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_bytes, escape_filter_chars
from ldap3.utils.dn import parse_dn

__all__ = [
    "TYPE_MAIL_USER",
    "TYPE_REMOTE_USER_MAILBOX",
    "TYPE_SHARED_MAILBOX",
    "TYPE_USER_MAILBOX",
    "AdUser",
    "Directory",
    "DirectorySession",
]

# msExchRecipientTypeDetails values (Exchange's RecipientTypeDetails flags)
TYPE_USER_MAILBOX = 1
TYPE_SHARED_MAILBOX = 4
TYPE_MAIL_USER = 128
TYPE_REMOTE_USER_MAILBOX = 2147483648

_ATTRIBUTES = [
    "objectGUID", "displayName", "mailNickname", "mail", "proxyAddresses", "targetAddress",
    "msExchMailboxGuid", "msExchRecipientTypeDetails", "legacyExchangeDN",
]
_USERS = "(objectCategory=person)(objectClass=user)"
_CHUNK = 200  # values per OR filter


@dataclass(frozen=True)
class AdUser:
    dn: str
    object_guid: uuid.UUID
    display_name: str | None
    alias: str | None  # mailNickname
    mail: str | None
    proxy_addresses: tuple[str, ...]
    target_address: str | None
    mailbox_guid: uuid.UUID | None  # msExchMailboxGuid, the ExchangeGuid
    type_details: int | None  # msExchRecipientTypeDetails
    legacy_exchange_dn: str | None

    @property
    def canonical_name(self) -> str:
        """The identity Exchange prints in messages, e.g. `lab.example/Migrated Users/Alice`."""
        parts = parse_dn(self.dn, escape=False)
        domain = ".".join(value for attr, value, _ in parts if attr.upper() == "DC")
        path = [_unescape(value) for attr, value, _ in reversed(parts) if attr.upper() != "DC"]
        return "/".join([domain.lower(), *path])


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def _text(raw: dict[str, list[bytes]], name: str) -> str | None:
    values = raw.get(name) or []
    return values[0].decode("utf-8") if values else None


def _user_from_entry(entry: dict[str, object]) -> AdUser:
    raw: dict[str, list[bytes]] = entry["raw_attributes"]  # type: ignore[assignment]
    guid_raw = raw.get("msExchMailboxGuid") or []
    type_raw = _text(raw, "msExchRecipientTypeDetails")
    return AdUser(
        dn=str(entry["dn"]),
        object_guid=uuid.UUID(bytes_le=raw["objectGUID"][0]),
        display_name=_text(raw, "displayName"),
        alias=_text(raw, "mailNickname"),
        mail=_text(raw, "mail"),
        proxy_addresses=tuple(v.decode("utf-8") for v in raw.get("proxyAddresses") or []),
        target_address=_text(raw, "targetAddress"),
        mailbox_guid=uuid.UUID(bytes_le=guid_raw[0]) if guid_raw and len(guid_raw[0]) == 16 else None,
        type_details=int(type_raw) if type_raw else None,
        legacy_exchange_dn=_text(raw, "legacyExchangeDN"),
    )


class DirectorySession:
    """Recipient reads and writes on one bound connection."""

    def __init__(self, connection: ldap3.Connection, base_dn: str) -> None:
        self._conn = connection
        self._base = base_dn

    def _search(self, ldap_filter: str) -> list[AdUser]:
        entries = self._conn.extend.standard.paged_search(
            self._base, ldap_filter, attributes=_ATTRIBUTES, paged_size=500, generator=False,
        )
        return [_user_from_entry(e) for e in entries if e.get("type") == "searchResEntry"]

    def by_guid(self, object_guid: uuid.UUID) -> AdUser | None:
        found = self._search(f"(&{_USERS}(objectGUID={escape_bytes(object_guid.bytes_le)}))")
        return found[0] if found else None

    def by_guids(self, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AdUser]:
        wanted = list(dict.fromkeys(guids))
        found: dict[uuid.UUID, AdUser] = {}
        for start in range(0, len(wanted), _CHUNK):
            terms = "".join(f"(objectGUID={escape_bytes(g.bytes_le)})" for g in wanted[start:start + _CHUNK])
            for user in self._search(f"(&{_USERS}(|{terms}))"):
                found[user.object_guid] = user
        return found

    def by_mailbox_guid(self, exchange_guid: uuid.UUID) -> list[AdUser]:
        return self._search(f"(&{_USERS}(msExchMailboxGuid={escape_bytes(exchange_guid.bytes_le)}))")

    def proxy_owners(self, proxies: Iterable[str], legacy_dns: Iterable[str] = ()) -> list[AdUser]:
        """Objects anywhere in the domain holding one of *proxies* (matching ignores case)."""
        terms = [f"(proxyAddresses={escape_filter_chars(p)})" for p in proxies]
        terms += [f"(legacyExchangeDN={escape_filter_chars(dn)})" for dn in legacy_dns]
        owners: dict[uuid.UUID, AdUser] = {}
        for start in range(0, len(terms), _CHUNK):
            # any object class: contacts and groups hold proxy addresses too
            for entry in self._conn.extend.standard.paged_search(
                self._base, f"(|{''.join(terms[start:start + _CHUNK])})", attributes=_ATTRIBUTES,
                paged_size=500, generator=False,
            ):
                if entry.get("type") == "searchResEntry" and entry["raw_attributes"].get("objectGUID"):
                    user = _user_from_entry(entry)
                    owners[user.object_guid] = user
        return list(owners.values())

    def replace(self, dn: str, values: dict[str, list[str | bytes | int]]) -> None:
        """Replace attributes; an empty list removes the attribute."""
        changes = {name: [(ldap3.MODIFY_REPLACE, list(vals))] for name, vals in values.items()}
        if changes:
            self._conn.modify(dn, changes)


class Directory:
    """A small pool of LDAPS connections to the lab's Samba DC."""

    def __init__(self, *, url: str, bind_user: str, password_file: Path, ca_file: Path,
                 base_dn: str) -> None:
        self._url = url
        self._bind_user = bind_user
        self._password_file = password_file
        self._ca_file = ca_file
        self.base_dn = base_dn
        self._idle: queue.LifoQueue[ldap3.Connection] = queue.LifoQueue()

    def _connect(self) -> ldap3.Connection:
        tls = ldap3.Tls(ca_certs_file=str(self._ca_file), validate=ssl.CERT_REQUIRED)
        server = ldap3.Server(self._url, tls=tls, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(
            server, user=self._bind_user, password=self._password_file.read_text().strip(),
            auto_bind=True, raise_exceptions=True, receive_timeout=30,
        )

    @contextmanager
    def session(self) -> Iterator[DirectorySession]:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = self._connect()
        try:
            yield DirectorySession(connection, self.base_dn)
        except LDAPException:
            connection.unbind()  # a failed connection is not reused
            raise
        except BaseException:
            self._idle.put(connection)
            raise
        else:
            self._idle.put(connection)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().unbind()
            except queue.Empty:
                return
            except LDAPException:
                continue
