"""The Exchange Online stand-in, exercised through the real msal and httpx clients.

Every test talks HTTPS to a stand-in started in-process on a free port, with
TLS verified against the lab CA. Moves are pushed to a test double of the
on-prem MRSProxy (tests/lab/fake_mrsproxy.py), never to a mocked client.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from contracts.events import CloudMailbox
from lab.certs import LabCertificates, ensure_certificates
from lab.exo import ExoConfig, ExoStandIn
from lab.exo.sizes import parse_size
from tests.lab.exo_client import (
    SCOPE,
    ExchangeError,
    ExoClient,
    ExoClientError,
    MsalHttp,
    msal_app,
)
from tests.lab.fake_mrsproxy import FakeMrsProxy

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "6f1c2a9e-0b4d-4c1e-9a7f-3d2b1c0e9f8a"
CERT_CLIENT_ID = "0e5d4c3b-2a19-4f8e-8d7c-6b5a49382716"
SECRET = "lab-client-secret-value"
MRS_HOST = "mail.fabrikam.example"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exo")


@pytest.fixture(scope="module")
def certs(lab_dir: Path) -> LabCertificates:
    return ensure_certificates(lab_dir / "certs")


@pytest.fixture(scope="module")
def ca(certs: LabCertificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_file))


@pytest.fixture(scope="module")
def app_certificate(lab_dir: Path) -> dict[str, str]:
    """An app registration's key pair: the private key for msal, the certificate for the server."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "homebound-test-app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (lab_dir / "app.pem").write_text(cert_pem)
    return {
        "private_key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        "public_certificate": cert_pem,
        "certificate_file": str(lab_dir / "app.pem"),
    }


@pytest.fixture(scope="module")
def base_config(lab_dir: Path, certs: LabCertificates,
                app_certificate: dict[str, str]) -> dict[str, Any]:
    secret_file = lab_dir / "client-secret"
    secret_file.write_text(SECRET + "\n")
    return {
        "port": 0, "cert_file": certs.cert_file, "key_file": certs.key_file,
        "ca_file": certs.ca_file,
        "apps": [
            {"client_id": CLIENT_ID, "client_secret_file": str(secret_file),
             "certificate_file": None},
            {"client_id": CERT_CLIENT_ID, "client_secret_file": None,
             "certificate_file": app_certificate["certificate_file"]},
        ],
        "log_requests": False,
    }


@pytest.fixture(scope="module")
def big(base_config: dict[str, Any]) -> Iterator[ExoStandIn]:
    """2,500 mailboxes, read-only tests only."""
    with ExoStandIn(ExoConfig(**base_config, seed_mailboxes=2500)) as standin:
        yield standin


@pytest.fixture
def client_for(ca: ssl.SSLContext) -> Iterator[Callable[[ExoStandIn], ExoClient]]:
    made: list[ExoClient] = []

    def make(standin: ExoStandIn) -> ExoClient:
        client = ExoClient(standin.base_url, standin.config.tenant_id, CLIENT_ID, SECRET, ca)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def big_client(big: ExoStandIn, client_for: Callable[[ExoStandIn], ExoClient]) -> ExoClient:
    return client_for(big)


@pytest.fixture
def fake_mrs(certs: LabCertificates) -> Iterator[FakeMrsProxy]:
    fake = FakeMrsProxy(certs.cert_file, certs.key_file).start()
    yield fake
    fake.stop()


@pytest.fixture
def standin_with(base_config: dict[str, Any],
                 fake_mrs: FakeMrsProxy) -> Iterator[Callable[..., ExoStandIn]]:
    """A small, fast-moving tenant wired to the fake MRSProxy; settings overridable."""
    started: list[ExoStandIn] = []

    def make(**overrides: Any) -> ExoStandIn:
        settings = {
            **base_config, "seed_mailboxes": 12, "remote_servers": {MRS_HOST: fake_mrs.url},
            "move_tick_seconds": 0.05, "move_min_seconds": 0.4, "move_complete_seconds": 0.1,
            "move_bytes_per_second": 4_000_000_000,  # every seeded mailbox syncs within ~0.5 s
            "move_retry_seconds": 0.3, **overrides,
        }
        standin = ExoStandIn(ExoConfig(**settings)).start()
        started.append(standin)
        return standin

    yield make
    for standin in started:
        standin.stop()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(every)


def csv_data(*addresses: str) -> str:
    return base64.b64encode(("EmailAddress\r\n" + "\r\n".join(addresses) + "\r\n")
                            .encode()).decode()


