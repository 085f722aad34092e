"""What an Exchange error means for the migration, from the text Exchange gives.

The table seeds from EXCHANGE.md ("Failure classification") and
microsoft/CSS-Exchange's migration report; rules are checked in order and the
first whose text appears in the error wins. Each gives the error class the
runtime acts on (retry, or dead-letter for a fix or a decision) and the
remediation an operator reads in `homebound dlq list`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from contracts.events import ErrorClass

__all__ = ["Classification", "classify", "is_stall"]


@dataclass(frozen=True)
class Classification:
    error_class: ErrorClass
    remediation: str
    rule: str  # the text that matched, for the record


T, P, H = ErrorClass.TRANSIENT, ErrorClass.PERMANENT, ErrorClass.NEEDS_HUMAN

_RULES: Final[tuple[tuple[str, ErrorClass, str], ...]] = (
    (
        "MRSProxyConnectionLimitReachedTransientException",
        T,
        "MRSProxy is at MaxMRSConnections; Homebound backs off and lowers concurrency",
    ),
    ("CommunicationErrorTransientException", T, "a network error between the clouds; retried with backoff"),
    ("TransientException", T, "Exchange reported a transient condition; retried with backoff"),
    (
        "Cannot find a recipient that has mailbox GUID",
        P,
        "copy the cloud ExchangeGuid to the on-prem mail user (Set-MailUser -ExchangeGuid), then replay",
    ),
    (
        "doesn't have an SMTP proxy matching",
        P,
        "add an SMTP proxy address in the target delivery domain to the on-prem object, then replay",
    ),
    (
        "doesn't have an X500 proxy matching",
        P,
        "add X500:<cloud LegacyExchangeDN> to the on-prem object's proxy addresses, then replay",
    ),
    (
        "must specify the ArchiveDomain",
        P,
        "the mailbox has an archive: set ArchiveGuid on-prem, or move with PrimaryOnly and ArchiveDomain",
    ),
    ("PrimaryOnly", P, "resubmit with PrimaryOnly and ArchiveDomain, or set ArchiveGuid on-prem"),
    (
        "not an accepted domain",
        P,
        "add the domain as an accepted domain (organisation preparation), replay the wave",
    ),
    (
        "is already being moved",
        P,
        "a move request or migration user already exists for this mailbox: remove the stale one, then replay",
    ),
    (
        "already included in migration batch",
        P,
        "the user is in another migration batch: remove it from that batch, then replay",
    ),
    (
        "already has a primary mailbox",
        H,
        "the on-prem object is a mailbox: it must be a mail user for the move; decide which object is kept",
    ),
    (
        "is already being used by the proxy addresses",
        P,
        "another directory object holds this proxy address: remove it there, then replay",
    ),
    (
        "ProxyAddressExistsException",
        P,
        "another directory object holds this proxy address: remove it there, then replay",
    ),
    (
        "Couldn't find database",
        P,
        "mount the target database or choose another (--target-database), then replay",
    ),
    ("isn't mounted", P, "mount the target database, then replay"),
    (
        "(404) Not Found",
        P,
        "enable MRSProxy on every EWS virtual directory, re-test the endpoint, then replay",
    ),
    ("MRSProxy isn't enabled", P, "enable MRSProxy on every EWS virtual directory, then replay"),
    (
        "(403) Forbidden",
        P,
        "check the migration endpoint's credentials and MRSProxy permissions, then replay",
    ),
    ("Access is denied", P, "fix the migration endpoint's credentials, re-test it, then replay"),
    (
        "The remote server returned an error: (401)",
        P,
        "fix the migration endpoint's credentials, then replay",
    ),
    ("TooManyBadItems", H, "review the skipped items; approve with Set-MigrationBatch -ApproveSkippedItems"),
    (
        "Data Consistency Score Investigate",
        H,
        "review the skipped items; approve with Set-MigrationBatch -ApproveSkippedItems",
    ),
    ("Data Consistency Score Poor", H, "stop and escalate: too much data would be lost"),
    ("timed out", T, "a timeout; retried with backoff"),
    ("timeout", T, "a timeout; retried with backoff"),
    ("ServerBusy", T, "the server is busy; retried with backoff"),
    ("maximum number of concurrent requests", T, "Exchange Online throttling; retried after a pause"),
)

_STALLS: Final = ("StalledDueToSource_", "StalledDueToTarget_", "StalledDueTo")


def classify(text: str, exception_type: str = "") -> Classification:
    """The class and remediation for an Exchange error; unknown errors need a human."""
    haystack = f"{exception_type} {text}"
    for needle, error_class, remediation in _RULES:
        if needle.lower() in haystack.lower():
            return Classification(error_class, remediation, needle)
    return Classification(
        ErrorClass.NEEDS_HUMAN,
        "an error Homebound does not recognise: read the message, fix the cause, then replay",
        "",
    )


def is_stall(status_detail: str) -> bool:
    """Stalls are expected: the move waits for resources; report them, never restart the move."""
    return any(marker in status_detail for marker in _STALLS)
