"""Constrained field types shared by every event.

Each type rejects, at the edge, the values that would otherwise surprise a
later step: an address without a domain, a GUID that is not one, a display
name longer than Active Directory accepts. Validation is strict on purpose:
an event that does not fit is dead-lettered with the reason instead of
reaching Active Directory or Exchange.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

__all__ = [
    "NIL_GUID",
    "Alias",
    "DisplayName",
    "DomainName",
    "EmailAddress",
    "ErrorText",
    "ExchangeGuid",
    "LegacyExchangeDN",
    "ProxyAddress",
    "ShortText",
    "WaveId",
    "is_email_address",
    "normalise_guid",
]

NIL_GUID = uuid.UUID(int=0)

# RFC 5321 limits: 64 octets local part, 255 domain, 254 path in total. Exchange
# accepts the RFC 5322 "atext" characters in the local part (o'brien, a+b, ...)
# and dots between atoms; anything else (spaces, quotes, control characters) we
# refuse rather than quote.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
_EMAIL_RE = re.compile(rf"^(?P<local>{_LOCAL})@(?P<domain>{_DOMAIN})$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")


def is_email_address(value: str) -> bool:
    """True when *value* is an SMTP address Exchange would accept as a proxy."""
    match = _EMAIL_RE.match(value)
    return bool(match) and len(value) <= 254 and len(match.group("local")) <= 64  # type: ignore[union-attr]


def _check_email(value: str) -> str:
    if not is_email_address(value):
        raise ValueError(f"not an SMTP address: {value[:80]!r}")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def _check_domain(value: str) -> str:
    value = value.rstrip(".").lower()
    if len(value) > 253 or not _DOMAIN_RE.match(value):
        raise ValueError(f"not a DNS domain name: {value[:80]!r}")
    return value


def normalise_guid(value: object) -> uuid.UUID:
    """Accept a UUID, its string form (with or without braces) or 16 raw bytes_le."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes_le=value)
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip().strip("{}"))
        except ValueError:
            pass
    raise ValueError(f"not a GUID: {str(value)[:60]!r}")


_PROXY_RE = re.compile(r"^(?P<prefix>[A-Za-z0-9]{1,9}):(?P<address>.+)$", re.DOTALL)


def _check_proxy(value: str) -> str:
    """Proxy addresses are `TYPE:address`; SMTP ones must hold a valid address."""
    match = _PROXY_RE.match(value)
    if not match:
        raise ValueError(f"not a proxy address (TYPE:address): {value[:80]!r}")
    prefix, address = match.group("prefix"), match.group("address")
    if prefix.upper() == "SMTP":
        _check_email(address)
    elif prefix.upper() == "X500" and not address.startswith("/"):
        raise ValueError(f"an X500 proxy must hold a distinguished name: {value[:80]!r}")
    if any(ord(c) < 0x20 for c in value):
        raise ValueError("proxy address contains control characters")
    return value


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 0x20 and c not in "\t" for c in value):
        raise ValueError("contains control characters")
    return value


EmailAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_check_email)
]
DomainName = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_domain)]
ExchangeGuid = Annotated[uuid.UUID, BeforeValidator(normalise_guid)]
ProxyAddress = Annotated[
    str, StringConstraints(min_length=3, max_length=1123), AfterValidator(_check_proxy)
]
# Exchange allows 64 characters in an alias; AD's displayName allows 256.
Alias = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=rf"^{_LOCAL}$"),
]
DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_control_characters)
]
LegacyExchangeDN = Annotated[
    str, StringConstraints(min_length=2, max_length=1024, pattern=r"^/"),
    AfterValidator(_no_control_characters),
]
ShortText = Annotated[str, StringConstraints(max_length=256)]
ErrorText = Annotated[str, StringConstraints(max_length=4000)]
WaveId = Annotated[
    str, StringConstraints(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$"),
    Field(description="Operator-visible wave name, e.g. w-20261204-1a2b"),
]
