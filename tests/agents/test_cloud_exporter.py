"""The cloud-exporter, end to end: its real factory, real msal and httpx, the Exchange Online
stand-in over HTTPS, a test double of the on-prem MRSProxy, and the real RabbitMQ.

Outcomes are read from the systems themselves: the tenant's state in the stand-in, the
events on the broker, the dead-letter queue, and the stand-in's own request log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pydantic
import pytest

from agents.cloud_exporter.mapping import parse_size, to_cloud_mailbox
from agents.cloud_exporter.opath import domain_filter, quote
from agents.commands.connectivity import CHECKS
from agents.runtime.config import HomeboundConfig
from agents.shared.exo_client import ExchangeOnlineClient
from contracts.envelope import new_event
from contracts.events import WaveRequested, WaveRequestedData
from contracts.fields import NIL_GUID
from contracts.topology import EVENTS_EXCHANGE, Header, queues_for
from events.amqp import AmqpSettings
from lab.certs import LabCertificates, ensure_certificates
from lab.exo.config import ExoConfig
from lab.exo.model import Mailbox
from lab.exo.server import ExoStandIn
from tests.agents.harness import RunningAgent, config_for, running_agent
from tests.events.broker import drain_queue
from tests.lab.fake_mrsproxy import ACCOUNT_PASSWORD, FakeMrsProxy

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = str(uuid.uuid4())
TENANT_ID = str(uuid.uuid4())
SECRET = "exporter-test-secret"
MRS_HOST = "mail.fabrikam.example"
GATEWAY = "smtp.fabrikam.example"
ENDPOINT = "Homebound on-premises"
CONNECTOR = "Homebound to on-premises"
ROUTING = "fabrikam.mail.onmicrosoft.com"
AGENT = "cloud-exporter"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cloud-exporter")
    (directory / "secret").write_text(SECRET + "\n")
    return directory


@pytest.fixture(scope="module")
def certs(lab: Path) -> LabCertificates:
    return ensure_certificates(lab / "tls")


@pytest.fixture(scope="module")
def mrsproxy(certs: LabCertificates) -> Iterator[FakeMrsProxy]:
    fake = FakeMrsProxy(certs.cert_file, certs.key_file).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _mrsproxy_enabled(mrsproxy: FakeMrsProxy) -> Iterator[None]:
    mrsproxy.enabled = True
    yield
    mrsproxy.enabled = True


def exo_config(lab: Path, certs: LabCertificates, mrsproxy: FakeMrsProxy, **overrides: Any) -> ExoConfig:
    settings: dict[str, Any] = {
        "port": 0, "cert_file": certs.cert_file, "key_file": certs.key_file,
        "ca_file": certs.ca_file, "tenant_id": TENANT_ID,
        "domains": ["fabrikam.example", "contoso.example"], "seed_mailboxes": 60,
        "remote_servers": {MRS_HOST: mrsproxy.url},
        "apps": [{"client_id": CLIENT_ID, "client_secret_file": str(lab / "secret"),
                  "certificate_file": None}],
        **overrides,
    }
    return ExoConfig(**settings)


@pytest.fixture
def standin(lab: Path, certs: LabCertificates, mrsproxy: FakeMrsProxy) -> Iterator[ExoStandIn]:
    """A fresh tenant per test: 60 generated mailboxes, every special person among them."""
    with ExoStandIn(exo_config(lab, certs, mrsproxy)) as running:
        yield running


def homebound_config(broker: AmqpSettings, state_dir: Path, base_url: str, ca_file: Path | None,
                     **migration: Any) -> HomeboundConfig:
    return config_for(
        broker, state_dir,
        exchange_online={
            "tenant": "fabrikam.onmicrosoft.com", "tenant_id": TENANT_ID, "client_id": CLIENT_ID,
            "client_secret": SECRET, "authority_host": base_url, "api_base_url": base_url,
            "ca_file": str(ca_file) if ca_file else None, "routing_domain": ROUTING, "page_size": 1000,
        },
        gateway={"host": GATEWAY, "addresses": ["192.0.2.25"]},
        onprem_exchange={
            "url": "https://127.0.0.1:5986/wsman", "username": "LAB\\mrsadmin",
            "password": ACCOUNT_PASSWORD, "mrsproxy_host": MRS_HOST,
            "target_delivery_domain": "fabrikam.example",
        },
        migration={"max_concurrent_migrations": 37, "endpoint_test_timeout_seconds": 3.0,
                   **migration},
    )


def wave(domains: list[str], mailboxes: list[str] | None = None, name: str = "w-exporter") -> WaveRequested:
    return new_event(WaveRequested, wave_id=name, producer="test",
                     data=WaveRequestedData(domains=domains, mailboxes=mailboxes))


def run_wave(agent: RunningAgent, request: WaveRequested, timeout: float = 60,
             until: str = "wave.exported") -> list[dict[str, Any]]:
    """Publish *request*; what the exporter published in answer, in order, up to *until*."""
    agent.publisher.publish_events([request])
    seen = agent.spy.collect(lambda seen: any(e["type"] == until for e in seen), timeout=timeout)
    return [e for e in seen if e["producer"] == AGENT]


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def lab_post(standin: ExoStandIn, path: str, body: dict[str, Any]) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(standin.config.ca_file))
    with httpx.Client(verify=context) as http:
        response = http.post(f"{standin.base_url}{path}", json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


def in_domain(mailbox: Mailbox, domain: str) -> bool:
    return any(p.lower().startswith("smtp:") and p.lower().endswith("@" + domain)
               for p in mailbox.email_addresses)


def org_settings(standin: ExoStandIn) -> dict[str, Any]:
    snapshot = standin.tenant.snapshot()
    return {key: snapshot[key] for key in ("accepted_domains", "connectors", "endpoints")}


def expected_record(m: Mailbox) -> dict[str, Any]:
    """What mailbox.discovered must say, straight from the stand-in's tenant model."""
    routing = next(p.split(":", 1)[1] for p in m.email_addresses if p.lower().endswith("@" + ROUTING))
    return {
        "primary_smtp_address": m.primary_smtp_address, "alias": m.alias,
        "display_name": m.display_name, "user_principal_name": m.user_principal_name,
        "exchange_guid": str(m.exchange_guid), "archive_guid": str(m.archive_guid),
        "archive_status": m.archive_status, "legacy_exchange_dn": m.legacy_exchange_dn,
        "email_addresses": list(m.email_addresses),
        "recipient_type_details": m.recipient_type_details, "routing_address": routing,
        "external_directory_object_id": str(m.external_directory_object_id),
        "size_bytes": m.size_bytes, "item_count": m.item_count,
    }


