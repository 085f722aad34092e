"""A moving tenant for the migration monitor's tests: the EXO stand-in with a fake MRSProxy.

The monitor only talks to Exchange Online; the on-prem side of a move is the
stand-in's business, so a test double of the on-prem MRSProxy (accepting every
target) keeps these tests about pacing, statuses and failures.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.runtime.config import ExchangeOnlineSection, MigrationSection, OnpremExchangeSection
from agents.shared.exo_client import ExchangeOnlineClient
from contracts.envelope import Event, follow, new_event
from contracts.events import (
    AdAccount,
    CloudMailbox,
    Completion,
    DnsRecordSet,
    MailboxMailEnabled,
    MailboxMailEnabledData,
    MailEnableMode,
    MoveMode,
    WaveCloudReady,
    WaveCloudReadyData,
    WaveDnsPrepared,
    WaveDnsPreparedData,
    WaveExported,
    WaveExportedData,
    WaveOnpremReady,
    WaveOnpremReadyData,
    WaveRequested,
    WaveRequestedData,
)
from lab.certs import ensure_certificates
from lab.exo.config import ExoConfig
from lab.exo.server import ExoStandIn
from tests.lab.fake_mrsproxy import FakeMrsProxy

MRS_HOST = "mail.fabrikam.example"
CLIENT_ID = str(uuid.uuid4())
TENANT_ID = str(uuid.uuid4())
ENDPOINT = "Homebound on-premises"


@dataclass
class MovingTenant:
    standin: ExoStandIn
    mrsproxy: FakeMrsProxy
    client: ExchangeOnlineClient
    exo: ExchangeOnlineSection
    onprem: OnpremExchangeSection

    def sections(self, **migration: Any) -> dict[str, Any]:
        return {
            "exchange_online": self.exo,
            "onprem_exchange": self.onprem,
            "migration": MigrationSection(endpoint_name=ENDPOINT, poll_interval_seconds=1, **migration),
        }

    def user_mailboxes(self, count: int) -> list[CloudMailbox]:
        rows = self.client.invoke(
            "Get-Mailbox", {"RecipientTypeDetails": "UserMailbox", "ResultSize": "Unlimited"}
        )
        return [to_cloud_mailbox(row) for row in rows[:count]]

    def migration_users(self) -> dict[str, str]:
        return {
            row["Identity"].lower(): row["Status"]
            for row in self.client.invoke("Get-MigrationUser", {"ResultSize": "Unlimited"})
        }

    def fault(self, address: str, fault: str | None) -> None:
        import httpx

        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.standin.config.ca_file))) as http:
            if fault is None:
                http.request("DELETE", f"{self.standin.base_url}/lab/faults", json={"mailbox": address})
            else:
                http.post(
                    f"{self.standin.base_url}/lab/faults", json={"mailbox": address, "fault": fault}
                ).raise_for_status()


def to_cloud_mailbox(row: dict[str, Any]) -> CloudMailbox:
    routing = next(
        a.split(":", 1)[1] for a in row["EmailAddresses"] if a.lower().endswith(".mail.onmicrosoft.com")
    )
    return CloudMailbox(
        primary_smtp_address=row["PrimarySmtpAddress"],
        alias=row["Alias"],
        display_name=row["DisplayName"],
        user_principal_name=row["UserPrincipalName"],
        exchange_guid=row["ExchangeGuid"],
        archive_guid=row["ArchiveGuid"],
        archive_status=row["ArchiveStatus"],
        legacy_exchange_dn=row["LegacyExchangeDN"],
        email_addresses=row["EmailAddresses"],
        recipient_type_details=row["RecipientTypeDetails"],
        routing_address=routing,
    )


@contextmanager
def moving_tenant(
    lab: Path, *, mailboxes: int = 12, max_concurrent: int = 3, **standin_overrides: Any
) -> Iterator[MovingTenant]:
    certs = ensure_certificates(lab / "tls")
    (lab / "secret").write_text("exo-secret\n")
    mrsproxy = FakeMrsProxy(certs.cert_file, certs.key_file).start()
    config = ExoConfig(
        port=0,
        cert_file=certs.cert_file,
        key_file=certs.key_file,
        ca_file=certs.ca_file,
        tenant_id=TENANT_ID,
        seed_mailboxes=mailboxes,
        log_requests=False,
        apps=[{"client_id": CLIENT_ID, "client_secret_file": str(lab / "secret"), "certificate_file": None}],
        remote_servers={MRS_HOST: mrsproxy.url},
        move_tick_seconds=0.05,
        move_min_seconds=0.5,
        move_complete_seconds=0.2,
        move_bytes_per_second=2_000_000_000,
        move_retry_seconds=0.3,
        **standin_overrides,
    )
    standin = ExoStandIn(config).start()
    exo = ExchangeOnlineSection(
        tenant="fabrikam.onmicrosoft.com",
        tenant_id=TENANT_ID,
        client_id=CLIENT_ID,
        client_secret="exo-secret",
        authority_host=standin.base_url,
        api_base_url=standin.base_url,
        ca_file=certs.ca_file,
        routing_domain="fabrikam.mail.onmicrosoft.com",
    )
    onprem = OnpremExchangeSection(
        url="https://127.0.0.1:5986/wsman",
        username=mrsproxy.username,
        password=mrsproxy.password,
        mrsproxy_host=MRS_HOST,
        target_delivery_domain="fabrikam.example",
        target_databases=["DB01"],
    )
    client = ExchangeOnlineClient(exo)
    client.invoke(
        "New-MigrationEndpoint",
        {
            "Name": ENDPOINT,
            "ExchangeRemoteMove": True,
            "RemoteServer": MRS_HOST,
            "Credentials": {"UserName": mrsproxy.username, "Password": mrsproxy.password},
            "MaxConcurrentMigrations": max_concurrent,
        },
    )
    try:
        yield MovingTenant(standin, mrsproxy, client, exo, onprem)
    finally:
        client.close()
        standin.stop()
        mrsproxy.stop()


def wave_events(
    wave_id: str,
    mailboxes: list[CloudMailbox],
    *,
    max_concurrent: int = 3,
    completion: Completion | None = None,
    move_mode: MoveMode = MoveMode.BATCH,
) -> list[Event]:
    """What the other agents would publish for a wave, in a plausible order."""
    requested = new_event(
        WaveRequested,
        wave_id=wave_id,
        producer="cli",
        data=WaveRequestedData(
            domains=["fabrikam.example"], completion=completion or Completion(), move_mode=move_mode
        ),
    )
    records = DnsRecordSet(mx=[(0, "fabrikam-example.mail.protection.outlook.com")], mx_ttl=300)
    events: list[Event] = [
        requested,
        follow(
            requested,
            WaveCloudReady,
            producer="cloud-exporter",
            data=WaveCloudReadyData(migration_endpoint=ENDPOINT, max_concurrent_migrations=max_concurrent),
        ),
        follow(
            requested,
            WaveOnpremReady,
            producer="exchange-configurator",
            data=WaveOnpremReadyData(
                mrsproxy_servers=["EX01"], mounted_databases=["DB01"], max_mrs_connections=100
            ),
        ),
        follow(
            requested,
            WaveDnsPrepared,
            producer="dns-cutover",
            data=WaveDnsPreparedData(domain="fabrikam.example", before=records, after=records),
        ),
    ]
    for mailbox in mailboxes:
        events.append(
            follow(
                requested,
                MailboxMailEnabled,
                producer="exchange-configurator",
                mailbox_id=mailbox.exchange_guid,
                data=MailboxMailEnabledData(
                    mailbox=mailbox,
                    mail_enable_mode=MailEnableMode.MAIL_USER,
                    account=AdAccount(
                        distinguished_name=f"CN={mailbox.alias},OU=x,DC=lab",
                        object_guid=uuid.uuid4(),
                        sam_account_name=mailbox.alias[:20],
                        created=True,
                    ),
                ),
            )
        )
    events.append(
        follow(
            requested, WaveExported, producer="cloud-exporter", data=WaveExportedData(count=len(mailboxes))
        )
    )
    return events


@dataclass
class Sampler:
    """Watches Exchange's migration users while a test runs: the peak of unfinished moves."""

    tenant: MovingTenant
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            statuses = self.tenant.migration_users().values()
            unfinished = sum(1 for s in statuses if s not in ("Completed", "CompletedWithWarnings", "Failed"))
            self.peak = max(self.peak, unfinished)
            time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_for(check: Callable[[], Any], timeout: float = 60, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s (last: {result!r})")
        time.sleep(every)
