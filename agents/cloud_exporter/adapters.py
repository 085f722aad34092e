"""The cloud-exporter's ports over the Exchange Online admin API (the only code calling the EXO client).

Exchange's failures become the runtime's here, once: throttling that outlived
the client's own retries and an unreachable service are transient; refused
app credentials are permanent; a cmdlet error is classified by its text
(agents.shared.exchange_errors). Nothing logged here carries the endpoint
credential's password: it exists only inside the New-MigrationEndpoint body.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final

import structlog

from agents.cloud_exporter.mapping import MAILBOX_PROPERTIES, describe, parse_size
from agents.cloud_exporter.opath import domain_filter
from agents.cloud_exporter.ports import (
    AcceptedDomain,
    EndpointTest,
    MailboxRecord,
    MailboxSize,
    MigrationEndpoint,
    NewMigrationEndpoint,
    OutboundConnector,
)
from agents.shared.exchange_errors import classify
from agents.shared.exo_client import (
    ExchangeOnlineClient,
    ExoAuthError,
    ExoError,
    ExoThrottled,
    ExoUnavailable,
)
from contracts.events import ErrorClass
from events.errors import HandlerError, NeedsHumanError, PermanentError, TransientError

__all__ = ["ExoMailboxSource", "ExoOrganisation", "exchange_failures"]

log = structlog.get_logger(__name__)

CONNECTOR_COMMENT: Final = ("Created by Homebound for the offboarding: routes the wave's domains "
                            "to the on-premises gateway while mailboxes move.")
_RAISE_AS: Final[dict[ErrorClass, type[HandlerError]]] = {
    ErrorClass.TRANSIENT: TransientError,
    ErrorClass.PERMANENT: PermanentError,
    ErrorClass.NEEDS_HUMAN: NeedsHumanError,
}


@contextmanager
def exchange_failures(what: str) -> Iterator[None]:
    """Raise the runtime's error for whatever Exchange Online answered while doing *what*."""
    try:
        yield
    except (ExoThrottled, ExoUnavailable) as exc:
        raise TransientError(f"{what}: {exc}", error_type=type(exc).__name__,
                             remediation="Exchange Online is throttling or unavailable; "
                                         "Homebound retries later") from exc
    except ExoAuthError as exc:
        raise PermanentError(
            f"{what}: {exc}", error_type=type(exc).__name__,
            remediation="check [exchange_online] client_id and its secret or certificate, and "
                        "that the app has the Exchange.ManageAsApp role and an Exchange admin role",
        ) from exc
    except ExoError as exc:
        verdict = classify(exc.message, exc.exception_type)
        raise _RAISE_AS[verdict.error_class](
            f"{what}: {exc}"[:2000], remediation=verdict.remediation,
            error_type=exc.exception_type or exc.code) from exc


def _without_secret(error: ExoError, secret: str) -> ExoError:
    """The same error with *secret* masked, should Exchange ever echo a parameter back."""
    if not secret or secret not in error.message:
        return error
    return ExoError(error.cmdlet, error.status, error.code, error.exception_type,
                    error.message.replace(secret, "********"))