# ---------------------------------------------------------------------------- the whole wave


SEED_CSV = (
    "DisplayName,Alias,RecipientTypeDetails\n"
    "Board Room,board.room,RoomMailbox\n"
    "Discovery Search Mailbox,discovery.search,DiscoveryMailbox\n"
    f"{'A' * 300},very.long.name,UserMailbox\n"
)


def test_a_wave_prepares_the_cloud_and_exports_every_mailbox_and_a_rerun_changes_nothing(
    broker: AmqpSettings, standin: ExoStandIn, tmp_path: Path,
) -> None:
    lab_post(standin, "/lab/seed", {"csv": SEED_CSV})
    before = org_settings(standin)
    assert before["connectors"] == [] and before["endpoints"] == []
    request = wave(["fabrikam.example"])
    config = homebound_config(broker, tmp_path / "first", standin.base_url, standin.config.ca_file)
    with running_agent(AGENT, config, broker) as agent:
        first = run_wave(agent, request)

    # the cloud side, as the tenant now has it
    tenant = standin.tenant
    assert tenant.accepted_domains["fabrikam.example"].domain_type == "InternalRelay"
    assert tenant.accepted_domains["contoso.example"].domain_type == "Authoritative"
    connector = tenant.connectors[CONNECTOR.lower()]
    assert (connector.connector_type, connector.smart_hosts, connector.recipient_domains,
            connector.use_mx_record, connector.enabled) == (
        "OnPremises", [GATEWAY], ["fabrikam.example"], False, True)
    endpoint = tenant.endpoints[ENDPOINT.lower()]
    assert (endpoint.remote_server, endpoint.username, endpoint.max_concurrent_migrations) == (
        MRS_HOST, "LAB\\mrsadmin", 37)

    # the events, in order: ready first, then the mailboxes, then the count
    kinds = [e["type"] for e in first]
    assert kinds[0] == "wave.cloud_ready" and kinds[-1] == "wave.exported"
    ready = first[0]["data"]
    assert ready["migration_endpoint"] == ENDPOINT
    assert ready["max_concurrent_migrations"] == 37
    assert ready["max_concurrent_incremental_syncs"] == endpoint.max_concurrent_incremental_syncs
    assert len(ready["changes"]) == 3 and any("InternalRelay" in c for c in ready["changes"])

    discovered = of_type(first, "mailbox.discovered")
    by_guid = {e["data"]["exchange_guid"]: e for e in discovered}
    movable = [m for m in tenant.mailboxes.values() if m.is_mailbox and in_domain(m, "fabrikam.example")
               and m.recipient_type_details != "DiscoveryMailbox" and len(m.display_name) <= 256]
    assert len(discovered) == len(by_guid) == len(movable) == 61  # 60 generated + the room
    for m in movable:
        event = by_guid[str(m.exchange_guid)]
        assert event["mailbox_id"] == str(m.exchange_guid)
        assert event["data"] == expected_record(m), m.display_name
    archived = [m for m in movable if m.has_archive]
    assert archived and all(by_guid[str(m.exchange_guid)]["data"]["archive_guid"] != str(NIL_GUID)
                            for m in archived)
    names = {e["data"]["display_name"] for e in discovered}
    assert {"Zoë Ångström", "李雷", "x'; Remove-Mailbox -Identity * #", "$(Invoke-Expression 'calc')",
            'Robert")(cn=*))(|(cn=*', "Back`tick `$env:USERNAME `n"} <= names
    assert {"SharedMailbox", "RoomMailbox"} <= {e["data"]["recipient_type_details"] for e in discovered}

    exported = first[-1]["data"]
    assert exported["count"] == 61 and exported["not_found"] == []
    assert len(exported["skipped"]) == 2
    assert any("DiscoveryMailbox is not moved" in s for s in exported["skipped"])
    assert any("very.long.name" in s and "display_name" in s for s in exported["skipped"])

    # the same request again, as after a lost ack (the dedupe store forgot it): same ids,
    # nothing changed in the tenant, and the readiness says so
    settled = org_settings(standin)
    config = homebound_config(broker, tmp_path / "second", standin.base_url, standin.config.ca_file)
    with running_agent(AGENT, config, broker) as agent:
        second = run_wave(agent, request)
    assert org_settings(standin) == settled
    assert [e["event_id"] for e in second] == [e["event_id"] for e in first]
    assert second[0]["data"]["changes"] == []
    assert second[-1]["data"] == exported