def endpoint(client: ExoClient, fake: FakeMrsProxy, *, max_concurrent: int = 20,
             password: str | None = None, skip_verification: bool = False) -> None:
    parameters: dict[str, Any] = {
        "Name": "OnPremEndpoint", "ExchangeRemoteMove": True, "RemoteServer": MRS_HOST,
        "Credentials": {"UserName": fake.username, "Password": password or fake.password},
        "MaxConcurrentMigrations": max_concurrent,
    }
    if skip_verification:
        parameters["SkipVerification"] = True
    client.run("New-MigrationEndpoint", parameters)


def mailboxes(client: ExoClient, count: int, **where: Any) -> list[dict[str, Any]]:
    """The first *count* user mailboxes (optionally with/without an archive)."""
    found = client.run("Get-Mailbox", {"RecipientTypeDetails": "UserMailbox"})
    if "archive" in where:
        found = [m for m in found
                 if (m["ArchiveStatus"] == "Active") == where["archive"]]
    return found[:count]


def addresses(found: list[dict[str, Any]]) -> list[str]:
    return [m["PrimarySmtpAddress"] for m in found]


def users(client: ExoClient, batch: str) -> dict[str, dict[str, Any]]:
    return {u["Identity"]: u for u in client.run("Get-MigrationUser", {"BatchId": batch})}


def error_of(response: httpx.Response) -> ExchangeError:
    return ExchangeError.from_response(response)


# ---------------------------------------------------------------------------- tokens


def test_msal_gets_a_token_with_a_client_secret_and_the_admin_api_accepts_it(
        big_client: ExoClient) -> None:
    domains = big_client.run("Get-AcceptedDomain")
    assert {d["DomainName"] for d in domains} == {
        "fabrikam.example", "fabrikam.onmicrosoft.com", "fabrikam.mail.onmicrosoft.com"}
    assert {d["DomainType"] for d in domains} == {"Authoritative"}
    v1 = big_client.post("Get-AcceptedDomain", url=big_client.url.replace("/beta/", "/v1.0/"))
    assert v1.status_code == 200 and len(v1.json()["value"]) == 3


def test_msal_gets_a_token_with_a_certificate_assertion(
        big: ExoStandIn, ca: ssl.SSLContext, app_certificate: dict[str, str]) -> None:
    credential = {k: app_certificate[k] for k in ("private_key", "thumbprint",
                                                  "public_certificate")}
    client = ExoClient(big.base_url, big.config.tenant_id, CERT_CLIENT_ID, credential, ca)
    try:
        assert client.run("Get-Mailbox", {"Identity": "zoe.angstrom@fabrikam.example"})
    finally:
        client.close()


def test_plain_httpx_as_msals_http_client_breaks_certificate_assertions(
        big: ExoStandIn, ca: ssl.SSLContext, app_certificate: dict[str, str]) -> None:
    """Pins a client-side pitfall (see MsalHttp): the assertion arrives as b'...'."""
    credential = {k: app_certificate[k] for k in ("private_key", "thumbprint")}
    with httpx.Client(verify=ca) as http:
        result = msal_app(big.base_url, big.config.tenant_id, CERT_CLIENT_ID, credential,
                          http).acquire_token_for_client(scopes=[SCOPE])
    assert result["error_codes"] == [50027]


