"""What the cutover needs from DNS, independent of the client library.

Records travel in presentation form (`0 mail.fabrikam.example.`,
`"v=spf1 -all"`), exactly as the server served them: an update then states
"these records, exactly as I read them" as its prerequisite, so a change
someone made in between makes the update fail instead of being overwritten.
Host names in the parsed views are lower-case without the final dot, as in
`contracts.events.DnsRecordSet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "DnsConflict",
    "DnsError",
    "DnsPort",
    "DnsRejected",
    "DnsUnavailable",
    "DomainChange",
    "DomainRecords",
    "Observed",
    "Rrset",
    "RrsetEdit",
    "autodiscover_name",
]


def autodiscover_name(domain: str) -> str:
    return f"autodiscover.{domain}"


@dataclass(frozen=True)
class Rrset:
    """One RRset as served; empty `records` means the name has none of that type."""

    ttl: int = 0
    records: tuple[str, ...] = ()  # presentation form, sorted
    texts: tuple[str, ...] = ()  # TXT only: each record's strings joined (RFC 7208 §3.3), same order


@dataclass(frozen=True)
class DomainRecords:
    """The records of one mail domain that the cutover touches."""

    domain: str
    mx: Rrset = Rrset()
    txt: Rrset = Rrset()
    autodiscover: Rrset = Rrset()  # the CNAME at autodiscover.<domain>

    @property
    def mx_hosts(self) -> list[tuple[int, str]]:
        hosts = []
        for record in self.mx.records:
            preference, _, host = record.partition(" ")
            hosts.append((int(preference), _host(host)))
        return sorted(hosts)

    @property
    def autodiscover_target(self) -> str | None:
        return _host(self.autodiscover.records[0]) if self.autodiscover.records else None


@dataclass(frozen=True)
class RrsetEdit:
    """Change one RRset, provided it still is exactly `expected`.

    `remove` lists records of `expected` to delete and `add` the records to
    add, both in presentation form; TXT edits swap only the SPF record and
    leave the name's other TXT records alone.
    """

    name: str
    rdtype: str  # "MX", "TXT" or "CNAME"
    expected: Rrset
    remove: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    ttl: int = 3600


@dataclass(frozen=True)
class DomainChange:
    """Everything for one domain, applied as one signed update: all of it or nothing."""

    domain: str
    edits: tuple[RrsetEdit, ...] = ()
    words: tuple[str, ...] = field(default=(), compare=False)  # the change in plain words

    @property
    def is_empty(self) -> bool:
        return not self.edits


@dataclass(frozen=True)
class Observed:
    """What one server or resolver answers for a domain's mail records."""

    where: str
    mx: frozenset[tuple[int, str]]
    mx_ttl: int | None
    autodiscover: str | None


class DnsError(Exception):
    """Base of what a DNS port raises; `reason` is safe to show (never the key's secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DnsUnavailable(DnsError):
    """No answer, a timeout or SERVFAIL: worth trying again later."""


class DnsRejected(DnsError):
    """The server refuses: not authoritative, key unknown or not allowed to update the zone."""


class DnsConflict(DnsError):
    """The records changed between reading and updating; nothing was written."""


class DnsPort(Protocol):
    def read(self, domain: str) -> DomainRecords:
        """The domain's MX, TXT and autodiscover CNAME, straight from the primary server."""
        ...

    def apply(self, change: DomainChange) -> None:
        """Apply every edit in one signed update, or raise (DnsConflict when a prerequisite fails)."""
        ...

    def observe(self, domain: str, resolver: str | None = None) -> Observed:
        """The MX and autodiscover as *resolver* (host or host:port; None: the primary) answers."""
        ...


def _host(text: str) -> str:
    return text.strip().rstrip(".").lower()