def test_an_explicit_mailbox_list_narrows_the_scope_and_names_the_unknown_address(
    broker: AmqpSettings, standin: ExoStandIn, tmp_path: Path,
) -> None:
    people = [m for m in standin.tenant.mailboxes.values() if in_domain(m, "contoso.example")][:3]
    secondary = next(p.split(":", 1)[1] for p in people[2].email_addresses
                     if p.lower().endswith("@contoso.example"))
    asked = [people[0].primary_smtp_address, people[1].primary_smtp_address.upper().replace(
        "@FABRIKAM.EXAMPLE", "@fabrikam.example"), secondary, "ghost@contoso.example"]
    config = homebound_config(broker, tmp_path, standin.base_url, standin.config.ca_file)
    # an earlier wave's connector, since edited by hand: a partner connector using MX
    assert config.exchange_online is not None
    client = ExchangeOnlineClient(config.exchange_online)
    client.invoke("New-OutboundConnector", {"Name": CONNECTOR, "ConnectorType": "Partner",
                                            "RecipientDomains": ["fabrikam.example"], "UseMXRecord": True})
    client.close()
    with running_agent(AGENT, config, broker) as agent:
        events = run_wave(agent, wave(["contoso.example"], asked))
    found = {e["data"]["exchange_guid"] for e in of_type(events, "mailbox.discovered")}
    assert found == {str(m.exchange_guid) for m in people}
    exported = of_type(events, "wave.exported")[0]["data"]
    assert exported["count"] == 3
    assert exported["not_found"] == ["ghost@contoso.example"]
    connector = standin.tenant.connectors[CONNECTOR.lower()]
    assert (connector.connector_type, connector.smart_hosts, connector.recipient_domains,
            connector.use_mx_record) == (
        "OnPremises", [GATEWAY], ["fabrikam.example", "contoso.example"], False)
    [changed] = [c for c in of_type(events, "wave.cloud_ready")[0]["data"]["changes"] if "connector" in c]
    assert "updated: recipient domains + contoso.example" in changed and "Partner -> OnPremises" in changed