def test_an_assertion_signed_with_another_key_is_refused(big: ExoStandIn, ca: ssl.SSLContext,
                                                         app_certificate: dict[str, str]) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    credential = {
        "private_key": other.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode(),
        "thumbprint": app_certificate["thumbprint"],
    }
    with httpx.Client(verify=ca) as http:
        result = msal_app(big.base_url, big.config.tenant_id, CERT_CLIENT_ID, credential,
                          MsalHttp(http)).acquire_token_for_client(scopes=[SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


@pytest.mark.parametrize(("client_id", "secret", "scope", "error", "code"), [
    (CLIENT_ID, "not-the-secret", SCOPE, "invalid_client", 7000215),
    ("99999999-9999-4999-8999-999999999999", SECRET, SCOPE, "unauthorized_client", 700016),
    (CLIENT_ID, SECRET, "https://graph.microsoft.com/.default", "invalid_scope", 70011),
])
def test_bad_credentials_are_answered_as_azure_ad_does(
        big: ExoStandIn, ca: ssl.SSLContext, client_id: str, secret: str, scope: str,
        error: str, code: int) -> None:
    with httpx.Client(verify=ca) as http:
        app = msal_app(big.base_url, "fabrikam.onmicrosoft.com", client_id, secret, http)
        result = app.acquire_token_for_client(scopes=[scope])
    assert result["error"] == error
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    assert result["error_codes"] == [code]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_the_admin_api_refuses_calls_without_a_valid_token(big: ExoStandIn,
                                                            big_client: ExoClient) -> None:
    body = ExoClient.body("Get-Mailbox")
    missing = big_client.http.post(big_client.url, json=body)
    forged = big_client.http.post(big_client.url, json=body,
                                  headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."})
    other_tenant = big_client.http.post(
        f"{big.base_url}/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand", json=body,
        headers={"Authorization": f"Bearer {big_client.token()}"})
    assert [r.status_code for r in (missing, forged, other_tenant)] == [401, 401, 401]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")


# ---------------------------------------------------------------------------- reading


def test_get_mailbox_pages_2500_mailboxes_three_pages_each_mailbox_once(
        big_client: ExoClient) -> None:
    pages = big_client.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=1000)
    assert [len(p) for p in pages] == [1000, 1000, 500]
    guids = [m["ExchangeGuid"] for page in pages for m in page]
    assert len(set(guids)) == 2500
    first = pages[0][0]
    assert first["ExchangeGuid@odata.type"] == "#Guid"
    assert first["EmailAddresses@odata.type"] == "#Collection(String)"


def test_the_next_link_is_absolute_opaque_and_bound_to_the_request(
        big: ExoStandIn, big_client: ExoClient) -> None:
    first = big_client.post("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=100).json()
    link = first["@odata.nextLink"]
    assert link.startswith(f"{big.base_url}/adminapi/beta/")
    other_body = big_client.post("Get-Mailbox", {"ResultSize": 5000}, url=link, page_size=100)
    assert other_body.status_code == 400
    tampered = big_client.post("Get-Mailbox", {"ResultSize": "Unlimited"},
                               url=link.replace("skiptoken=", "skiptoken=x"), page_size=100)
    assert tampered.status_code == 400


def test_without_result_size_get_mailbox_stops_at_1000_with_a_warning(
        big_client: ExoClient) -> None:
    response = big_client.post("Get-Mailbox", page_size=1000).json()
    assert len(response["value"]) == 1000
    assert "@odata.nextLink" not in response
    assert "increase the value for the ResultSize" in response["@adminapi.warnings"][0]
    assert len(big_client.run("Get-Mailbox", {"ResultSize": 1500}, page_size=1000)) == 1500


def test_select_returns_only_the_named_properties(big_client: ExoClient) -> None:
    found = big_client.run("Get-Mailbox", {"ResultSize": 3},
                           select="PrimarySmtpAddress,ExchangeGuid")
    assert len(found) == 3
    assert set(found[0]) == {"PrimarySmtpAddress", "ExchangeGuid", "ExchangeGuid@odata.type"}


def test_an_opath_filter_by_domain_and_by_quoted_display_name(big_client: ExoClient) -> None:
    everyone = big_client.run("Get-Mailbox", {"ResultSize": "Unlimited"})
    by_domain = big_client.run("Get-Mailbox", {
        "Filter": "EmailAddresses -like '*@fabrikam.example' -and RecipientTypeDetails "
                  "-eq 'UserMailbox'", "ResultSize": "Unlimited"})
    assert len(by_domain) == sum(1 for m in everyone if m["RecipientTypeDetails"] == "UserMailbox")
    nasty = "x'; Remove-Mailbox -Identity * #"
    quoted = nasty.replace("'", "''")
    found = big_client.run("Get-Mailbox", {"Filter": f"DisplayName -eq '{quoted}'"})
    assert [m["DisplayName"] for m in found] == [nasty]
    none = big_client.run("Get-Mailbox", {"Filter": "Alias -like 'nobody*' -or Alias -eq ''"})
    assert none == []
    with pytest.raises(ExoClientError) as bad:
        big_client.run("Get-Mailbox", {"Filter": "Shoesize -eq '42'"})
    assert bad.value.error.short_type == "ParameterBindingException"
    assert "is not a recognized filterable property" in bad.value.error.message


def test_seeded_mailboxes_are_valid_cloud_mailboxes_with_hostile_names(
        big_client: ExoClient) -> None:
    everyone = big_client.run("Get-Mailbox", {"ResultSize": "Unlimited"})
    for m in everyone:
        CloudMailbox(
            primary_smtp_address=m["PrimarySmtpAddress"], alias=m["Alias"],
            display_name=m["DisplayName"], user_principal_name=m["UserPrincipalName"],
            exchange_guid=m["ExchangeGuid"], archive_guid=m["ArchiveGuid"],
            archive_status=m["ArchiveStatus"], legacy_exchange_dn=m["LegacyExchangeDN"],
            email_addresses=m["EmailAddresses"], recipient_type_details=m["RecipientTypeDetails"],
            routing_address=f"{m['Alias']}@fabrikam.mail.onmicrosoft.com",
            external_directory_object_id=m["ExternalDirectoryObjectId"],
        )
    names = {m["DisplayName"] for m in everyone}
    assert {"Zoë Ångström", "李雷", 'Robert")(cn=*))(|(cn=*', "$(Invoke-Expression 'calc')"} <= names
    archives = sum(m["ArchiveStatus"] == "Active" for m in everyone) / len(everyone)
    shared = sum(m["RecipientTypeDetails"] == "SharedMailbox" for m in everyone) / len(everyone)
    assert 0.14 < archives < 0.26 and 0.02 < shared < 0.08
    assert any(m["Alias"] == "o'brien" for m in everyone)
    assert m["LegacyExchangeDN"].startswith(
        "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=")


def test_mailbox_statistics_report_sizes_as_exchange_strings(big_client: ExoClient) -> None:
    [stats] = big_client.run("Get-MailboxStatistics", {"Identity": "jose.muller@fabrikam.example"})
    assert 5 * 1024**2 <= parse_size(stats["TotalItemSize"]) <= 2 * 1024**3
    assert stats["TotalItemSize"].endswith(" bytes)") and stats["ItemCount"] > 0


def test_errors_carry_the_exchange_exception_type(big_client: ExoClient) -> None:
    missing = big_client.post("Get-Mailbox", {"Identity": "nobody@fabrikam.example"})
    unknown_cmdlet = big_client.post("Remove-Everything", {})
    unknown_parameter = big_client.post("Get-Mailbox", {"Identity": "x", "Evaluate": "$(calc)"})
    assert (missing.status_code, error_of(missing).code) == (404, "NotFound")
    assert error_of(missing).exception_type == (
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException")
    assert "couldn't be found on" in error_of(missing).message
    assert error_of(unknown_cmdlet).short_type == "CommandNotFoundException"
    assert error_of(unknown_parameter).short_type == "ParameterBindingException"
    assert "'Evaluate'" in error_of(unknown_parameter).message
    assert missing.json()["error"]["message"] == "Error executing cmdlet"


# ---------------------------------------------------------------------------- throttling


def test_over_budget_calls_get_429_with_retry_after_and_succeed_after_waiting(
        standin_with: Callable[..., ExoStandIn],
        client_for: Callable[[ExoStandIn], ExoClient]) -> None:
    standin = standin_with(throttle_requests_per_second=1, throttle_burst=2)
    client = client_for(standin)
    statuses = [client.post("Get-AcceptedDomain") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert all(h in refused.headers
               for h in ("Rate-Limit-Limit", "Rate-Limit-Remaining", "Rate-Limit-Reset"))
    time.sleep(int(refused.headers["Retry-After"]))
    assert client.post("Get-AcceptedDomain").status_code == 200


def test_too_many_concurrent_requests_get_exchanges_message(
        standin_with: Callable[..., ExoStandIn],
        client_for: Callable[[ExoStandIn], ExoClient]) -> None:
    standin = standin_with(max_concurrent_requests=2, latency_ms=(300, 300))
    client = client_for(standin)
    client.token()  # fetch the token once, before the burst
    results: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: results.append(client.post("Get-AcceptedDomain")))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [r for r in results if r.status_code == 429]
    assert refused and sum(r.status_code == 200 for r in results) >= 2
    assert refused[0].text.startswith("You have reached the maximum number of concurrent "
                                      "requests per tenant")


def test_the_control_api_injects_503s_and_latency(
        standin_with: Callable[..., ExoStandIn],
        client_for: Callable[[ExoStandIn], ExoClient], ca: ssl.SSLContext) -> None:
    standin = standin_with()
    client = client_for(standin)
    with httpx.Client(verify=ca, base_url=standin.base_url) as lab:
        assert lab.post("/lab/throttle", json={"error_rate_503": 1.0}).status_code == 200
        assert client.post("Get-AcceptedDomain").status_code == 503
        lab.post("/lab/throttle", json={"error_rate_503": 0.0, "latency_ms": [200, 200]})
        started = time.monotonic()
        assert client.post("Get-AcceptedDomain").status_code == 200
        assert time.monotonic() - started >= 0.2
        assert lab.post("/lab/throttle", json={"burst": 0}).status_code == 400


# ---------------------------------------------------------------------------- moves


def test_a_batch_moves_users_to_completed_respecting_max_concurrent_migrations(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy) -> None:
    standin = standin_with()
    client = client_for(standin)
    endpoint(client, fake_mrs, max_concurrent=2)
    [ep] = client.run("Get-MigrationEndpoint")
    assert ep["MaxConcurrentMigrations"] == 2 and "Password" not in json.dumps(ep)
    assert fake_mrs.password not in json.dumps(ep)
    chosen = addresses(mailboxes(client, 5))
    [batch] = client.run("New-MigrationBatch", {
        "Name": "wave-1", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(*chosen),
        "TargetDeliveryDomain": "fabrikam.example", "TargetDatabases": ["DB01", "DB02"],
        "AutoStart": True, "AutoComplete": True})
    assert batch["TotalCount"] == 5

    seen: set[str] = set()
    queued_while_full = False

    def done() -> bool:
        nonlocal queued_while_full
        now = users(client, "wave-1")
        statuses = [u["Status"] for u in now.values()]
        seen.update(statuses)
        active = sum(s in ("Validating", "Syncing", "Completing") for s in statuses)
        assert active <= 2, statuses
        queued_while_full |= active == 2 and "Queued" in statuses
        return all(s == "Completed" for s in statuses)

    wait_until(done, timeout=20)
    assert queued_while_full
    assert {"Queued", "Syncing", "Completed"} <= seen
    [after] = client.run("Get-MigrationBatch", {"Identity": "wave-1"})
    assert (after["Status"], after["FinalizedCount"]) == ("Completed", 5)
    stats = client.run("Get-MigrationUserStatistics", {"Identity": chosen[0]})[0]
    assert stats["PercentageComplete"] == 100
    assert parse_size(stats["BytesTransferred"]) == parse_size(stats["EstimatedTotalTransferSize"])
    # the cloud side is now a mail user pointing on-prem
    with pytest.raises(ExoClientError):
        client.run("Get-Mailbox", {"Identity": chosen[0]})
    [mail_user] = client.run("Get-MailUser", {"Identity": chosen[0]})
    assert mail_user["ExternalEmailAddress"] == f"SMTP:{chosen[0]}"
    assert fake_mrs.peak_open <= 2 and not fake_mrs.open
    assert len(fake_mrs.ops("complete")) == 5
    assert {c["target_database"] for c in fake_mrs.ops("validate-target")} == {"DB01", "DB02"}


def test_without_auto_complete_users_wait_synced_until_the_batch_is_completed(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy) -> None:
    client = client_for(standin_with())
    endpoint(client, fake_mrs)
    chosen = addresses(mailboxes(client, 2))
    as_bytes = list(base64.b64decode(csv_data(*chosen)))  # CSVData may travel as Byte[]
    client.run("New-MigrationBatch", {
        "Name": "manual", "TargetEndpoint": "OnPremEndpoint", "CSVData": as_bytes,
        "TargetDeliveryDomain": "fabrikam.example"})
    assert client.run("Get-MigrationBatch", {"Identity": "manual"})[0]["Status"] == "Created"
    client.run("Start-MigrationBatch", {"Identity": "manual"})
    wait_until(lambda: client.run("Get-MigrationBatch", {"Identity": "manual"})[0]["Status"]
               == "Synced")
    stats = client.run("Get-MigrationUserStatistics", {"Identity": chosen[0]})[0]
    assert (stats["Status"], stats["PercentageComplete"]) == ("Synced", 95)
    assert not fake_mrs.open  # a synced move gives its MRSProxy connection back
    client.run("Complete-MigrationBatch", {"Identity": "manual"})
    wait_until(lambda: client.run("Get-MigrationBatch", {"Identity": "manual"})[0]["Status"]
               == "Completed")


def test_a_move_request_waits_auto_suspended_until_resumed(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy) -> None:
    client = client_for(standin_with())
    [mailbox] = mailboxes(client, 1, archive=True)
    who = mailbox["PrimarySmtpAddress"]
    [created] = client.run("New-MoveRequest", {
        "Identity": who, "Outbound": True, "RemoteHostName": MRS_HOST,
        "RemoteTargetDatabase": "DB01", "TargetDeliveryDomain": "fabrikam.example",
        "RemoteCredential": {"UserName": fake_mrs.username, "Password": fake_mrs.password},
        "PrimaryOnly": True, "ArchiveDomain": "fabrikam.mail.onmicrosoft.com",
        "SuspendWhenReadyToComplete": True, "BatchName": "single"})
    assert created["Status"] == "Queued"
    wait_until(lambda: client.run("Get-MoveRequest", {"Identity": who})[0]["Status"]
               == "AutoSuspended")
    stats = client.run("Get-MoveRequestStatistics", {"Identity": who})[0]
    assert stats["PercentComplete"] == 95
    assert parse_size(stats["TotalMailboxSize"]) == parse_size(stats["BytesTransferred"])
    assert fake_mrs.ops("validate-target")[0]["archive_guid"] is None  # PrimaryOnly
    client.run("Resume-MoveRequest", {"Identity": who})
    wait_until(lambda: client.run("Get-MoveRequest", {"Identity": who})[0]["Status"]
               == "Completed")
    client.run("Remove-MoveRequest", {"Identity": who})
    assert client.run("Get-MoveRequest", {"BatchName": "single"}) == []


def test_a_user_with_a_missing_target_fails_and_moves_again_in_a_new_batch(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy, ca: ssl.SSLContext) -> None:
    standin = standin_with()
    client = client_for(standin)
    endpoint(client, fake_mrs)
    [who] = addresses(mailboxes(client, 1))
    with httpx.Client(verify=ca, base_url=standin.base_url) as lab:
        assert lab.post("/lab/faults", json={"mailbox": who, "fault": "missing-guid"}).is_success
        parameters = {"TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(who),
                      "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True,
                      "AutoComplete": True}
        client.run("New-MigrationBatch", {"Name": "first", **parameters})
        failed = wait_until(lambda: next(
            (u for u in users(client, "first").values() if u["Status"] == "Failed"), None))
        assert "Cannot find a recipient that has mailbox GUID" in failed["ErrorSummary"]
        assert client.run("Get-MigrationBatch", {"Identity": "first"})[0]["Status"] == "Failed"
        with pytest.raises(ExoClientError) as again:
            client.run("New-MigrationBatch", {"Name": "second", **parameters})
        assert "already included in migration batch 'first'" in again.value.error.message
        with pytest.raises(ExoClientError) as moving:
            client.run("New-MoveRequest", {"Identity": who, "Outbound": True,
                                           "RemoteHostName": MRS_HOST,
                                           "TargetDeliveryDomain": "fabrikam.example"})
        assert "already" in moving.value.error.message
        lab.request("DELETE", "/lab/faults", json={"mailbox": who})
        state = lab.get("/lab/state").json()
        assert state["counts"]["by_status"] == {"Failed": 1}
    client.run("Remove-MigrationBatch", {"Identity": "first"})
    client.run("New-MigrationBatch", {"Name": "second", **parameters})
    wait_until(lambda: users(client, "second")[who]["Status"] == "Completed")


def test_the_mrsproxy_connection_limit_keeps_a_user_queued_with_the_error_then_it_moves(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy, ca: ssl.SSLContext) -> None:
    standin = standin_with()
    client = client_for(standin)
    endpoint(client, fake_mrs)
    [who] = addresses(mailboxes(client, 1))
    with httpx.Client(verify=ca, base_url=standin.base_url) as lab:
        lab.post("/lab/faults", json={"mailbox": who, "fault": "mrsproxy-limit:2"})
    client.run("New-MigrationBatch", {
        "Name": "limited", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(who),
        "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True, "AutoComplete": True})
    waiting = wait_until(lambda: (s := client.run("Get-MigrationUserStatistics",
                                                  {"Identity": who})[0])["Error"] and s)
    assert waiting["Status"] == "Queued"
    assert "MRSProxyConnectionLimitReachedTransientException" in waiting["Error"]
    wait_until(lambda: users(client, "limited")[who]["Status"] == "Completed")


def test_the_on_prem_connection_limit_holds_moves_back_until_connections_free_up(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy) -> None:
    fake_mrs.max_connections = 1
    client = client_for(standin_with(move_min_seconds=0.3))
    endpoint(client, fake_mrs, max_concurrent=3)
    chosen = addresses(mailboxes(client, 3))
    client.run("New-MigrationBatch", {
        "Name": "squeezed", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(*chosen),
        "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True, "AutoComplete": True})
    errors_seen: set[str] = set()

    def finished() -> bool:
        for u in users(client, "squeezed").values():
            if u["ErrorSummary"]:
                errors_seen.add(u["ErrorSummary"].split(":", 1)[0])
        return all(u["Status"] == "Completed" for u in users(client, "squeezed").values())

    wait_until(finished, timeout=20)
    assert errors_seen == {"MRSProxyConnectionLimitReachedTransientException"}
    assert fake_mrs.peak_open == 1 and len(fake_mrs.completed) == 3


def test_wrong_credentials_and_a_disabled_mrsproxy_are_reported_as_exchange_does(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy) -> None:
    client = client_for(standin_with())
    [result] = client.run("Test-MigrationServerAvailability", {
        "ExchangeRemoteMove": True, "RemoteServer": MRS_HOST,
        "Credentials": {"UserName": fake_mrs.username, "Password": "wrong"}})
    assert result["Result"] == "Failed" and "Access is denied" in result["ErrorDetail"]
    assert "wrong" not in json.dumps(result)
    with pytest.raises(ExoClientError) as refused:
        endpoint(client, fake_mrs, password="wrong")
    assert "Access is denied" in refused.value.error.message
    assert refused.value.error.short_type == "MigrationServerConnectionFailedException"

    endpoint(client, fake_mrs)
    assert client.run("Test-MigrationServerAvailability",
                      {"Endpoint": "OnPremEndpoint"})[0]["Result"] == "Success"
    fake_mrs.enabled = False
    [who] = addresses(mailboxes(client, 1))
    client.run("New-MigrationBatch", {
        "Name": "disabled", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(who),
        "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True})
    failed = wait_until(lambda: (s := client.run("Get-MigrationUserStatistics",
                                                 {"Identity": who})[0])["Status"] == "Failed" and s)
    assert "(404) Not Found" in failed["Error"]


def test_moves_are_refused_for_a_domain_that_is_not_accepted(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy) -> None:
    client = client_for(standin_with())
    endpoint(client, fake_mrs)
    [who] = addresses(mailboxes(client, 1))
    with pytest.raises(ExoClientError) as refused:
        client.run("New-MigrationBatch", {
            "Name": "w", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(who),
            "TargetDeliveryDomain": "contoso.example"})
    assert "is not an accepted domain" in refused.value.error.message
    with pytest.raises(ExoClientError) as missing:
        client.run("New-MigrationBatch", {
            "Name": "w", "TargetEndpoint": "NoSuchEndpoint", "CSVData": csv_data(who),
            "TargetDeliveryDomain": "fabrikam.example"})
    assert missing.value.error.short_type == "ManagementObjectNotFoundException"


def test_bad_items_need_approval_before_the_user_completes(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy, ca: ssl.SSLContext) -> None:
    standin = standin_with()
    client = client_for(standin)
    endpoint(client, fake_mrs)
    [who] = addresses(mailboxes(client, 1))
    with httpx.Client(verify=ca, base_url=standin.base_url) as lab:
        lab.post("/lab/faults", json={"mailbox": who, "fault": "bad-items:7"})
    client.run("New-MigrationBatch", {
        "Name": "bad", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(who),
        "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True, "AutoComplete": True})
    failed = wait_until(lambda: (s := client.run("Get-MigrationUserStatistics",
                                                 {"Identity": who})[0])["Status"] == "Failed" and s)
    assert "TooManyBadItems" in failed["Error"] and failed["HasUnapprovedSkippedItems"]
    client.run("Set-MigrationBatch", {"Identity": "bad", "ApproveSkippedItems": True})
    client.run("Start-MigrationBatch", {"Identity": "bad"})
    wait_until(lambda: users(client, "bad")[who]["Status"] == "CompletedWithWarnings")


def test_stalls_and_communication_errors_show_while_the_move_continues(
        standin_with: Callable[..., ExoStandIn], client_for: Callable[[ExoStandIn], ExoClient],
        fake_mrs: FakeMrsProxy, ca: ssl.SSLContext) -> None:
    standin = standin_with(move_min_seconds=0.6)
    client = client_for(standin)
    endpoint(client, fake_mrs)
    stalled, flaky = addresses(mailboxes(client, 2))
    with httpx.Client(verify=ca, base_url=standin.base_url) as lab:
        lab.post("/lab/faults", json={"mailbox": stalled, "fault": "stall:0.5"})
        lab.post("/lab/faults", json={"mailbox": flaky, "fault": "communication-error:1"})
    client.run("New-MigrationBatch", {
        "Name": "rough", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(stalled, flaky),
        "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True, "AutoComplete": True})
    details: dict[str, set[str]] = {stalled: set(), flaky: set()}

    def finished() -> bool:
        for who in details:
            stats = client.run("Get-MigrationUserStatistics", {"Identity": who})[0]
            details[who].add(stats["Error"] or stats["StatusDetail"])
        return all(u["Status"] == "Completed" for u in users(client, "rough").values())

    wait_until(finished, every=0.02)
    assert "StalledDueToTarget_MdbAvailability" in details[stalled]
    assert any("CommunicationErrorTransientException" in d for d in details[flaky])


# ---------------------------------------------------------------------------- lab plumbing


def test_the_tenant_and_its_moves_survive_a_restart(
        base_config: dict[str, Any], lab_dir: Path, fake_mrs: FakeMrsProxy,
        ca: ssl.SSLContext) -> None:
    state_file = lab_dir / "not-yet" / "exo-state.json"  # the directory is created on save
    state_file.unlink(missing_ok=True)
    config = ExoConfig(**base_config, seed_mailboxes=8, state_file=state_file,
                       remote_servers={MRS_HOST: fake_mrs.url}, move_min_seconds=0.2,
                       move_tick_seconds=0.05)
    with ExoStandIn(config) as first:
        client = ExoClient(first.base_url, config.tenant_id, CLIENT_ID, SECRET, ca)
        endpoint(client, fake_mrs)
        [who] = addresses(mailboxes(client, 1))
        client.run("New-MigrationBatch", {
            "Name": "kept", "TargetEndpoint": "OnPremEndpoint", "CSVData": csv_data(who),
            "TargetDeliveryDomain": "fabrikam.example", "AutoStart": True})
        wait_until(lambda: users(client, "kept")[who]["Status"] == "Synced")
        before = client.run("Get-Mailbox", {"ResultSize": "Unlimited"})
    assert os.stat(state_file).st_mode & 0o077 == 0
    assert fake_mrs.password in state_file.read_text()  # kept, so moves can go on after restart
    with ExoStandIn(config) as second:
        client.base_url = second.base_url  # the same token works: the signing key is kept
        client.http.close()
        client.http = httpx.Client(verify=ca, timeout=30)
        client.app.http_client = client.http
        assert client.run("Get-Mailbox", {"ResultSize": "Unlimited"}) == before
        assert users(client, "kept")[who]["Status"] == "Synced"
        client.run("Complete-MigrationBatch", {"Identity": "kept"})
        wait_until(lambda: users(client, "kept")[who]["Status"] == "Completed")
    client.close()


def test_the_control_api_seeds_reports_and_refuses_bad_faults(
        standin_with: Callable[..., ExoStandIn], ca: ssl.SSLContext) -> None:
    standin = standin_with(seed_mailboxes=0)
    csv_text = (REPO / "lab" / "data" / "sample-tenant.csv").read_text(encoding="utf-8")
    with httpx.Client(verify=ca, base_url=standin.base_url) as lab:
        assert lab.get("/lab/health").json()["status"] == "ok"
        added = lab.post("/lab/seed", json={"csv": csv_text}).json()
        assert added["added"] >= 10
        assert lab.post("/lab/seed", json={"csv": csv_text}).status_code == 400  # all taken
        assert lab.post("/lab/seed", json={"mailboxes": 4}).json()["added"] == 4
        state = lab.get("/lab/state").json()
        assert state["counts"]["mailboxes"] == 4 + added["added"]
        assert any(f["kind"] == "missing-guid" for f in state["faults"].values())
        bad = lab.post("/lab/faults", json={"mailbox": added["addresses"][0], "fault": "gremlins"})
        nobody = lab.post("/lab/faults", json={"mailbox": "nobody@fabrikam.example",
                                               "fault": "stall"})
        assert (bad.status_code, nobody.status_code) == (400, 404)


def test_the_command_line_serves_until_sigterm_and_logs_no_secrets(
        base_config: dict[str, Any], lab_dir: Path, ca: ssl.SSLContext) -> None:
    config_file, port_file = lab_dir / "exo.json", lab_dir / "exo.port"
    port_file.unlink(missing_ok=True)
    ExoConfig(**{**base_config, "log_requests": True}, seed_mailboxes=5).to_file(config_file)
    child = subprocess.Popen(
        [sys.executable, "-m", "lab.exo", "--config", str(config_file), "--port-file",
         str(port_file)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(port_file.exists, timeout=15)
        port = int(port_file.read_text())
        client = ExoClient(f"https://127.0.0.1:{port}", base_config.get("tenant_id")
                           or ExoConfig(**base_config).tenant_id, CLIENT_ID, SECRET, ca)
        token = client.token()
        assert len(client.run("Get-Mailbox")) == 5
        client.close()
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=15)
    assert child.returncode == 0
    assert "Get-Mailbox 5 items" in stderr
    assert SECRET not in stderr and token not in stderr