def _already_exists(error: ExoError) -> bool:
    return "AlreadyExists" in error.exception_type or "already exists" in error.message


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def _int(value: Any) -> int | None:
    """MaxConcurrent* come as numbers, strings, or "Unlimited" (None)."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "$true", "1")


class ExoOrganisation:
    """Accepted domains, the outbound connector and the migration endpoint."""

    def __init__(self, client: ExchangeOnlineClient) -> None:
        self._client = client

    def accepted_domains(self) -> list[AcceptedDomain]:
        with exchange_failures("reading the accepted domains"):
            rows = self._client.invoke("Get-AcceptedDomain", {"ResultSize": "Unlimited"})
        return [AcceptedDomain(identity=str(r.get("Identity") or r.get("Name") or r.get("DomainName")),
                               domain_name=str(r.get("DomainName") or r.get("Name") or "").lower(),
                               domain_type=str(r.get("DomainType") or ""))
                for r in rows]

    def set_domain_type(self, identity: str, domain_type: str) -> None:
        with exchange_failures(f"making {identity} {domain_type}"):
            self._client.invoke("Set-AcceptedDomain", {"Identity": identity, "DomainType": domain_type})

    def outbound_connector(self, name: str) -> OutboundConnector | None:
        with exchange_failures(f"reading the outbound connector {name!r}"):
            row = self._client.find("Get-OutboundConnector", {"Identity": name})
        if row is None:
            return None
        return OutboundConnector(
            name=str(row.get("Name") or name), connector_type=str(row.get("ConnectorType") or ""),
            smart_hosts=_strings(row.get("SmartHosts")),
            recipient_domains=_strings(row.get("RecipientDomains")),
            use_mx_record=_bool(row.get("UseMXRecord")), enabled=_bool(row.get("Enabled")),
        )

    def _connector_parameters(self, connector: OutboundConnector) -> dict[str, Any]:
        return {"ConnectorType": connector.connector_type, "SmartHosts": list(connector.smart_hosts),
                "RecipientDomains": list(connector.recipient_domains),
                "UseMXRecord": connector.use_mx_record, "Enabled": connector.enabled}

    def create_outbound_connector(self, connector: OutboundConnector) -> None:
        with exchange_failures(f"creating the outbound connector {connector.name!r}"):
            try:
                self._client.invoke("New-OutboundConnector", {
                    "Name": connector.name, "Comment": CONNECTOR_COMMENT,
                    **self._connector_parameters(connector)})
            except ExoError as exc:
                if not _already_exists(exc):  # another replica made it: the caller reads it back
                    raise

    def update_outbound_connector(self, connector: OutboundConnector) -> None:
        with exchange_failures(f"updating the outbound connector {connector.name!r}"):
            self._client.invoke("Set-OutboundConnector", {
                "Identity": connector.name, **self._connector_parameters(connector)})

    def migration_endpoint(self, name: str) -> MigrationEndpoint | None:
        with exchange_failures(f"reading the migration endpoint {name!r}"):
            row = self._client.find("Get-MigrationEndpoint", {"Identity": name})
        if row is None:
            return None
        return MigrationEndpoint(
            name=str(row.get("Identity") or row.get("Name") or name),
            remote_server=str(row.get("RemoteServer") or ""),
            max_concurrent_migrations=_int(row.get("MaxConcurrentMigrations")),
            max_concurrent_incremental_syncs=_int(row.get("MaxConcurrentIncrementalSyncs")),
        )

    def create_migration_endpoint(self, endpoint: NewMigrationEndpoint) -> None:
        with exchange_failures(f"creating the migration endpoint {endpoint.name!r}"):
            try:
                self._client.invoke("New-MigrationEndpoint", {
                    "ExchangeRemoteMove": True, "Name": endpoint.name,
                    "RemoteServer": endpoint.remote_server,
                    "Credentials": self._credential(endpoint),
                    "MaxConcurrentMigrations": endpoint.max_concurrent_migrations,
                    "SkipVerification": True})
            except ExoError as exc:
                if not _already_exists(exc):
                    raise _without_secret(exc, endpoint.password.get_secret_value()) from None

    def point_migration_endpoint(self, endpoint: NewMigrationEndpoint) -> None:
        with exchange_failures(f"pointing the migration endpoint {endpoint.name!r} at "
                               f"{endpoint.remote_server}"):
            try:
                self._client.invoke("Set-MigrationEndpoint", {
                    "Identity": endpoint.name, "RemoteServer": endpoint.remote_server,
                    "Credentials": self._credential(endpoint), "SkipVerification": True})
            except ExoError as exc:
                raise _without_secret(exc, endpoint.password.get_secret_value()) from None

    @staticmethod
    def _credential(endpoint: NewMigrationEndpoint) -> dict[str, str]:
        # PSCredential over JSON: {UserName, Password}; built at the last moment, never logged
        return {"UserName": endpoint.username, "Password": endpoint.password.get_secret_value()}

    def test_migration_endpoint(self, name: str) -> EndpointTest:
        with exchange_failures(f"testing the migration endpoint {name!r}"):
            rows = self._client.invoke("Test-MigrationServerAvailability", {"Endpoint": name})
        row = rows[0] if rows else {}
        ok = str(row.get("Result") or "").lower() == "success"
        message = str(row.get("Message") or row.get("ErrorDetail") or "")
        return EndpointTest(ok=ok, message="" if ok else (message or "the test did not succeed"))


class ExoMailboxSource:
    """Get-Mailbox page by page, and Get-MailboxStatistics by a few threads."""

    def __init__(self, client: ExchangeOnlineClient, *, page_size: int, include_statistics: bool,
                 statistics_concurrency: int) -> None:
        self._client = client
        self._page_size = page_size
        self._include_statistics = include_statistics
        self._pool = ThreadPoolExecutor(statistics_concurrency, thread_name_prefix="exo-statistics")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def mailbox_page(
        self, domains: Sequence[str], cursor: str | None, number: int
    ) -> tuple[Sequence[MailboxRecord], str | None]:
        try:
            parameters = {"Filter": domain_filter(domains), "ResultSize": "Unlimited"}
        except ValueError as exc:
            raise PermanentError(f"the wave's domains cannot be searched: {exc}") from exc
        with exchange_failures(f"reading page {number} of the wave's mailboxes"):
            page, next_cursor = self._client.page("Get-Mailbox", parameters, select=list(MAILBOX_PROPERTIES),
                                                  page_size=self._page_size, cursor=cursor)
        log.info("export.page_read", page=number, mailboxes=len(page), last=next_cursor is None)
        return page, next_cursor

    def mailbox_pages(self, domains: Sequence[str]) -> Iterator[Sequence[MailboxRecord]]:
        cursor: str | None = None
        number = 0
        while True:
            number += 1
            page, cursor = self.mailbox_page(domains, cursor, number)
            yield page
            if cursor is None:
                return

    def sizes(self, mailboxes: Sequence[MailboxRecord]) -> list[MailboxSize | None]:
        if not self._include_statistics:
            return [None] * len(mailboxes)
        with exchange_failures("reading mailbox statistics"):
            return list(self._pool.map(self._size, mailboxes))

    def _size(self, mailbox: MailboxRecord) -> MailboxSize | None:
        identity = str(mailbox.get("ExchangeGuid") or mailbox.get("Identity") or "")
        try:
            rows = self._client.invoke("Get-MailboxStatistics", {"Identity": identity},
                                       select=["TotalItemSize", "ItemCount"])
        except ExoError as exc:
            # the size only informs planning: a mailbox that has none is still moved
            log.warning("export.statistics_unavailable", mailbox=describe(mailbox),
                        error=str(exc)[:300])
            return None
        if not rows:
            return None
        return MailboxSize(size_bytes=parse_size(rows[0].get("TotalItemSize")),
                           item_count=_int(rows[0].get("ItemCount")))