# ---------------------------------------------------------------------------- failures


def test_a_domain_the_tenant_does_not_accept_dead_letters_the_wave_as_permanent(
    broker: AmqpSettings, standin: ExoStandIn, tmp_path: Path,
) -> None:
    config = homebound_config(broker, tmp_path, standin.base_url, standin.config.ca_file)
    with running_agent(AGENT, config, broker) as agent:
        events = run_wave(agent, wave(["fabrikam.example", "nowhere.example"]), until="wave.failed")
        letters = drain_queue(broker, queues_for(AGENT).dead_letter)
    failed = of_type(events, "wave.failed")[0]["data"]
    assert failed["error_class"] == "permanent"
    assert "nowhere.example: not an accepted domain in the tenant" in failed["reason"]
    assert failed["remediation"]
    assert not of_type(events, "wave.cloud_ready") and not of_type(events, "mailbox.discovered")
    assert len(letters) == 1
    headers = letters[0][0].headers
    assert headers[Header.ERROR_CLASS] == "permanent"
    assert headers[Header.STEP] == "cloud-preparation"
    # nothing was changed before the refusal: not even the domain that is accepted
    assert standin.tenant.accepted_domains["fabrikam.example"].domain_type == "Authoritative"
    assert standin.tenant.connectors == {}


def test_mrsproxy_enabled_while_the_endpoint_is_tested_is_waited_for(
    broker: AmqpSettings, standin: ExoStandIn, mrsproxy: FakeMrsProxy, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lab.exo.http")
    mrsproxy.enabled = False
    threading.Timer(1.0, lambda: setattr(mrsproxy, "enabled", True)).start()
    config = homebound_config(broker, tmp_path, standin.base_url, standin.config.ca_file,
                              endpoint_test_timeout_seconds=20)
    with running_agent(AGENT, config, broker) as agent:
        events = run_wave(agent, wave(["fabrikam.example"]))
    assert of_type(events, "wave.cloud_ready") and of_type(events, "wave.exported")
    tests = [r for r in caplog.messages if "Test-MigrationServerAvailability" in r]
    assert len(tests) == 2  # failed while MRSProxy was off, passed once it was on


def test_an_unreachable_mrsproxy_is_retried_then_fails_the_wave_as_transient_with_the_fix(
    broker: AmqpSettings, standin: ExoStandIn, mrsproxy: FakeMrsProxy, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lab.exo.http")
    mrsproxy.enabled = False  # the EWS virtual directory answers 404: MRSProxy is off
    config = homebound_config(broker, tmp_path, standin.base_url, standin.config.ca_file,
                              endpoint_test_timeout_seconds=2.5)
    with running_agent(AGENT, config, broker) as agent:
        events = run_wave(agent, wave(["fabrikam.example"]), until="wave.failed", timeout=60)
        letters = drain_queue(broker, queues_for(AGENT).dead_letter)
    failed = of_type(events, "wave.failed")[0]["data"]
    assert failed["error_class"] == "transient"
    assert "gave up after 3 attempts" in failed["reason"] and "(404) Not Found" in failed["reason"]
    assert "enable MRSProxy" in failed["remediation"]
    assert ACCOUNT_PASSWORD not in json.dumps(events)
    assert len(letters) == 1 and letters[0][0].headers[Header.ERROR_CLASS] == "transient"
    assert not of_type(events, "mailbox.discovered") and not of_type(events, "wave.cloud_ready")
    tests = [r for r in caplog.messages if "Test-MigrationServerAvailability" in r]
    assert len(tests) == 6  # two tries in place (now, +2 s) per attempt, three attempts
    # the endpoint exists (created without verification) and stays for the replay
    assert ENDPOINT.lower() in standin.tenant.endpoints


# ---------------------------------------------------------------------------- scale and throttling


def test_throttling_is_absorbed_and_every_mailbox_still_exported(
    broker: AmqpSettings, standin: ExoStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lab.exo.http")
    lab_post(standin, "/lab/throttle", {"requests_per_second": 20, "burst": 10, "latency_ms": [5, 15],
                                        "max_concurrent_requests": 2, "refill": True})
    config = homebound_config(broker, tmp_path, standin.base_url, standin.config.ca_file)
    with running_agent(AGENT, config, broker) as agent:
        events = run_wave(agent, wave(["fabrikam.example"]), timeout=80)
    exported = of_type(events, "wave.exported")[0]["data"]
    assert exported["count"] == 60 == len(of_type(events, "mailbox.discovered"))
    assert all(e["data"]["size_bytes"] for e in of_type(events, "mailbox.discovered"))
    throttled = sum(r.endswith("throttled") for r in caplog.messages)
    crowded = sum(r.endswith("concurrency limit") for r in caplog.messages)
    print(f"\nrefused by the stand-in: {throttled} x 429, {crowded} x concurrent-requests body")
    assert throttled and crowded, "the stand-in did not refuse both ways: the test proves nothing"


class _Counter:
    """Counts mailbox.discovered ids in a queue of their own, without holding the bodies."""

    def __init__(self, settings: AmqpSettings) -> None:
        self._connection = pika.BlockingConnection(settings.parameters())
        self._channel = self._connection.channel()
        self._channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True, passive=True)
        self.queue = self._channel.queue_declare("", exclusive=True).method.queue
        self._channel.queue_bind(self.queue, EVENTS_EXCHANGE, "mailbox.discovered")

    def ids(self) -> set[str]:
        found: set[str] = set()
        while True:
            method, _props, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return found
            found.add(json.loads(body)["event_id"])

    def close(self) -> None:
        self._connection.close()


def _start_standin_process(config: ExoConfig, directory: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """The stand-in in its own process, so the memory measured is the agent's alone."""
    config.to_file(directory / "exo.json")
    port_file, log_file = directory / "port", directory / "exo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "lab.exo", "--config", str(directory / "exo.json"),
         "--port-file", str(port_file)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=log_file.open("wb"),
        env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        assert process.poll() is None and time.monotonic() < deadline, log_file.read_text()[-2000:]
        time.sleep(0.1)
    return process, f"https://127.0.0.1:{int(port_file.read_text())}", log_file


def _traced_export(agent: RunningAgent, counter: _Counter, request: WaveRequested) -> tuple[
        dict[str, Any], set[str], float, int]:
    """One export with tracemalloc on: what wave.exported said, the ids seen, seconds, peak bytes."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        events = run_wave(agent, request, timeout=80)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return of_type(events, "wave.exported")[0]["data"], counter.ids(), seconds, peak


def test_2500_mailboxes_export_in_three_pages_holding_one_page_at_a_time(
    broker: AmqpSettings, lab: Path, certs: LabCertificates, mrsproxy: FakeMrsProxy, tmp_path: Path,
) -> None:
    config = exo_config(lab, certs, mrsproxy, seed_mailboxes=2500, throttle_requests_per_second=5000,
                        throttle_burst=5000, max_concurrent_requests=64)
    process, base_url, log_file = _start_standin_process(config, tmp_path)
    try:
        homebound = homebound_config(broker, tmp_path / "state", base_url, certs.ca_file)
        small_pages = homebound.model_copy(update={
            "exchange_online": homebound.exchange_online.model_copy(  # type: ignore[union-attr]
                update={"page_size": 250, "include_statistics": False}),
            "runtime": homebound.runtime.model_copy(update={"state_dir": tmp_path / "small"})})
        with running_agent(AGENT, homebound, broker, spy_binding="wave.*") as agent:
            counter = _Counter(broker)
            exported, ids, seconds, peak = _traced_export(agent, counter, wave(["fabrikam.example"]))
            counter.close()
        requests = [line for line in log_file.read_text().splitlines() if "InvokeCommand" in line]
        with running_agent(AGENT, small_pages, broker, spy_binding="wave.*") as agent:
            counter = _Counter(broker)
            small, small_ids, _, small_peak = _traced_export(
                agent, counter, wave(["fabrikam.example"], name="w-small-pages"))
            counter.close()
    finally:
        process.terminate()
        process.wait(10)
    assert exported["count"] == len(ids) == 2500 == small["count"] == len(small_ids)
    pages = [int(line.split()[-2]) for line in log_file.read_text().splitlines()
             if re.search(r" Get-Mailbox \d+ items$", line)]
    assert pages == [1000, 1000, 500] + [250] * 10
    print(f"\n2,500 mailboxes: {seconds:.1f} s ({2500 / seconds:.0f} mailboxes/s with statistics, "
          f"tracemalloc on), peak traced memory {peak / 2**20:.1f} MiB with pages of 1,000, "
          f"{small_peak / 2**20:.1f} MiB with pages of 250; {len(requests)} API calls "
          f"({len(requests) / 2.5:.0f} per 1,000 mailboxes)")
    # memory follows the page size, not the tenant: a quarter of the page, well under half the peak
    assert small_peak < peak / 2
    assert peak < 24 * 2**20


def test_config_check_connect_reports_the_tenant_accepted_domains(
    broker: AmqpSettings, standin: ExoStandIn, tmp_path: Path,
) -> None:
    config = homebound_config(broker, tmp_path, standin.base_url, standin.config.ca_file)
    assert CHECKS["exchange_online"](config) == "tenant fabrikam.onmicrosoft.com, 4 accepted domains"


# ---------------------------------------------------------------------------- the pure parts


def test_domain_filters_quote_values_and_refuse_what_is_not_a_domain() -> None:
    assert domain_filter(["Fabrikam.Example", "contoso.example", "fabrikam.example"]) == (
        "EmailAddresses -like '*@fabrikam.example' -or EmailAddresses -like '*@contoso.example'")
    assert quote("o'brien") == "'o''brien'"
    for hostile in ("x' -or Name -like '*", "fabrikam.example'}", "a b.example", ""):
        with pytest.raises(ValueError):
            domain_filter([hostile])


RECORD: dict[str, Any] = {
    "PrimarySmtpAddress": "ann@fabrikam.example", "Alias": "ann", "DisplayName": "Ann",
    "UserPrincipalName": "ann@fabrikam.example", "ExchangeGuid": str(uuid.uuid4()),
    "ArchiveGuid": str(uuid.uuid4()), "ArchiveStatus": "None",
    "LegacyExchangeDN": "/o=ExchangeLabs/cn=Recipients/cn=ann",
    "EmailAddresses": ["SMTP:ann@fabrikam.example", "smtp:ann@Fabrikam.Mail.OnMicrosoft.com"],
    "RecipientTypeDetails": "usermailbox", "ExternalDirectoryObjectId": "",
}


def test_a_disabled_archive_exports_as_no_archive_and_sizes_are_parsed() -> None:
    mailbox = to_cloud_mailbox(RECORD, None, ROUTING)
    assert mailbox.archive_guid == NIL_GUID and not mailbox.has_archive
    assert mailbox.routing_address == "ann@fabrikam.mail.onmicrosoft.com"
    assert mailbox.recipient_type_details == "UserMailbox"
    assert mailbox.external_directory_object_id is None
    without_proxy = to_cloud_mailbox({**RECORD, "EmailAddresses": ["SMTP:ann@fabrikam.example"]},
                                     None, ROUTING)
    assert without_proxy.routing_address == f"ann@{ROUTING}"
    assert parse_size("1.2 GB (1,288,490,188 bytes)") == 1_288_490_188
    assert parse_size("12345") == 12345 and parse_size("Unlimited") is None and parse_size(None) is None


def test_a_record_that_is_not_a_mailbox_is_refused_by_validation() -> None:
    with pytest.raises(pydantic.ValidationError):
        to_cloud_mailbox({**RECORD, "ExchangeGuid": str(NIL_GUID)}, None, ROUTING)

